"""Evaluation sets read from their official files: every image an evaluation asks about, with its id keys.

One reader per kind; each returns the set's distinct images in file order (`EvalItem`: how the set names
the image, its path under the set's image folder for the byte/pixel/pHash tiers, its id keys):

- `vqav2`: `v2_OpenEnded_mscoco_{val2014,test-dev2015,test2015}_questions.json` (visualqa.org). Images are
  `questions[].image_id` in the split of `data_subtype`; test-dev2015 images are test2015 images.
- `gqa`: `testdev_balanced_questions.json` (GQA questions1.2.zip), {qid: {"imageId": ...}}. `<imageId>.jpg`, a VG
  id or a GQA-only `n...` id.
- `textvqa`: `TextVQA_0.5.1_val.json` (textvqa.org), {"data": [{"image_id": <16 hex>}]}. `<image_id>.jpg`, an
  OpenImages id.
- `pope`: `coco_pope_{random,popular,adversarial}.json` (the POPE repo's `output/coco`), JSON Lines
  `{"question_id", "image": "COCO_val2014_%012d.jpg", "text", "label"}`.
- `mme`: LLaVA's `llava_mme.jsonl` (`{"image": "existence/000000006040.jpg"}`) or the MME release folder; its
  COCO-derived categories name COCO 2017 images by their 12-digit id.
- `refcoco`: `refs(unc|google|umd).p` (lichengunc/refer), the refs of `splits` (default val, test, testA, testB).
  `train2014/COCO_train2014_%012d.jpg` (refs `file_name` adds the annotation id, `..._16.jpg`).
- `llava`: any LLaVA-format JSON list or JSON Lines (`[{"image": ...}]`), `image` as given.
- `list`: a text file, one image path per line (UTF-8; BOM and Windows line ends accepted, blank lines and `#`
  comments skipped).
- `folder`: every image file under a folder (its own image root).

The official readers of the converters are reused (VQAv2 and GQA question files, the refs pickle through the
restricted unpickler, LLaVA records). A file that is not of its kind is one `ConverterError` line naming it.
Records without an image are counted (`EvalSet.without_image`), not silently dropped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from datamix.decontam.keys import OPENIMAGES_FILE, TWELVE_DIGITS, coco_key, gqa_key, image_keys
from datamix.decontam.spec import EvalSpec
from datamix.errors import ConverterError
from datamix.jsonio import decode_any, iter_records, read_bytes
from datamix.ledger import Ledger

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class EvalItem:
    item: str  # how the evaluation set names the image: its file name or image id
    image: str | None  # the image file under the set's image_root (None: no file is known)
    keys: tuple[str, ...]  # image id keys (datamix.decontam.keys)


@dataclass
class EvalSet:
    name: str
    kind: str
    path: Path
    items: list[EvalItem]
    image_root: Path | None = None
    without_image: int = 0  # records that name no image (counted, not matched)
    files: list[Path] = field(default_factory=list)  # what was read: hashed into the manifest


class _Items:
    """Distinct images in first-appearance order."""

    def __init__(self):
        self.items: dict[str, EvalItem] = {}
        self.without_image = 0

    def add(self, item: str | None, image: str | None, keys: Iterable[str]) -> None:
        if not item:
            self.without_image += 1
        elif item not in self.items:
            self.items[item] = EvalItem(item, image, tuple(keys))


def read_eval_set(spec: EvalSpec) -> EvalSet:
    reader = READERS[spec.kind]
    found = _Items()
    files = reader(spec, found)
    image_root = spec.path if spec.path.is_dir() else spec.image_root  # a folder is its own image root
    return EvalSet(spec.name, spec.kind, spec.path, list(found.items.values()), image_root,
                   found.without_image, files)


def _vqav2(spec: EvalSpec, found: _Items) -> list[Path]:
    from datamix.converters.vqav2 import load_vqa_file

    _, frame = load_vqa_file(spec.path, Ledger(spec.name))
    for image_id, subtype in frame.select("image_id", "subtype").iter_rows():
        folder = "test2015" if subtype.startswith("test") else subtype  # test-dev2015 is a subset of test2015
        split = "test" if folder.startswith("test") else "train"
        if image_id is None:
            found.add(None, None, ())
            continue
        name = f"COCO_{folder}_{image_id:012d}.jpg"
        found.add(name, f"{folder}/{name}", [coco_key(image_id, split)])
    return [spec.path]


def _gqa(spec: EvalSpec, found: _Items) -> list[Path]:
    from datamix.converters.gqa import load_gqa_file

    for (image_id,) in load_gqa_file(spec.path, Ledger(spec.name)).select("image_id").iter_rows():
        found.add(image_id, f"{image_id}.jpg" if image_id else None, [gqa_key(image_id)] if image_id else [])
    return [spec.path]


class _TextVQAFile(msgspec.Struct):
    data: list[Any] | None = None  # records checked one by one: one bad entry is one record, not the file


def _textvqa(spec: EvalSpec, found: _Items) -> list[Path]:
    data = read_bytes(spec.path)
    try:
        records = msgspec.json.decode(data, type=_TextVQAFile).data
    except msgspec.ValidationError:
        records = None
    except msgspec.DecodeError:
        decode_any(spec.path, data)  # raises the precise one-line JSON error
        raise
    if records is None:
        raise ConverterError(f"{spec.path}: not a TextVQA file: expected an object with a 'data' list")
    for record in records:
        image_id = record.get("image_id") if isinstance(record, dict) else None
        image_id = image_id if isinstance(image_id, str) and image_id else None
        hexadecimal = image_id is not None and OPENIMAGES_FILE.fullmatch(image_id + ".jpg")
        found.add(image_id, f"{image_id}.jpg" if image_id else None,
                  [f"openimages:{image_id}"] if hexadecimal else [])
    return [spec.path]


class _ImageRecord(msgspec.Struct):
    image: str | list[str] | None = None


def _records_with_images(spec: EvalSpec) -> Iterable[str | None]:
    """The `image` of every record of a JSON list or JSON Lines file (several for a multi-image record)."""
    for _, record, reason in iter_records(spec.path, _ImageRecord, "image"):
        images = None if reason else record.image
        if isinstance(images, str):
            images = [images]
        yield from (images or [None])


def _pope(spec: EvalSpec, found: _Items) -> list[Path]:
    for image in _records_with_images(spec):
        found.add(image, image, image_keys(image) if image else ())
    return [spec.path]


def _mme_keys(path: str) -> tuple[str, ...]:
    """MME's COCO-derived categories name COCO 2017 images by their 12-digit id (`existence/000000006040.jpg`)."""
    match = TWELVE_DIGITS.search(path)
    return (coco_key(int(match.group(1))),) if match else image_keys(path)


