"""TextCaps: captions that read the text in the image, one caption conversation per image.

Provenance: https://textvqa.org/textcaps/dataset (Sidorov et al., ECCV 2020), `TextCaps_0.1_{train,val,test}.json`;
images are the TextVQA/OpenImages `train_val_images.zip`. License: annotations CC BY 4.0, images from OpenImages
(CC BY 2.0 per image). A file is one object (recognised by content, `dataset_name` "textcaps"):

    {"dataset_type": "train", "dataset_name": "textcaps", "dataset_version": "0.1", "data": [
      {"image_id": "011e7e629fb9ae7b", "image_classes": ["Vehicle", "Car"], "flickr_original_url": "...",
       "flickr_300k_url": "...", "image_width": 1024, "image_height": 664, "set_name": "train",
       "image_name": "011e7e629fb9ae7b", "image_path": "train/011e7e629fb9ae7b.jpg", "caption_id": 2,
       "caption_str": "A white car with the number 17 on its door.", "caption_tokens": ["<s>", "a", ...],
       "reference_strs": [5 captions of the image], "reference_tokens": [[...] x5]}, ...]}

Each record is one caption, and the ~5 captions of an image are not adjacent in the file. LLaVA-1.5 keeps one
conversation per image (21,953 = the number of TextCaps train images): the human turn is the image and the
caption instruction "Provide a one-sentence caption for the provided image.", which is the `caption` task's
format prompt in `prompts.py` and is applied (and recorded in `meta`) like every other format prompt, so
`format_prompt: none` leaves an image-only turn. Which caption is the answer is not published; the option
`caption` decides and is recorded in `meta.caption_policy`: `first` (the first in the file, default), `longest`
(most characters, ties to the first) or `seeded` (chosen by a hash of `seed` and the image id, the same on every
run and machine). All caption records of an image count as used: they are merged into the one conversation,
with their `caption_ids` and the image's five `reference_strs` in `meta`.
Images are `train_images/<image_id>.jpg` under the source's image root (LLaVA: `textvqa/train_images/`; the
zip's `train_images/` holds the train and val images, whatever `image_path` says).
`meta`: image id, chosen caption id, caption ids, references, image classes, size, set name, caption policy.
Rejected, with the reason in the ledger: a record without `caption_str` (`no_caption`: the test split has none),
an empty caption, `<image>` in a caption, a missing or unsafe image id, a caption id seen before, a record that
is not an object or has the wrong types (`malformed_record`). Dropped: token lists and Flickr URLs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import polars as pl
import pyarrow as pa

from datamix.converters.base import BATCH, Converter, gc_paused
from datamix.converters.options import option
from datamix.converters.qa import blank, reject_rows
from datamix.errors import ConverterError
from datamix.jsonio import convert_record, decode_any, decode_typed, read_bytes
from datamix.ledger import Ledger
from datamix.progress import progress
from datamix.schema import IMAGE_TOKEN, Sample

STRINGS = pa.list_(pa.string())
SAFE_ID = r"^[0-9A-Za-z][0-9A-Za-z_-]*$"  # OpenImages ids are 16 hex digits


class Caption(msgspec.Struct):
    """The fields we read; the token lists and URLs are skipped by the parser."""

    image_id: str | None = None
    caption_id: int | None = None
    caption_str: str | None = None
    reference_strs: list[str] | None = None
    image_classes: list[str] | None = None
    image_width: int | None = None
    image_height: int | None = None
    set_name: str | None = None


class CaptionsFile(msgspec.Struct):
    dataset_name: str | None = None
    dataset_type: str | None = None
    data: list[Caption] | None = None


COLUMNS = {"image_id": pl.Utf8, "caption_id": pl.Int64, "caption": pl.Utf8, "references": pl.List(pl.Utf8),
           "classes": pl.List(pl.Utf8), "width": pl.Int64, "height": pl.Int64, "set_name": pl.Utf8, "file": pl.Utf8}


@dataclass(frozen=True)
class TextCapsOptions:
    caption: str = option("first", "which caption of an image is the answer: the first in the file, the longest "
                          "(ties to the first) or one chosen by a hash of `seed` and the image id",
                          choices=("first", "longest", "seeded"))
    seed: int = option(0, "the seed of caption=seeded")


class TextCaps(Converter):
    id = "textcaps"
    description = "TextCaps captions (TextCaps_0.1_*.json), one caption conversation per image"
    Options = TextCapsOptions

    def convert(self, files: list[Path], ledger: Ledger) -> Iterator[list[Sample]]:
        with gc_paused():  # millions of small objects: see base.gc_paused
            frames = [load_captions(path, ledger) for path in progress(files, "textcaps: parsing", unit="file")]
        rows = pl.concat(frames) if frames else pl.DataFrame(schema=COLUMNS)
        ledger.records_in += rows.height
        rows = rows.with_columns(rid=pl.coalesce(pl.col("caption_id").cast(pl.Utf8),
                                                 pl.lit("#") + pl.int_range(pl.len()).cast(pl.Utf8)))
        rows = reject_rows(rows, [
            (blank("image_id"), "missing_image_id"),
            (~pl.col("image_id").str.contains(SAFE_ID), "bad_image_id: cannot name an image file"),
            (pl.col("caption").is_null(), "no_caption: record has no caption_str (the test split has none)"),
            (pl.col("caption_id").is_not_null() & ~pl.col("caption_id").is_first_distinct(),
             "duplicate_caption_id: seen earlier in the inputs"),
            (blank("caption"), "empty_caption"),
            (pl.col("caption").str.contains(IMAGE_TOKEN, literal=True), "image_token_in_text"),
        ], ledger, id_column="rid")
        images = rows.group_by("image_id", maintain_order=True).agg(  # first appearance order: deterministic
            pl.col("caption").str.strip_chars(), pl.col("caption_id"), pl.col("rid"), pl.col("file").first(),
            pl.col("references", "classes", "width", "height", "set_name").first())
        batch: list[Sample] = []
        for image in images.iter_rows(named=True):
            sample = self._sample(image)
            invalid = self.finish(sample)
            if invalid:
                for rid in image["rid"]:
                    ledger.reject(rid, invalid, file=image["file"])
                continue
            ledger.records_out += len(image["rid"])
            batch.append(sample)
            if len(batch) == BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    def _choose(self, image_id: str, captions: list[str]) -> int:
        if self.options.caption == "longest":
            return max(range(len(captions)), key=lambda i: (len(captions[i]), -i))
        if self.options.caption == "seeded":
            digest = hashlib.sha256(f"{self.options.seed}:{image_id}".encode()).digest()
            return int.from_bytes(digest[:8], "big") % len(captions)
        return 0

    def _sample(self, image: dict) -> Sample:
        chosen = self._choose(image["image_id"], image["caption"])
        meta = {"original_id": image["image_id"], "image_id": image["image_id"],
                "caption_id": image["caption_id"][chosen], "caption_ids": image["caption_id"],
                "caption_policy": self.options.caption, "references": image["references"],
                "image_classes": image["classes"], "image_width": image["width"], "image_height": image["height"],
                "set_name": image["set_name"]}
        if self.options.caption == "seeded":
            meta["caption_seed"] = self.options.seed
        return Sample(id=f"{self.id}/{image['image_id']}", source=self.id, task="caption",
                      images=[f"train_images/{image['image_id']}.jpg"],
                      conversations=[{"from": "human", "value": IMAGE_TOKEN},  # + the caption prompt (finish)
                                     {"from": "gpt", "value": image["caption"][chosen]}],
                      meta=meta)


def load_captions(path: Path, ledger: Ledger) -> pl.DataFrame:
    """One TextCaps file -> one row per caption record; records that do not fit the type are rejected."""
    data = read_bytes(path)
    if not data.lstrip().startswith(b"{"):
        raise ConverterError(f"{path}: not a TextCaps file: expected a JSON object with a 'data' list")
    parsed = decode_typed(data, CaptionsFile)
    del data
    if parsed is None:
        parsed = _decode_one_by_one(path, ledger)
    if parsed.data is None:
        raise ConverterError(f"{path}: not a TextCaps file: expected a JSON object with a 'data' list")
    if parsed.dataset_name not in (None, "textcaps"):
        raise ConverterError(f"{path}: dataset_name is {parsed.dataset_name!r}, not 'textcaps' "
                             "(a TextVQA file has the same layout)")
    records = parsed.data
    return pl.DataFrame({
        "image_id": [r.image_id for r in records],
        "caption_id": [r.caption_id for r in records],
        "caption": [r.caption_str for r in records],
        # list columns through pyarrow, which builds them in C (polars goes element by element)
        "references": pa.array([r.reference_strs for r in records], STRINGS),
        "classes": pa.array([r.image_classes for r in records], STRINGS),
        "width": [r.image_width for r in records],
        "height": [r.image_height for r in records],
        "set_name": [r.set_name for r in records],
    }, schema={k: v for k, v in COLUMNS.items() if k != "file"}).with_columns(file=pl.lit(path.name))


def _decode_one_by_one(path: Path, ledger: Ledger) -> CaptionsFile:
    raw = decode_any(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("data"), list):
        raise ConverterError(f"{path}: not a TextCaps file: expected a JSON object with a 'data' list")
    good = []
    for i, record in enumerate(raw["data"]):
        value, reason = convert_record(record, Caption)
        if reason:
            ledger.records_in += 1
            cid = record.get("caption_id") if isinstance(record, dict) else None
            ledger.reject(f"#{i}" if cid is None else cid, reason, file=path.name)
        else:
            good.append(value)
    name = raw.get("dataset_name")
    return CaptionsFile(dataset_name=name if isinstance(name, str) else None, data=good)
