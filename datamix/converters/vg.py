"""Visual Genome region descriptions -> one grounding conversation of sampled regions per image.

Provenance: https://homes.cs.washington.edu/~ranjay/visualgenome/api.html (v1.2; v1.4 changed only objects and
relationships). License: CC BY 4.0. Files, recognised by content: `region_descriptions.json` (a list of
`{"id": <image id>, "regions": [...]}`) and `image_data.json` (sizes, and the only record of whether an image is
in `VG_100K/` or `VG_100K_2/`: its `url`). Both key spellings are read (FORMATS: v1.0 vs v1.2):

    region_descriptions.json (v1.2): {"id": 1, "regions": [{"region_id": 1382, "width": 82, "height": 139,
                                      "image_id": 1, "phrase": "the clock is green in colour", "y": 57, "x": 421}]}
    region_descriptions.json (v1.0): region keys {"id": <region id>, "image": <image id>, ...}
    image_data.json: {"width": 800, "url": "https://cs.stanford.edu/people/rak248/VG_100K_2/1.jpg",
                      "height": 600, "image_id": 1, "coco_id": null, "flickr_id": null}   (v1.0: "id")

LLaVA-1.5 (App. A.2): "we sample 10 annotations for images with additional annotations", each asked as a REG
or an REC turn (`regions.py`). Here: per image, the `regions_per_image` (10) usable regions with the smallest
`mix64(seed, region_id)` -- a seeded draw that does not depend on input order -- asked in that order, each
REG or REC by `regions.FORMAT_RULE`. Image paths are `VG_100K/<id>.jpg` or `VG_100K_2/<id>.jpg` as `url` says.

The ledger's record is one image entry of region_descriptions.json: it becomes one sample or is rejected
(`no_image_data`: the image is not in image_data.json; `no_image_folder`; `duplicate_image`;
`no_usable_regions`; `malformed_record`). Regions are counted inside the sample's `meta["regions"]` so that
`in = sampled + not_sampled + every dropped_* count`: a region is dropped when its box is degenerate
(`w <= 0`, `h <= 0`, or nothing inside the image; boxes that stick out, like VG's `x = -1`, are clipped and
counted as `clipped`), its phrase is empty or holds `<image>`, it has no id, or its phrase (case- and
whitespace-insensitive) repeats another region's of the same image (the repeat with the smaller hash stays).
Phrases are stripped and whitespace-collapsed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from datamix.converters.base import Converter
from datamix.converters.options import option
from datamix.converters.qa import merge_per_image, reject_rows
from datamix.converters.regions import (DEFAULT_SEED, FORMAT_RULE, SALT_SAMPLE, BoxFrame, clean_text,
                                        grounding_turns, mix64, normalize_boxes)
from datamix.errors import ConverterError
from datamix.jsonio import convert_record, decode_any, decode_typed, read_bytes, read_list_table
from datamix.ledger import Ledger
from datamix.progress import progress
from datamix.prompts import PromptPolicy

REGIONS_PER_IMAGE = 10
_ID = pa.int64()
_NUM = pa.float64()
# Both spellings of every key; the parser skips everything else. Numbers read as float64 (VG has ints).
REGION_TYPE = pa.struct([("region_id", _ID), ("id", _ID), ("x", _NUM), ("y", _NUM), ("width", _NUM),
                         ("height", _NUM), ("phrase", pa.string())])
ENTRY_TYPE = pa.struct([("id", _ID), ("image_id", _ID), ("regions", pa.list_(REGION_TYPE))])
REGION_COLUMNS = {"entry": pl.Int64, "region_id": pl.Int64, "x": pl.Float64, "y": pl.Float64, "w": pl.Float64,
                  "h": pl.Float64, "phrase": pl.Utf8}
ENTRY_COLUMNS = {"entry": pl.Int64, "image_id": pl.Int64, "file": pl.Utf8}
IMAGE_COLUMNS = {"image_id": pl.Int64, "width": pl.Float64, "height": pl.Float64, "image_path": pl.Utf8}
FOLDER_IN_URL = re.compile(r"/(VG_100K(?:_2)?)/([^/?#]+)$")
# Why a region is left out of its image's conversation; the code before ':' names its meta count.
DROPS = ("missing_region_id", "empty_phrase", "image_token_in_text", "bad_image_size", "degenerate_box",
         "box_outside_image", "duplicate_phrase")
SAMPLE_RULE = "per image, the regions_per_image usable regions with the smallest mix64(seed, salt=3, region_id)"


@dataclass(frozen=True)
class VGOptions:
    regions_per_image: int = option(REGIONS_PER_IMAGE, "regions sampled per image (LLaVA-1.5: 10); "
                                                       "an image with fewer usable regions gives all of them")
    box_frame: str = option("square", "square = boxes on the expand2square-padded image LLaVA-1.5 stage 2 shows; "
                                      "original = on the unpadded image", choices=tuple(f.value for f in BoxFrame))
    seed: int = option(DEFAULT_SEED, "seed of the region sample and the REG/REC choice (recorded in meta)")


class Region(msgspec.Struct):
    region_id: int | None = None
    id: int | None = None  # v1.0 spelling of region_id
    x: float | None = None
    y: float | None = None
    width: float | None = None
    height: float | None = None
    phrase: str | None = None


class Entry(msgspec.Struct):
    id: int | None = None
    image_id: int | None = None
    regions: list[Region] | None = None


class ImageData(msgspec.Struct):
    image_id: int | None = None
    id: int | None = None  # v1.0 spelling of image_id
    width: float | None = None
    height: float | None = None
    url: str | None = None


class VG(Converter):
    id = "vg"
    description = "Visual Genome region_descriptions.json + image_data.json: sampled REG/REC turns per image"
    Options = VGOptions

    def convert(self, files: list[Path], ledger: Ledger) -> Iterator[pa.Table]:
        if self.options.regions_per_image < 1:
            raise ConverterError(f"vg: option 'regions_per_image' must be at least 1, got {self.options.regions_per_image}")
        region_files, image_files = _classify(files)
        images = pl.concat([load_image_data(f) for f in image_files]).unique(
            "image_id", keep="first", maintain_order=True).with_columns(_in_image_data=pl.lit(True))
        entries, regions = [], []
        for path in progress(region_files, "vg: parsing", unit="file"):
            e, r = load_region_descriptions(path, ledger, first_entry=sum(x.height for x in entries))
            entries.append(e)
            regions.append(r)
        entry_rows = pl.concat(entries)
        ledger.records_in += entry_rows.height
        entry_rows = self._reject_entries(entry_rows.join(images, on="image_id", how="left"), ledger)
        rows = pl.concat(regions).join(entry_rows, on="entry", how="inner")
        rows = self._usable(rows)
        counts = self._region_counts(rows)
        no_regions = entry_rows.join(counts.filter(pl.col("usable") > 0), on="entry", how="anti")
        self._reject_without_regions(no_regions, counts, ledger)
        sampled = rows.filter(pl.col("drop").is_null() & (pl.col("rank") < self.options.regions_per_image))
        ledger.records_out += sampled["entry"].n_unique()
        if sampled.height:
            yield self._to_table(sampled, counts)

    # ------------------------------------------------------------------ images (ledger records)

    @staticmethod
    def _reject_entries(entries: pl.DataFrame, ledger: Ledger) -> pl.DataFrame:
        return reject_rows(entries, [
            (pl.col("image_id").is_null(), "missing_image_id: entry has neither 'id' nor 'image_id'"),
            (~pl.col("image_id").is_first_distinct(), "duplicate_image: image listed earlier in the inputs"),
            (pl.col("_in_image_data").is_null(),
             "no_image_data: image is not in image_data.json (no size, no folder)"),
            (pl.col("image_path").is_null(),
             "no_image_folder: image_data.json url names neither VG_100K/ nor VG_100K_2/"),
        ], ledger, id_column="image_id")

    @staticmethod
    def _reject_without_regions(no_regions: pl.DataFrame, counts: pl.DataFrame, ledger: Ledger) -> None:
        detail = no_regions.join(counts, on="entry", how="left")
        for image_id, file, regions in detail.select("image_id", "file", "regions").iter_rows():
            dropped = {k.removeprefix("dropped_"): v for k, v in (regions or {}).items() if k.startswith("dropped_") and v}
            why = ", ".join(f"{k} {v}" for k, v in dropped.items()) or "the entry lists none"
            ledger.reject(image_id, f"no_usable_regions: {(regions or {}).get('in', 0)} regions ({why})", file=file)

    # ------------------------------------------------------------------ regions (counted in meta)

    def _usable(self, rows: pl.DataFrame) -> pl.DataFrame:
        """Boxes normalised, text cleaned, drop reason per region, and the seeded rank among an image's keepers."""
        rows = normalize_boxes(rows, BoxFrame(self.options.box_frame)).with_columns(text=clean_text(pl.col("phrase")))
        key = pl.Series(mix64(rows["region_id"].fill_null(0).to_numpy(), self.options.seed, SALT_SAMPLE))
        drop = (pl.when(pl.col("region_id").is_null()).then(pl.lit("missing_region_id"))
                .when(pl.col("text").is_null() | (pl.col("text") == "")).then(pl.lit("empty_phrase"))
                .when(pl.col("text").str.contains("<image>", literal=True)).then(pl.lit("image_token_in_text"))
                .when(pl.col("box_status").is_not_null()).then(pl.col("box_status").str.extract(r"^(\w+)")))
        rows = rows.with_columns(_hash=key, drop=drop).sort(["entry", "_hash", "region_id"])
        # Among usable regions only (sorted by hash): a dropped region never shadows a usable one.
        usable = pl.col("drop").is_null()
        first = pl.struct("entry", pl.col("text").str.to_lowercase(), usable.alias("_usable")).is_first_distinct()
        rows = rows.with_columns(drop=pl.when(usable & ~first).then(pl.lit("duplicate_phrase")).otherwise(pl.col("drop")))
        return rows.with_columns(rank=pl.when(pl.col("drop").is_null()).then(
            pl.col("drop").is_null().cum_sum().over("entry") - 1))

    def _region_counts(self, rows: pl.DataFrame) -> pl.DataFrame:
        k = self.options.regions_per_image
        usable = pl.col("drop").is_null().cast(pl.Int64)
        counts = rows.group_by("entry").agg(
            usable=usable.sum(),
            regions=pl.struct(
                pl.len().alias("in"),
                usable.sum().clip(upper_bound=k).alias("sampled"),
                (usable.sum() - k).clip(lower_bound=0).alias("not_sampled"),
                (pl.col("clipped") & (pl.col("rank") < k)).sum().alias("clipped"),
                *[(pl.col("drop") == code).sum().alias(f"dropped_{code}") for code in DROPS]))
        return counts

    # ------------------------------------------------------------------ output

    def _to_table(self, sampled: pl.DataFrame, counts: pl.DataFrame) -> pa.Table:
        rows = grounding_turns(sampled.with_columns(format_key=pl.col("region_id")), seed=self.options.seed)
        rows = rows.join(counts.select("entry", "regions"), on="entry", how="left").with_columns(
            image_key=pl.col("image_id").cast(pl.Utf8),
            region_key=pl.col("region_id").cast(pl.Utf8),
            box_frame=pl.lit(self.options.box_frame),
            seed=pl.lit(self.options.seed),
            format_rule=pl.lit(FORMAT_RULE),
            sample_rule=pl.lit(SAMPLE_RULE),
            regions_per_image=pl.lit(self.options.regions_per_image),
        ).sort(["image_id", "rank"])
        return merge_per_image(
            rows, source=self.id, task="grounding", policy=PromptPolicy.none,
            meta_lists={"region_ids": "region_key", "formats": "format"},
            meta_first={"image_id": "image_key", "regions": "regions", "box_frame": "box_frame", "seed": "seed",
                        "format_rule": "format_rule", "sample_rule": "sample_rule",
                        "regions_per_image": "regions_per_image"},
        )