def _mme(spec: EvalSpec, found: _Items) -> list[Path]:
    if spec.path.is_dir():
        return _folder(spec, found, keys=_mme_keys)
    for image in _records_with_images(spec):
        found.add(image, image, _mme_keys(image) if image else ())
    return [spec.path]


def _refcoco(spec: EvalSpec, found: _Items) -> list[Path]:
    from datamix.converters.refcoco import load_refs, typed_refs

    wanted = set(spec.splits)
    for ref, _ in typed_refs(load_refs(spec.path)):
        if ref is None:  # a malformed ref: counted as a record naming no image, never dropped unseen
            found.add(None, None, ())
            continue
        if ref.split not in wanted:
            continue
        if ref.image_id is None:
            found.add(None, None, ())
            continue
        name = f"COCO_train2014_{ref.image_id:012d}.jpg"  # refs file_name adds the ann id: `..._16.jpg`
        found.add(name, f"train2014/{name}", [coco_key(ref.image_id)])
    return [spec.path]


def _llava(spec: EvalSpec, found: _Items) -> list[Path]:
    for image in _records_with_images(spec):
        found.add(image, image, image_keys(image, "llava") if image else ())
    return [spec.path]


def _list(spec: EvalSpec, found: _Items) -> list[Path]:
    data = read_bytes(spec.path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConverterError(f"{spec.path}: not UTF-8 text (byte {exc.start}); expected one image path per line") \
            from None
    if "\x00" in text:
        raise ConverterError(f"{spec.path}: holds NUL bytes; expected a text file with one image path per line")
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            found.add(line, line, image_keys(line))
    return [spec.path]


def _folder(spec: EvalSpec, found: _Items, keys: Callable[[str], tuple[str, ...]] = image_keys) -> list[Path]:
    if not spec.path.is_dir():
        raise ConverterError(f"{spec.path}: not a folder; kind 'folder' takes the folder holding the images")
    paths = []
    for folder, dirs, names in os.walk(spec.path):  # links are not followed: nothing outside the folder
        dirs.sort()
        for name in sorted(names):
            if name.lower().endswith(IMAGE_SUFFIXES):
                paths.append(os.path.relpath(os.path.join(folder, name), spec.path).replace(os.sep, "/"))
    for rel in paths:
        found.add(rel, rel, keys(rel))
    return []  # the images are the set: their bytes, not a file, are what the tiers read


READERS: dict[str, Callable[[EvalSpec, _Items], list[Path]]] = {
    "vqav2": _vqav2, "gqa": _gqa, "textvqa": _textvqa, "pope": _pope, "mme": _mme, "refcoco": _refcoco,
    "llava": _llava, "list": _list, "folder": _folder,
}
KINDS = tuple(READERS)
