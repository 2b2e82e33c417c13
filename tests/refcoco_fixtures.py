"""Writes tests/fixtures/refcoco/: refs pickles byte-for-byte as Python 2's cPickle (protocol 2) writes them.

The official refs(<splitBy>).p files were written by Python 2, where a `str` is a byte string
(SHORT_BINSTRING/BINSTRING opcodes) and `unicode` is BINUNICODE. Python 3's pickle cannot write the former
(it pickles bytes through a `_codecs.encode` global), so this module emits the opcodes itself, memo puts
included, and the fixtures are regenerated with `python tests/refcoco_fixtures.py`.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

ROOT = Path(__file__).parent / "fixtures" / "refcoco"


class Unicode(str):
    """A Python 2 `unicode` value (BINUNICODE); a plain str here is a Python 2 `str` (UTF-8 bytes)."""


class Py2Pickler:
    def __init__(self):
        self.out = bytearray(b"\x80\x02")
        self.memo = 0

    def dumps(self, obj) -> bytes:
        self._save(obj)
        self.out += b"."
        return bytes(self.out)

    def _put(self) -> None:
        self.out += b"q" + bytes([self.memo]) if self.memo < 256 else b"r" + struct.pack("<I", self.memo)
        self.memo += 1

    def _save(self, obj) -> None:
        if obj is None:
            self.out += b"N"
        elif obj is True or obj is False:
            self.out += b"\x88" if obj else b"\x89"
        elif isinstance(obj, int):
            self._int(obj)
        elif isinstance(obj, float):
            self.out += b"G" + struct.pack(">d", obj)
        elif isinstance(obj, Unicode):
            data = obj.encode("utf-8")
            self.out += b"X" + struct.pack("<I", len(data)) + data
            self._put()
        elif isinstance(obj, (str, bytes)):
            data = obj.encode("utf-8") if isinstance(obj, str) else obj
            self.out += (b"U" + bytes([len(data)]) if len(data) < 256 else b"T" + struct.pack("<i", len(data))) + data
            self._put()
        elif isinstance(obj, list):
            self.out += b"]"
            self._put()
            for start in range(0, len(obj), 1000):  # cPickle batches appends by 1000
                self.out += b"("
                for item in obj[start:start + 1000]:
                    self._save(item)
                self.out += b"e"
        elif isinstance(obj, dict):
            self.out += b"}"
            self._put()
            self.out += b"("
            for key, value in obj.items():
                self._save(key)
                self._save(value)
            self.out += b"u"
        else:
            raise TypeError(type(obj))

    def _int(self, n: int) -> None:
        if 0 <= n < 256:
            self.out += b"K" + bytes([n])
        elif 0 <= n < 65536:
            self.out += b"M" + struct.pack("<H", n)
        elif -(2**31) <= n < 2**31:
            self.out += b"J" + struct.pack("<i", n)
        else:
            data = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
            self.out += b"\x8a" + bytes([len(data)]) + data


def plain(obj):
    """The same value with Python 3 types only (Unicode -> str), for pickle.dump."""
    if isinstance(obj, list):
        return [plain(v) for v in obj]
    if isinstance(obj, dict):
        return {plain(k): plain(v) for k, v in obj.items()}
    return str(obj) if isinstance(obj, Unicode) else obj


def py2_pickle(obj) -> bytes:
    return Py2Pickler().dumps(obj)


def sentence(sent_id: int, raw: str | bytes, sent: str | None = None) -> dict:
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    sent = sent if sent is not None else " ".join(text.lower().replace(",", " ").split())
    return {"tokens": sent.split(), "raw": raw, "sent_id": sent_id, "sent": sent}


def ref(ref_id: int, ann_id, image_id: int, split: str, sentences: list[dict], suffix: int = 1,
        category_id: int = 1) -> dict:
    return {"sent_ids": [s["sent_id"] for s in sentences],
            "file_name": f"COCO_train2014_{image_id:012d}_{suffix}.jpg", "ann_id": ann_id, "ref_id": ref_id,
            "image_id": image_id, "split": split, "sentences": sentences, "category_id": category_id}


def coco_image(image_id: int, width: int, height: int) -> dict:
    return {"license": 1, "file_name": f"COCO_train2014_{image_id:012d}.jpg",
            "coco_url": f"http://mscoco.org/images/{image_id}", "height": height, "width": width,
            "date_captured": "2013-11-14 16:28:13", "flickr_url": "http://farm4.staticflickr.com/x.jpg",
            "id": image_id}


def annotation(ann_id: int, image_id: int, bbox: list[float], category_id: int = 1) -> dict:
    x, y, w, h = bbox
    polygon = [x, y, x + w, y, x + w, y + h, x, y + h]
    return {"segmentation": [polygon], "area": w * h, "iscrowd": 0, "image_id": image_id, "bbox": bbox,
            "category_id": category_id, "id": ann_id}


def instances(images: list[dict], annotations: list[dict]) -> dict:
    return {"info": {"description": "This is stable 1.0 version of the 2014 MS COCO dataset."},
            "images": images, "licenses": [{"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": 1}],
            "type": "instances", "annotations": annotations,
            "categories": [{"supercategory": "person", "id": 1, "name": "person"}]}


def refcoco_unc() -> tuple[list, dict]:
    """The main set: one ref per quirk, and one image with 12 refs (two segments of at most 9)."""
    images = [coco_image(581857, 640, 427), coco_image(98304, 424, 640), coco_image(262161, 640, 480),
              coco_image(400000, 500, 500)]
    anns = [annotation(1719310, 581857, [103.93, 299.99, 134.22, 177.42]),
            annotation(1719311, 581857, [380.2, 40.1, 259.8, 386.9]),
            annotation(1719312, 581857, [600.5, 10.0, 60.0, 50.0]),  # sticks out on the right: clipped
            annotation(2000001, 98304, [10.0, 20.0, 200.0, 300.0]),
            annotation(2000002, 98304, [50.0, 50.0, 0.0, 40.0]),  # zero width
            annotation(4000001, 400000, [100.0, 100.0, 50.0, 50.0]),
            annotation(4000002, 400000, [200.0, 200.0, 50.0, 50.0]),
            annotation(4000003, 400000, [300.0, 300.0, 50.0, 50.0])]
    anns += [annotation(3000001 + k, 262161, [10.0 + 40 * k, 30.0, 35.0, 100.0 + k]) for k in range(12)]
    refs = [
        ref(0, 1719310, 581857, "train", [sentence(0, "THE LADY WITH THE BLUE SHIRT"),
                                         sentence(1, "lady w back to us"), sentence(2, "blue shirt")], suffix=16),
        ref(1, 1719311, 581857, "train", [sentence(3, "man in the caf\u00e9 chair"),  # UTF-8 in a Py2 str
                                         sentence(4, Unicode("right guy"), Unicode("right guy"))], suffix=17),
        ref(2, 1719312, 581857, "train", [sentence(5, "edge of the table.")], suffix=18),
        ref(3, 2000001, 98304, "train", [sentence(6, "left giraffe")]),
        ref(4, 2000002, 98304, "train", [sentence(7, "a zero width box")]),
        ref(5, 9999999, 98304, "train", [sentence(8, "not in instances")]),
        ref(6, 4000001, 400000, "val", [sentence(9, "val ref")]),
        ref(7, 4000002, 400000, "testA", [sentence(10, "testA person")]),
        ref(8, 4000003, 400000, "testB", [sentence(11, "testB object")]),
        ref(9, 4000001, 400000, "train", [sentence(12, "", "")]),  # sentences without text
        ref(10, "3000001", 262161, "train", [sentence(13, "an ann_id that is a string")]),  # malformed
    ]
    refs += [ref(20 + k, 3000001 + k, 262161, "train", [sentence(100 + k, f"person number {k + 1}")])
             for k in range(12)]
    return refs, instances(images, anns)


def refcocog() -> tuple[list, list, dict]:
    """The same refs under two splitBy files (google: train/val; umd: train/val/test), as refcocog ships."""
    images = [coco_image(111111, 640, 480), coco_image(222222, 480, 640)]
    anns = [annotation(5000001, 111111, [10.0, 10.0, 100.0, 100.0]),
            annotation(5000002, 111111, [200.0, 50.0, 120.0, 300.0]),
            annotation(5000003, 222222, [0.0, 0.0, 480.0, 640.0]),
            annotation(5000004, 222222, [40.0, 400.0, 100.0, 200.0])]
    a = [sentence(0, "a man in a black jacket holding a phone"), sentence(1, "the man on the left")]
    b = [sentence(2, "a white plate with a slice of cake on it")]
    c = [sentence(3, "the whole picture")]
    d = [sentence(4, "a brown dog lying on a couch"), sentence(5, "dog")]
    google = [ref(0, 5000001, 111111, "train", a), ref(1, 5000002, 111111, "train", b)]
    umd = [ref(0, 5000001, 111111, "train", a), ref(1, 5000002, 111111, "val", b),
           ref(2, 5000003, 222222, "test", c), ref(3, 5000004, 222222, "train", d)]
    return google, umd, instances(images, anns)


def latin1() -> tuple[list, dict]:
    """A Python-2 str that is not UTF-8 (Latin-1 é): decoded string by string."""
    refs = [ref(0, 6000001, 333333, "train", [sentence(0, b"caf\xe9 table", "caf\u00e9 table")]),
            ref(1, 6000002, 333333, "train", [sentence(1, "man on the right")])]
    return refs, instances([coco_image(333333, 320, 240)], [annotation(6000001, 333333, [0.0, 0.0, 160.0, 120.0]),
                                                             annotation(6000002, 333333, [160.0, 0.0, 160.0, 240.0])])


def fixture_files() -> dict[str, bytes]:
    unc, unc_instances = refcoco_unc()
    google, umd, g_instances = refcocog()
    l1, l1_instances = latin1()
    return {
        "refcoco/refs(unc).p": py2_pickle(unc),
        "refcoco/instances.json": json.dumps(unc_instances).encode(),
        "refcocog/refs(google).p": py2_pickle(google),
        "refcocog/refs(umd).p": py2_pickle(umd),
        "refcocog/instances.json": json.dumps(g_instances).encode(),
        "latin1/refs(unc).p": py2_pickle(l1),
        "latin1/instances.json": json.dumps(l1_instances).encode(),
    }


if __name__ == "__main__":
    for name, data in fixture_files().items():
        path = ROOT / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(f"wrote {path} ({len(data)} bytes)")