# ---------------------------------------------------------------------- reading the files

def _classify(files: list[Path]) -> tuple[list[Path], list[Path]]:
    regions, images = [], []
    for path in files:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
        if not head.lstrip().startswith(b"["):
            raise ConverterError(f"{path}: not a Visual Genome file: expected a JSON list "
                                 "(region_descriptions.json or image_data.json)")
        if b'"regions"' in head:
            regions.append(path)
        elif b'"url"' in head or b'"width"' in head:
            images.append(path)
        elif head.lstrip()[1:].lstrip().startswith(b"]"):
            raise ConverterError(f"{path}: an empty JSON list; expected region_descriptions.json or image_data.json")
        else:
            raise ConverterError(f"{path}: not region_descriptions.json ('regions' lists) nor image_data.json "
                                 "('url', 'width', 'height')")
    if not regions:
        raise ConverterError("vg: no region_descriptions.json among the inputs")
    if not images:
        raise ConverterError("vg: image_data.json is needed too: it holds the image sizes and, in 'url', "
                             "whether an image is in VG_100K/ or VG_100K_2/")
    return regions, images


def load_image_data(path: Path) -> pl.DataFrame:
    """image_data.json -> image_id, width, height, image_path (`VG_100K[_2]/<name>` from the url, else null)."""
    data = read_bytes(path)
    records = decode_typed(data, list[ImageData])
    if records is None:  # a record that does not fit: keep the others (their images are then `no_image_data`)
        raw = decode_any(path)
        records = [r for r in (convert_record(x, ImageData)[0] for x in raw) if r is not None]
    del data
    paths = []
    for r in records:
        match = FOLDER_IN_URL.search(r.url or "")
        paths.append(f"{match.group(1)}/{match.group(2)}" if match else None)
    return pl.DataFrame({
        "image_id": [r.image_id if r.image_id is not None else r.id for r in records],
        "width": [r.width for r in records], "height": [r.height for r in records], "image_path": paths,
    }, schema=IMAGE_COLUMNS).filter(pl.col("image_id").is_not_null())


