"""RefCOCO, RefCOCO+ and RefCOCOg referring expressions -> grounding conversations per image, in segments.

Provenance: https://github.com/lichengunc/refer (`data/<dataset>/refs(<splitBy>).p` + `instances.json`;
splitBy unc for refcoco and refcoco+, umd or google for refcocog). License: the annotations are CC BY 4.0
(refer README), images under the COCO terms of use. Files are recognised by content: a pickle is a refs
file, a JSON object with `images`/`annotations` is the COCO-style `instances.json` of the refs next to it
(same folder, as in the official layout). One raw ref (the pickle is a Python-2 list of these):

    {"sent_ids": [0, 1, 2], "file_name": "COCO_train2014_000000581857_16.jpg", "ann_id": 1719310,
     "ref_id": 0, "image_id": 581857, "split": "train", "category_id": 1,
     "sentences": [{"tokens": ["the", "lady", ...], "raw": "THE LADY WITH THE BLUE SHIRT", "sent_id": 0,
                    "sent": "the lady with the blue shirt"}, ...]}

The pickle is read by an unpickler that refuses every global: a file that asks for one (`os.system`,
`builtins.eval`, a class) is a ConverterError before anything in it runs. Python-2 `str` values are
decoded as UTF-8, falling back to Latin-1 for a string that is not valid UTF-8.

The box comes from `ann_id` in instances.json (`bbox` = `[x, y, w, h]` pixels, image size from `images`).
Each ref gives one REG or REC turn (`regions.py`) with one of its sentences (`sentences=one`, the default:
the sentence at index `mix64(seed, ann_id) % n` in sent_id order, so a conversation never asks the same
box twice with different answers; `sentences=all` gives one turn per sentence). The expression is the
normalised `sent` (lower case), or `raw` where `sent` is empty. The REG/REC choice is keyed on
`ann_id * 32 + sentence index`. Turns of one image and dataset are in ref_id order and cut into segments of
`max_turns` (9: LLaVA-1.5 App. A.2, "segments, each containing fewer than 10 conversations"), with ids
`refcoco/<dataset>/<image_id>_<segment>`; `<dataset>` is the folder name (refcoco, refcoco+, refcocog).

Only `splits=train` by default: val, test, testA, testB (and refclef's testC) are evaluation data. A ref given
twice (the same ann_id and sentences, as in refcocog's google and umd files, or refcoco's unc and google) is
used once, and not at all if any of its copies is in a split that was not chosen, so a train ref of one
split scheme cannot leak another scheme's test images. Rejections: `split_not_selected`, `duplicate_ref`,
`no_annotation`, `no_image`, `image_id_mismatch`, `not_coco_image` (refclef), `no_sentences`,
`degenerate_box`/`box_outside_image`, `malformed_record`. Image paths: `train2017/%012d.jpg`
(`coco_naming=2017`, LLaVA-1.5's `coco/train2017/`) or `train2014/COCO_train2014_%012d.jpg` (2014).

Box frame (`box_frame`): `square` by default, the expand2square image LLaVA-1.5's stage 2 shows the model, as
for VG; LLaVA's released file used the original image for RefCOCO (`box_frame=original`). See `regions.py`.
"""

from __future__ import annotations

import io
import pickle
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import polars as pl
import pyarrow as pa

from datamix.converters.base import Converter, gc_paused
from datamix.converters.options import option
from datamix.converters.qa import merge_per_image
from datamix.converters.regions import (DEFAULT_SEED, FORMAT_RULE, SALT_SENTENCE, BoxFrame, clean_text,
                                        grounding_turns, mix64, normalize_boxes)
from datamix.errors import ConverterError
from datamix.jsonio import convert_record, decode_any, decode_typed, first_byte, read_bytes
from datamix.ledger import Ledger
from datamix.prompts import PromptPolicy

SPLITS = ("train", "val", "test", "testA", "testB", "testC")
MAX_TURNS = 9
SENTENCE_SLOTS = 32  # format key = ann_id * 32 + sentence index
COCO_NAME = re.compile(r"COCO_(train|val)2014_(\d{12})(?:_\d+)?\.jpg$")
SENTENCE_RULE = {"one": "sentence index mix64(seed, salt=2, ann_id) % n in sent_id order",
                 "all": "every sentence, one turn each"}


