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
counted as `clipped`), its phrase is empty or holds `<image>`, it has no id, or its phrase repeats another
region's of the same image, ignoring case and surrounding spaces and periods (the repeat with the smaller hash
stays; phrases are compared by 64-bit hash). Phrases are stripped and whitespace-collapsed.

Box frame (`box_frame`): `square` (default, the expand2square image LLaVA-1.5's stage 2 shows the model) or
`original`; see `regions.py`. Regions are parsed by Arrow: the official file is turned into JSON Lines in
place (entries start with `{"regions": [`) and parsed on every core; any other layout is read whole.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from datamix.converters.base import Converter, gc_paused
from datamix.converters.options import option
from datamix.converters.qa import merge_per_image, reject_rows
from datamix.converters.regions import (DEFAULT_SEED, FORMAT_RULE, SALT_SAMPLE, BoxFrame, box_hundredths,
                                        box_problems, clean_text, format_boxes, grounding_turns, mix64)
from datamix.errors import ConverterError
from datamix.jsonio import convert_record, decode_any, decode_typed, first_byte, read_bytes, read_list_table
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


class CocoLink(msgspec.Struct):
    """What `load_coco_links` reads of an image_data.json record (apart from ImageData: a bad coco_id must
    not cost the converter an image)."""

    image_id: int | None = None
    id: int | None = None
    coco_id: int | None = None  # null, or -1, when the image is not a COCO image


class VG(Converter):
    id = "vg"
    description = "Visual Genome region_descriptions.json + image_data.json: sampled REG/REC turns per image"
    Options = VGOptions

    def convert(self, files: list[Path], ledger: Ledger) -> Iterator[pa.Table]:
        if self.options.regions_per_image < 1:
            raise ConverterError("vg: option 'regions_per_image' must be at least 1, "
                                 f"got {self.options.regions_per_image}")
        region_files, image_files = _classify(files)
        with gc_paused():  # 108K image records: see base.gc_paused
            images = pl.concat([load_image_data(f) for f in image_files])
        images = images.unique(
            "image_id", keep="first", maintain_order=True).with_columns(_in_image_data=pl.lit(True))
        entries, regions = [], []
        for path in progress(region_files, "vg: parsing", unit="file"):
            e, r = load_region_descriptions(path, ledger, first_entry=sum(x.height for x in entries))
            entries.append(e)
            regions.append(r)
        entry_rows = pl.concat(entries)
        ledger.records_in += entry_rows.height
        kept = self._reject_entries(entry_rows.join(images, on="image_id", how="left"), ledger)
        regions = pl.concat(regions)
        examined, width, height = self._examine(regions, kept, entry_rows.height)
        counts = self._counts(examined, kept)
        self._reject_without_regions(kept, counts, ledger)
        sampled = examined.filter(pl.col("drop") == 0, pl.col("rank") < self.options.regions_per_image)
        picked = regions[sampled["row"].to_numpy()]
        del examined, regions  # only the sampled fifth of the regions goes on
        ledger.records_out += counts.filter(pl.col("usable") > 0).height
        if sampled.height:
            yield self._to_table(sampled, picked, width, height, kept, counts)

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
    def _reject_without_regions(kept: pl.DataFrame, counts: pl.DataFrame, ledger: Ledger) -> None:
        empty = kept.join(counts.filter(pl.col("usable") > 0), on="entry", how="anti").join(counts, on="entry")
        for row in empty.iter_rows(named=True):
            why = ", ".join(f"{code} {row[f'dropped_{code}']}" for code in DROPS if row[f"dropped_{code}"])
            ledger.reject(row["image_id"], f"no_usable_regions: {row['in']} regions ({why or 'the entry lists none'})",
                          file=row["file"])

    # ------------------------------------------------------------------ regions (counted in meta)

    def _examine(self, regions: pl.DataFrame, kept: pl.DataFrame,
                 n_entries: int) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
        """Every region: drop code, and rank among its image's usable regions (seeded order).

        Returns that frame, in (image, seeded) order with `row` indexing `regions`, and per entry the image
        width and height. Numpy over the 5.4M regions of the real file; strings are only tested and hashed,
        nothing is copied, and rows of rejected images are only marked.
        """
        index = kept["entry"].to_numpy()
        keep = np.zeros(n_entries, dtype=bool)
        keep[index] = True
        width, height = np.full(n_entries, np.nan), np.full(n_entries, np.nan)
        width[index] = kept["width"].fill_null(np.nan).to_numpy()
        height[index] = kept["height"].fill_null(np.nan).to_numpy()
        entry = regions["entry"].to_numpy()
        ids = regions["region_id"]
        parts = [self._check_slice(regions.slice(start, SLICE), width, height)
                 for start in range(0, regions.height, SLICE)]  # slices: the temporaries stay small
        phrase = pl.concat([p for p, _, _ in parts]) if parts else pl.DataFrame(
            schema={"empty": pl.Boolean, "token": pl.Boolean, "key": pl.UInt64})
        problem = np.concatenate([b for _, b, _ in parts]) if parts else np.zeros(0, np.int8)
        clipped = np.concatenate([c for _, _, c in parts]) if parts else np.zeros(0, bool)
        drop = np.zeros(regions.height, dtype=np.int8)  # later assignments win: DROPS lists the most basic first
        for box_problem, code in ((1, "box_outside_image"), (2, "degenerate_box"), (3, "bad_image_size")):
            drop[problem == box_problem] = DROP_CODE[code]
        drop[phrase["token"].to_numpy()] = DROP_CODE["image_token_in_text"]
        drop[phrase["empty"].to_numpy()] = DROP_CODE["empty_phrase"]
        drop[ids.is_null().to_numpy()] = DROP_CODE["missing_region_id"]
        drop[~keep[entry]] = IMAGE_REJECTED
        order = _order_within(entry, mix64(ids.fill_null(0).to_numpy(), self.options.seed, SALT_SAMPLE))
        entry, drop = entry[order], drop[order]
        # A usable region whose phrase an earlier usable region of its image has (sorted: earlier = smaller hash)
        # is a duplicate. One 64-bit key per (image, phrase): a false match needs a 64-bit collision.
        usable = np.flatnonzero(drop == 0)
        pair = mix64(phrase["key"].to_numpy()[order[usable]] ^ mix64(entry[usable], 0, SALT_PAIR), 0, SALT_PAIR)
        drop[usable[~pl.Series(pair).is_first_distinct().to_numpy()]] = DROP_CODE["duplicate_phrase"]
        frame = pl.DataFrame({"entry": entry, "row": order, "drop": drop, "clipped": clipped[order],
                              "rank": _rank_within(entry, drop == 0)})
        return frame, width, height

    @staticmethod
    def _check_slice(regions: pl.DataFrame, width: np.ndarray, height: np.ndarray) -> tuple:
        """(empty, token, phrase key) frame, box problem and clipped arrays for a slice of the regions."""
        entry = regions["entry"].to_numpy()
        problem, clipped = box_problems(*(regions[c].fill_null(np.nan).to_numpy() for c in ("x", "y", "w", "h")),
                                        width[entry], height[entry])
        phrase = regions.select(
            empty=pl.col("phrase").is_null() | pl.col("phrase").str.contains(r"^\s*$"),
            token=pl.col("phrase").str.contains("<image>", literal=True).fill_null(False),
            # phrase identity for the duplicate check: case, surrounding spaces and periods ignored
            key=pl.col("phrase").str.to_lowercase().str.strip_chars(" \t\n\r.").hash(seed=0))
        return phrase, problem, clipped

    def _counts(self, examined: pl.DataFrame, kept: pl.DataFrame) -> pl.DataFrame:
        """Per kept image: in = sampled + not_sampled + every dropped_* count, and how many sampled were clipped."""
        k = self.options.regions_per_image
        entry = examined["entry"].to_numpy()
        drop = examined["drop"].to_numpy().astype(np.int64)
        index = kept["entry"].to_numpy()
        n_codes = IMAGE_REJECTED + 1
        size = int(max(entry.max(initial=-1), index.max(initial=-1))) + 1
        # one pass: the (entry, drop code) histogram
        by_code = np.bincount(entry * n_codes + drop, minlength=size * n_codes).reshape(size, n_codes)[index]
        usable = by_code[:, 0]
        sampled = np.minimum(usable, k)
        in_sample = (drop == 0) & (examined["rank"].to_numpy() < k) & examined["clipped"].to_numpy()
        clipped = np.bincount(entry[in_sample], minlength=size)[index]
        return pl.DataFrame({
            "entry": index, "usable": usable, "in": by_code.sum(axis=1), "sampled": sampled,
            "not_sampled": usable - sampled, "clipped": clipped,
            **{f"dropped_{code}": by_code[:, DROP_CODE[code]] for code in DROPS}})

    # ------------------------------------------------------------------ output

    def _to_table(self, sampled: pl.DataFrame, picked: pl.DataFrame, width: np.ndarray, height: np.ndarray,
                  kept: pl.DataFrame, counts: pl.DataFrame) -> pa.Table:
        """`sampled` (entry, rank, ...) and `picked`, the same regions' raw columns, row for row -> the table."""
        entry = picked["entry"].to_numpy()
        coords = box_hundredths(*(picked[c].to_numpy() for c in ("x", "y", "w", "h")), width[entry], height[entry],
                                BoxFrame(self.options.box_frame))
        rows = sampled.with_columns(region_id=picked["region_id"], text=clean_text(picked["phrase"]),
                                    box=format_boxes(coords))
        rows = grounding_turns(rows.with_columns(format_key=pl.col("region_id")), seed=self.options.seed)
        count_fields = ["in", "sampled", "not_sampled", "clipped", *(f"dropped_{code}" for code in DROPS)]
        per_image = kept.select("entry", "image_id", "image_path").join(
            counts.select("entry", regions=pl.struct(count_fields)), on="entry")
        rows = rows.join(per_image, on="entry").with_columns(
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


DROP_CODE = {code: i + 1 for i, code in enumerate(DROPS)}
SLICE = 1 << 20  # regions checked at a time
SALT_PAIR = 4  # mix64 salt of the (image, phrase) duplicate key
IMAGE_REJECTED = len(DROPS) + 1  # a region of an image the ledger already rejected: never sampled, never counted


def _order_within(entry: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Row order by (entry, key): entries stay grouped, rows inside one entry go by key.

    One sort of a packed 64-bit (entry, top bits of key) value; only if two rows of one entry share those
    top bits (about never) does it fall back to the two-key sort.
    """
    if not len(entry):
        return np.zeros(0, dtype=np.int64)
    entry_bits = max(1, int(entry.max()).bit_length())
    if entry_bits <= 32:
        packed = (entry.astype(np.uint64) << np.uint64(64 - entry_bits)) | (key >> np.uint64(entry_bits))
        order = np.argsort(packed, kind="stable")
        ordered = packed[order]
        if not (ordered[1:] == ordered[:-1]).any():
            return order
    return np.lexsort((key, entry))


def _rank_within(entry: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """For rows grouped by entry: the 0-based position of each usable row among its entry's usable rows."""
    if not len(entry):
        return np.zeros(0, dtype=np.int64)
    seen = np.cumsum(usable)
    starts = np.flatnonzero(np.r_[True, entry[1:] != entry[:-1]])
    before = (seen - usable)[starts]  # usable rows before each entry's first row
    group = np.cumsum(np.r_[True, entry[1:] != entry[:-1]]) - 1
    return np.where(usable, seen - 1 - before[group], -1)


# ---------------------------------------------------------------------- reading the files

def _classify(files: list[Path]) -> tuple[list[Path], list[Path]]:
    regions, images = [], []
    for path in files:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
        if first_byte(head) != b"[":
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
    records = decode_typed(path, data, list[ImageData])
    if records is None:  # a record that does not fit: keep the others (their images are then `no_image_data`)
        raw = decode_any(path, data)
        if not isinstance(raw, list):
            raise ConverterError(f"{path}: not image_data.json: expected a JSON list")
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


def load_coco_links(path: Path) -> list[tuple[int, int]]:
    """image_data.json -> (VG image id, COCO image id) of every image that is also a COCO image."""
    data = read_bytes(path)
    if first_byte(data) != b"[":
        raise ConverterError(f"{path}: not image_data.json: expected a JSON list of images")
    records = decode_typed(path, data, list[CocoLink])
    if records is None:  # a record that does not fit is skipped: it links nothing
        records = [r for r in (convert_record(x, CocoLink)[0] for x in decode_any(path, data)) if r is not None]
    pairs = [(r.image_id if r.image_id is not None else r.id, r.coco_id) for r in records]
    return [(vg, coco) for vg, coco in pairs if vg is not None and coco is not None and coco >= 0]


def load_region_descriptions(path: Path, ledger: Ledger, first_entry: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(entries: entry, image_id, file; regions: entry, region_id, x, y, w, h, phrase); `entry` numbers globally."""
    table = _read_as_lines(path)
    if table is None:
        items = read_list_table(path, ENTRY_TYPE)
        table = pa.Table.from_struct_array(items.flatten()) if items is not None else None
    if table is not None:
        entries, regions = _from_arrow(table)
    else:
        with gc_paused():  # every region a Python object: see base.gc_paused
            entries, regions = _from_python(path, ledger)
    del table
    pa.default_memory_pool().release_unused()
    shift = pl.col("entry") + first_entry
    return (entries.with_columns(entry=shift, file=pl.lit(path.name)).select(list(ENTRY_COLUMNS)),
            regions.with_columns(entry=shift).select(list(REGION_COLUMNS)))


# Where one image entry ends and the next begins in the official file (`json.dumps` spacing or compact):
# `"regions"` is the first key of every entry and appears nowhere else.
ENTRY_SEAMS = (b'}, {"regions": [', b'},{"regions":[')


def _read_as_lines(path: Path) -> pa.Table | None:
    """The fast path: the list streamed to Arrow as JSON Lines (the comma at each entry seam becomes a newline),
    parsed in blocks on every core without the whole file in memory. None when the file has no such seams
    (another key order) or the lines do not parse (a seam inside a string would leave one unterminated): the
    caller then reads it whole.
    """
    with open(path, "rb") as f:
        head = f.read(1 << 16)
        f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
        tail = f.read()
    seam = next((s for s in ENTRY_SEAMS if s in head), None)
    if first_byte(head) != b"[" or not tail.rstrip().endswith(b"]") or seam is None:
        return None
    options = pa_json.ReadOptions(block_size=1 << 24, use_threads=True)
    parse = pa_json.ParseOptions(explicit_schema=pa.schema(list(ENTRY_TYPE)), unexpected_field_behavior="ignore")
    with io.BufferedReader(_SeamsToLines(path, seam), buffer_size=1 << 22) as stream:
        try:
            table = pa_json.read_json(stream, read_options=options, parse_options=parse)
            table.validate(full=True)  # Arrow's reader does not check UTF-8; invalid strings crash polars later
            return table
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return None


class _SeamsToLines(io.RawIOBase):
    """A JSON list file read as JSON Lines: the outer brackets become spaces, each seam's comma a newline.

    Every change keeps the length, so the file is streamed in chunks; the end of what was read is held back
    until more comes, for a seam that straddles two chunks and for the closing bracket.
    """

    CHUNK = 1 << 22
    HOLD = 4096  # > len(seam): a seam across chunks is found; the caller saw "]" in the file's last 4096 bytes

    def __init__(self, path: Path, seam: bytes):
        self._file = open(path, "rb")  # noqa: SIM115 - closed with the stream
        self._seam = seam
        self._pending = bytearray()
        self._started = self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._done and len(self._pending) < len(buffer) + self.HOLD:
            chunk = self._file.read(self.CHUNK)
            if not chunk:
                self._done = True
                end = len(self._pending.rstrip()) - 1  # the closing bracket
                if end >= 0:
                    self._pending[end] = ord(" ")
                break
            if not self._started and chunk.strip():
                self._started = True
                chunk = bytearray(chunk)
                chunk[len(chunk) - len(chunk.lstrip())] = ord(" ")  # the opening bracket
            start = max(0, len(self._pending) - len(self._seam) + 1)
            self._pending += chunk
            at = self._pending.find(self._seam, start)
            while at >= 0:
                self._pending[at + 1] = ord("\n")
                at = self._pending.find(self._seam, at + len(self._seam))
        keep = 0 if self._done else self.HOLD  # the closing bracket may still be in what is held back
        n = min(len(buffer), max(0, len(self._pending) - keep))
        buffer[:n] = self._pending[:n]
        del self._pending[:n]
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


def _from_arrow(table: pa.Table) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One row per entry and one per region, by Arrow views of each parsed block (no copy of the strings)."""
    image_id = pc.coalesce(table.column("id"), table.column("image_id"))
    lengths, flats = [], []
    for chunk in table.column("regions").chunks:
        lengths.append(np.diff(pl.Series(chunk.offsets).to_numpy()))  # (Arrow's to_numpy would import pandas)
        flats.append(chunk.flatten())
    lengths = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
    flat = pa.chunked_array(flats, type=REGION_TYPE)

    def field(name: str) -> pa.ChunkedArray:
        return pa.chunked_array([c.field(name) for c in flat.chunks], type=REGION_TYPE.field(name).type)

    regions = pl.from_arrow(pa.table({
        "entry": np.repeat(np.arange(table.num_rows, dtype=np.int64), lengths),
        "region_id": pc.coalesce(field("region_id"), field("id")),
        "x": field("x"), "y": field("y"), "w": field("width"), "h": field("height"), "phrase": field("phrase")}))
    entries = pl.from_arrow(pa.table({"entry": np.arange(table.num_rows, dtype=np.int64), "image_id": image_id}))
    return entries, regions


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