def load_region_descriptions(path: Path, ledger: Ledger, first_entry: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(entries: entry, image_id, file; regions: entry, region_id, x, y, w, h, phrase); `entry` numbers globally."""
    items = read_list_table(path, ENTRY_TYPE)
    if items is not None:
        entries, regions = _from_arrow(items)
    else:
        entries, regions = _from_python(path, ledger)
    pa.default_memory_pool().release_unused()
    shift = pl.col("entry") + first_entry
    return (entries.with_columns(entry=shift, file=pl.lit(path.name)).select(list(ENTRY_COLUMNS)),
            regions.with_columns(entry=shift).select(list(REGION_COLUMNS)))


def _from_arrow(items: pa.ListArray) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Flatten list<entry<list<region>>> by Arrow views: one row per entry and one per region."""
    entries = items.flatten()
    image_id = pc.coalesce(entries.field("id"), entries.field("image_id"))
    region_lists = entries.field("regions")
    lengths = pc.fill_null(pc.list_value_length(region_lists), 0).to_numpy(zero_copy_only=False)
    flat = region_lists.flatten()
    regions = pl.from_arrow(pa.table({
        "entry": np.repeat(np.arange(len(entries), dtype=np.int64), lengths),
        "region_id": pc.coalesce(flat.field("region_id"), flat.field("id")),
        "x": flat.field("x"), "y": flat.field("y"), "w": flat.field("width"), "h": flat.field("height"),
        "phrase": flat.field("phrase")}))
    frame = pl.from_arrow(pa.table({"entry": np.arange(len(entries), dtype=np.int64), "image_id": image_id}))
    return frame, regions


def _from_python(path: Path, ledger: Ledger) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Slow path when Arrow cannot type the file: convert entry by entry, reject the ones that do not fit."""
    raw = decode_any(path)
    if not isinstance(raw, list):
        raise ConverterError(f"{path}: not region_descriptions.json: expected a JSON list")
    image_ids, entry_index, columns = [], [], {k: [] for k in ("region_id", "x", "y", "w", "h", "phrase")}
    for i, item in enumerate(raw):
        entry, reason = convert_record(item, Entry)
        if reason:
            ledger.records_in += 1
            rid = item.get("id", item.get("image_id")) if isinstance(item, dict) else None
            ledger.reject(rid if rid is not None else f"#{i}", reason, file=path.name)
            continue
        n = len(image_ids)
        image_ids.append(entry.image_id if entry.id is None else entry.id)
        for r in entry.regions or []:
            entry_index.append(n)
            for key, value in (("region_id", r.region_id if r.region_id is not None else r.id), ("x", r.x),
                               ("y", r.y), ("w", r.width), ("h", r.height), ("phrase", r.phrase)):
                columns[key].append(value)
    entries = pl.DataFrame({"entry": list(range(len(image_ids))), "image_id": image_ids},
                           schema={"entry": pl.Int64, "image_id": pl.Int64})
    regions = pl.DataFrame({"entry": entry_index, **columns}, schema=REGION_COLUMNS)
    return entries, regions