@dataclass(frozen=True)
class RefCocoOptions:
    splits: str = option("train", "comma-separated ref splits to convert (train, val, test, testA, testB, testC); "
                                  "all but train are evaluation data")
    sentences: str = option("one", "one = one seeded sentence per ref; all = one turn per sentence",
                            choices=("one", "all"))
    max_turns: int = option(MAX_TURNS, "exchanges per conversation segment (LLaVA-1.5: fewer than 10)")
    box_frame: str = option("square", "square = boxes on the expand2square-padded image LLaVA-1.5 stage 2 shows; "
                                      "original = on the unpadded image", choices=tuple(f.value for f in BoxFrame))
    coco_naming: str = option("2017", "image paths train2017/%012d.jpg (2017, LLaVA-1.5's layout) or "
                                      "train2014/COCO_train2014_%012d.jpg (2014)", choices=("2017", "2014"))
    seed: int = option(DEFAULT_SEED, "seed of the sentence pick and the REG/REC choice (recorded in meta)")


class Sentence(msgspec.Struct):
    sent_id: int | None = None
    sent: str | None = None
    raw: str | None = None


class Ref(msgspec.Struct):
    ref_id: int | None = None
    ann_id: int | None = None
    image_id: int | None = None
    split: str | None = None
    file_name: str | None = None
    sentences: list[Sentence] | None = None


class CocoImage(msgspec.Struct):
    id: int | None = None
    width: float | None = None
    height: float | None = None
    file_name: str | None = None


class CocoAnnotation(msgspec.Struct):
    id: int | None = None
    image_id: int | None = None
    bbox: list[float] | None = None


class Instances(msgspec.Struct):
    images: list[CocoImage] | None = None
    annotations: list[CocoAnnotation] | None = None


