"""Image id keys: the names under which one image is known in every source and evaluation set.

A key is `<pool>:<id>`. The pools (the shared image pools of the LLaVA-1.5 sources and benchmarks):

| key                  | from                                                                      |
|----------------------|---------------------------------------------------------------------------|
| `coco:391895`        | `COCO_train2014_000000391895.jpg`, `COCO_val2014_...`, `train2017/000000391895.jpg` |
| `coco-test:1`        | `COCO_test2015_000000000001.jpg`, `test2015/...`, `test2017/...`           |
| `vg:2354786`         | `VG_100K/2354786.jpg`, `VG_100K_2/...`, GQA `images/2354786.jpg` (GQA images are VG images) |
| `gqa:n161313`        | GQA-only images (`n...` ids)                                               |
| `openimages:011e...` | TextVQA / TextCaps `train_images/011e7e629fb9ae7b.jpg` (16 hex digits)      |

COCO 2017 re-partitions train2014 + val2014 under the same ids, so a 2014 name and a 2017 name of one image
give the same `coco:` key. Test images are their own pool (`coco-test:`): the 2014 -> 2017 identity holds for
train and val only. Visual Genome's `image_data.json` links a VG id to its COCO id (`coco_id`, null or -1 when
the image is not a COCO image); `Links` adds the other name of a linked image, in both directions, so a VG
sample matches a COCO evaluation image and a COCO sample a GQA one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

# refs file_name carries an annotation suffix: COCO_train2014_000000581857_16.jpg
COCO_NAME = re.compile(r"COCO_(train|val|test)(20\d\d)_(\d{12})(?:_\d+)?\.\w+\Z", re.ASCII)
COCO_FOLDER = re.compile(r"(train|val|test)20(14|15|17)\Z")
TWELVE_DIGITS = re.compile(r"(\d{12})\.\w+\Z", re.ASCII)
VG_FILE = re.compile(r"(?:\A|/)VG_100K(?:_2)?/(\d+)\.\w+\Z", re.ASCII)
GQA_FILE = re.compile(r"(?:\A|/)gqa/images/([^/]+)\.\w+\Z", re.ASCII)  # LLaVA's `gqa/images/` folder
OPENIMAGES_FILE = re.compile(r"(?:\A|/)([0-9a-f]{16})\.\w+\Z", re.ASCII)
# re.ASCII throughout: \d would also take non-ASCII digits, turning `VG_100K/٣.jpg` into vg:3.


def coco_key(image_id: int, split: str = "train") -> str:
    return f"{'coco-test' if split == 'test' else 'coco'}:{int(image_id)}"


def gqa_key(image_id: str) -> str:
    """A GQA imageId: a VG id (digits) or a GQA-only `n...` id."""
    # ASCII digits only: str.isdigit() accepts "²" and "٣", which int() refuses or reads as another id.
    return f"vg:{int(image_id)}" if image_id.isascii() and image_id.isdecimal() else f"gqa:{image_id}"


def image_keys(path: str, converter: str | None = None) -> tuple[str, ...]:
    """The id keys of one image path as a source names it (relative to its image root); () if none is known.

    `converter`: the converter of the source, for the one layout the path alone cannot tell (the GQA
    converter's `images/<imageId>.jpg`, where OCR-VQA's `images/<ASIN>.jpg` look alike).
    """
    path = path.replace("\\", "/")
    name = path.rsplit("/", 1)[-1]
    if match := COCO_NAME.search(name):
        return (coco_key(int(match.group(3)), match.group(1)),)
    folder = path.rsplit("/", 2)[-2] if "/" in path else ""
    if match := TWELVE_DIGITS.fullmatch(name):
        if COCO_FOLDER.fullmatch(folder):
            return (coco_key(int(match.group(1)), COCO_FOLDER.fullmatch(folder).group(1)),)
        if not folder:  # llava_instruct_150k names COCO images bare
            return (coco_key(int(match.group(1))),)
    if match := VG_FILE.search(path):
        return (f"vg:{int(match.group(1))}",)
    if match := GQA_FILE.search(path):
        return (gqa_key(match.group(1)),)
    if converter == "gqa" and (match := re.fullmatch(r"images/([^/]+)\.\w+", path, re.ASCII)):
        return (gqa_key(match.group(1)),)
    if match := OPENIMAGES_FILE.search(path):
        return (f"openimages:{match.group(1)}",)
    return ()


class Links:
    """VG <-> COCO aliases from Visual Genome's `image_data.json` files (v1.0 `id` or v1.2 `image_id`)."""

    def __init__(self, pairs: Iterable[tuple[int, int]] = ()):
        self.alias: dict[str, str] = {}
        for vg_id, coco_id in pairs:
            self.alias.setdefault(f"vg:{vg_id}", coco_key(coco_id))  # the first link in file order wins
            self.alias.setdefault(coco_key(coco_id), f"vg:{vg_id}")

    @classmethod
    def read(cls, paths: Iterable[Path]) -> Links:
        from datamix.converters.vg import load_coco_links

        return cls(pair for path in paths for pair in load_coco_links(path))

    def __len__(self) -> int:
        return sum(1 for k in self.alias if k.startswith("vg:"))

    def expand(self, keys: Iterable[str]) -> tuple[str, ...]:
        """The keys with the other name of every linked image added (order kept, no repeats)."""
        out = list(dict.fromkeys(keys))
        out += [self.alias[k] for k in out if k in self.alias and self.alias[k] not in out]
        return tuple(out)