class RefCOCO(Converter):
    id = "refcoco"
    description = "RefCOCO / RefCOCO+ / RefCOCOg refs(<splitBy>).p + instances.json: REG/REC turns per image"
    Options = RefCocoOptions
    input_suffixes = (".json", ".p")

    def convert(self, files: list[Path], ledger: Ledger) -> Iterator[pa.Table]:
        opts = self.options
        splits = parse_splits(opts.splits)
        if opts.max_turns < 1:
            raise ConverterError(f"refcoco: option 'max_turns' must be at least 1, got {opts.max_turns}")
        pairs = pair_files(files)
        with gc_paused():  # millions of small objects (refs, sentences, tokens, annotations): see base.gc_paused
            parsed = [parsed_ref for path, dataset, _ in pairs for parsed_ref in self._parse(path, dataset, ledger)]
            instances = {inst: load_instances(inst) for _, _, inst in pairs}
            rows = self._rows(parsed, {path: instances[inst] for path, _, inst in pairs}, splits, ledger)
            del parsed, instances
        rows = normalize_boxes(rows, BoxFrame(opts.box_frame))
        rows = self._reject_boxes(rows, ledger)
        ledger.records_out += rows.height
        if rows.height:
            yield self._to_table(rows)

    # ------------------------------------------------------------------ refs -> one row per usable ref

    @staticmethod
    def _parse(path: Path, dataset: str, ledger: Ledger) -> list[tuple]:
        """(path, dataset, label, Ref or None, reason or None, texts, sent_ids) per ref of one refs file.

        The raw refs (with their token lists) are dropped as soon as they are typed, one file at a time.
        """
        raws = load_refs(path)
        ledger.records_in += len(raws)
        labels = [ref_label(raw, i) for i, raw in enumerate(raws)]
        typed = typed_refs(raws)
        del raws
        return [(path, dataset, label, ref, reason, *(sentences_of(ref) if ref is not None else ([], [])))
                for label, (ref, reason) in zip(labels, typed)]

    def _rows(self, parsed: list[tuple], instances: dict, splits: set[str], ledger: Ledger) -> pl.DataFrame:
        copies: dict[tuple, list[str]] = defaultdict(list)  # content key -> the split of every copy
        for _, _, _, ref, reason, texts, _ in parsed:
            if not reason:
                copies[(ref.ann_id, tuple(texts))].append(str(ref.split))
        seen: set[tuple] = set()
        columns: dict[str, list] = {name: [] for name in ROW_ARROW_SCHEMA.names}
        for path, dataset, label, ref, reason, texts, sent_ids in parsed:
            file = f"{path.parent.name}/{path.name}"
            reason = reason or self._reason(ref, texts, copies, seen, splits, instances[path])
            if reason:
                ledger.reject(label, reason, file=file)
                continue
            image_id, (x, y, w, h) = instances[path].annotations[ref.ann_id]
            width, height, file_name = instances[path].images[image_id]
            row = (label, file, dataset, image_id, ref.ref_id, ref.ann_id, x, y, w, h, width, height,
                   coco_path(image_id, file_name or ref.file_name, self.options.coco_naming), texts, sent_ids)
            for values, value in zip(columns.values(), row):
                values.append(value)
        return pl.from_arrow(pa.table(columns, schema=ROW_ARROW_SCHEMA))

    @staticmethod
    def _reason(ref: Ref, texts: list[str], copies: dict, seen: set, splits: set[str],
                instances: Index) -> str | None:
        key = (ref.ann_id, tuple(texts))
        if key in seen:
            return "duplicate_ref: the same ann_id and sentences were given earlier (another splitBy file?)"
        seen.add(key)
        other = [s for s in copies[key] if s not in splits]
        if other:
            other = sorted(set(other))
            where = ref.split if ref.split not in splits else f"{ref.split}, but a copy is in {', '.join(other)}"
            return f"split_not_selected: {where} (evaluation data unless chosen with the splits option)"
        if ref.ann_id is None or ref.ann_id not in instances.annotations:
            return f"no_annotation: ann_id {ref.ann_id} is not in instances.json"
        image_id, _ = instances.annotations[ref.ann_id]
        if ref.image_id is not None and image_id != ref.image_id:
            return f"image_id_mismatch: ref names image {ref.image_id}, its annotation image {image_id}"
        if image_id not in instances.images:
            return f"no_image: image {image_id} is not in instances.json"
        name = instances.images[image_id][2] or ref.file_name or ""
        if not COCO_NAME.search(name) and not COCO_NAME.search(ref.file_name or ""):
            return f"not_coco_image: {name!r} is not a COCO train2014/val2014 image (refclef?)"
        if not texts:
            return "no_sentences: the ref has no non-empty sentence"
        return None

    @staticmethod
    def _reject_boxes(rows: pl.DataFrame, ledger: Ledger) -> pl.DataFrame:
        for rid, reason, file in rows.filter(pl.col("box_status").is_not_null()).select(
                "ref_key", "box_status", "file").iter_rows():
            ledger.reject(rid, reason, file=file)
        return rows.filter(pl.col("box_status").is_null())

    # ------------------------------------------------------------------ rows -> segments

    def _to_table(self, rows: pl.DataFrame) -> pa.Table:
        opts = self.options
        n = rows["texts"].list.len().to_numpy().astype(np.uint64)
        pick = (mix64(rows["ann_id"].to_numpy(), opts.seed, SALT_SENTENCE) % n).astype(np.int64)
        turns = rows.with_columns(index=pl.int_ranges(pl.col("texts").list.len()), pick=pick).explode(
            "texts", "sent_ids", "index").rename({"texts": "text", "sent_ids": "sent_id"})
        if opts.sentences == "one":
            turns = turns.filter(pl.col("index") == pl.col("pick"))
        turns = turns.with_columns(text=clean_text(pl.col("text")),
                                   format_key=pl.col("ann_id") * SENTENCE_SLOTS + pl.col("index"))
        turns = grounding_turns(turns.sort(["dataset", "image_id", "ref_id", "index"]), seed=opts.seed)
        segment = (pl.int_range(pl.len()).over("dataset", "image_id") // opts.max_turns)
        turns = turns.with_columns(segment=segment).with_columns(
            image_key=pl.concat_str("dataset", pl.lit("/"), "image_id", pl.lit("_"), "segment"),
            image_key_first=pl.col("image_id").cast(pl.Utf8),
            ref_key_str=pl.col("ref_id").cast(pl.Utf8), ann_key=pl.col("ann_id").cast(pl.Utf8),
            sent_key=pl.col("sent_id").cast(pl.Utf8),
            box_frame=pl.lit(opts.box_frame), seed=pl.lit(opts.seed), format_rule=pl.lit(FORMAT_RULE),
            format_key_rule=pl.lit(f"ann_id * {SENTENCE_SLOTS} + sentence index"),
            sentence_rule=pl.lit(SENTENCE_RULE[opts.sentences]))
        return merge_per_image(
            turns, source=self.id, task="grounding", policy=PromptPolicy.none,
            meta_lists={"ref_ids": "ref_key_str", "ann_ids": "ann_key", "sent_ids": "sent_key", "formats": "format"},
            meta_first={"dataset": "dataset", "image_id": "image_key_first", "segment": "segment",
                        "box_frame": "box_frame", "seed": "seed", "format_rule": "format_rule",
                        "format_key": "format_key_rule", "sentence_rule": "sentence_rule"},
        )


ROW_ARROW_SCHEMA = pa.schema([
    ("ref_key", pa.string()), ("file", pa.string()), ("dataset", pa.string()), ("image_id", pa.int64()),
    ("ref_id", pa.int64()), ("ann_id", pa.int64()), ("x", pa.float64()), ("y", pa.float64()), ("w", pa.float64()),
    ("h", pa.float64()), ("width", pa.float64()), ("height", pa.float64()), ("image_path", pa.string()),
    ("texts", pa.list_(pa.string())), ("sent_ids", pa.list_(pa.int64()))])

# ---------------------------------------------------------------------- refs helpers

def parse_splits(text: str) -> set[str]:
    splits = {s.strip() for s in text.split(",") if s.strip()}
    unknown = sorted(splits - set(SPLITS))
    if not splits or unknown:
        raise ConverterError(f"refcoco: option 'splits' takes a comma-separated list of {', '.join(SPLITS)}; "
                             f"got {text!r}")
    return splits


def typed_refs(raws: list) -> list[tuple[Ref | None, str | None]]:
    """(Ref, None) or (None, reason) per raw ref; the whole list in one msgspec call when every ref fits."""
    try:
        return [(ref, None) for ref in msgspec.convert(raws, list[Ref])]
    except msgspec.ValidationError:
        return [convert_record(raw, Ref) for raw in raws]


def sentences_of(ref: Ref) -> tuple[list[str], list[int | None]]:
    """The non-empty expressions of a ref in sent_id order (`sent`, else `raw`), and their sent_ids."""
    sentences = ref.sentences or []
    ids = [s.sent_id for s in sentences]
    if None in ids or ids != sorted(ids):  # the files list them in order; sort only when they do not
        sentences = sorted(sentences, key=lambda s: (s.sent_id is None, s.sent_id or 0))
    texts, kept = [], []
    for s in sentences:
        text = s.sent if s.sent and not s.sent.isspace() else s.raw if s.raw and not s.raw.isspace() else ""
        if text:
            texts.append(text)
            kept.append(s.sent_id)
    return texts, kept


def ref_label(raw: object, index: int) -> str:
    """The id a ref is filed under: its ref_id (read from the raw dict, so a malformed ref has one too)."""
    ref_id = raw.get("ref_id") if isinstance(raw, dict) else None
    return str(ref_id) if ref_id is not None else f"#{index}"


def coco_path(image_id: int, file_name: str | None, naming: str) -> str:
    if naming == "2017":  # train2017 holds every train2014 image under the same id
        return f"train2017/{image_id:012d}.jpg"
    match = COCO_NAME.search(file_name or "")
    split = match.group(1) if match else "train"  # all RefCOCO images are train2014
    return f"{split}2014/COCO_{split}2014_{image_id:012d}.jpg"


# ---------------------------------------------------------------------- reading the files

class _Refused(Exception):
    pass


class PlainUnpickler(pickle.Unpickler):
    """Builds only what pickle opcodes make by themselves: lists, dicts, tuples, strings, numbers, None.

    Every global lookup (the only way a pickle runs code: `os.system`, `builtins.eval`, any class) is refused
    before the object is called.
    """

    def find_class(self, module: str, name: str) -> Any:
        raise _Refused(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused(f"persistent id {pid!r}")


def load_refs(path: Path) -> list:
    data = read_bytes(path)
    try:
        try:
            refs = _unpickle(data, "utf-8")
        except UnicodeDecodeError:  # a Python-2 str that is not UTF-8: decode string by string
            refs = _texts(_unpickle(data, "bytes"))
    except _Refused as exc:
        raise ConverterError(f"{path}: refused to unpickle: the file asks for the global {str(exc)[:80]!r} (a refs file holds "
                             "only lists, dicts, strings and numbers); nothing in it was run") from None
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the file is not a refs pickle
        detail = " ".join(str(exc).split())[:200]  # one line, whatever the damaged bytes hold
        raise ConverterError(f"{path}: not a RefCOCO refs pickle ({type(exc).__name__}: {detail})") from None
    if not isinstance(refs, list):
        raise ConverterError(f"{path}: not a RefCOCO refs pickle: expected a list of refs, got {type(refs).__name__}")
    return refs


def _unpickle(data: bytes, encoding: str) -> Any:
    return PlainUnpickler(io.BytesIO(data), encoding=encoding).load()


def _texts(value: Any) -> Any:
    """Python-2 byte strings (loaded with encoding='bytes') -> str: UTF-8, else Latin-1."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.decode("latin-1")
    if isinstance(value, list):
        return [_texts(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_texts(v) for v in value)
    if isinstance(value, dict):
        return {_texts(k): _texts(v) for k, v in value.items()}
    return value


@dataclass
class Index:
    images: dict[int, tuple[float | None, float | None, str | None]]  # id -> (width, height, file_name)
    annotations: dict[int, tuple[int, list[float]]]  # ann id -> (image id, bbox)


def load_instances(path: Path) -> Index:
    data = read_bytes(path)
    parsed = decode_typed(path, data, Instances)
    if parsed is None:  # a record that does not fit: keep the others (refs on it are then `no_annotation`)
        raw = decode_any(path, data)
        if not isinstance(raw, dict):
            raise ConverterError(f"{path}: not a COCO instances.json: expected a JSON object")
        parsed = Instances(
            images=[r for r in (convert_record(x, CocoImage)[0] for x in raw.get("images") or []) if r],
            annotations=[r for r in (convert_record(x, CocoAnnotation)[0] for x in raw.get("annotations") or [])
                         if r])
    del data
    if parsed.images is None or parsed.annotations is None:
        raise ConverterError(f"{path}: not a COCO instances.json: expected 'images' and 'annotations' lists")
    images = {im.id: (im.width, im.height, im.file_name) for im in parsed.images if im.id is not None}
    annotations = {a.id: (a.image_id, a.bbox) for a in parsed.annotations
                   if a.id is not None and a.bbox is not None and len(a.bbox) == 4}
    return Index(images, annotations)


def pair_files(files: list[Path]) -> list[tuple[Path, str, Path]]:
    """(refs pickle, dataset name, the instances.json of its folder) for every refs file among the inputs."""
    refs, instances = [], {}
    for path in files:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
        if first_byte(head) in (b"{", b"["):
            if b'"images"' not in head and b'"annotations"' not in head:
                raise ConverterError(f"{path}: a JSON file that is not a COCO instances.json "
                                     "(no 'images' or 'annotations')")
            if path.parent in instances:
                raise ConverterError(f"{path}: a second instances.json in {path.parent}; "
                                     "give one per refs folder")
            instances[path.parent] = path
        else:
            refs.append(path)
    if not refs:
        raise ConverterError("refcoco: no refs(<splitBy>).p pickle among the inputs")
    pairs = []
    for path in refs:
        if path.parent not in instances:
            raise ConverterError(f"{path}: no instances.json next to it among the inputs (the official layout "
                                 "keeps refs(<splitBy>).p and instances.json in one folder)")
        pairs.append((path, path.parent.name, instances[path.parent]))
    return pairs
