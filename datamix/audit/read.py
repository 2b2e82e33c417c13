"""Read a released LLaVA mix file into two columnar frames: one row per record, one row per turn.

The file is LLaVA's training JSON (`llava_v1_5_mix665k.json`, about 1 GB and 665,298 records, or any
LLaVA-format list): one JSON array of `{"id", "image"?, "conversations": [{"from", "value"}, ...]}`
(LLaVA `train.py` loads it whole with `json.load`). It is decoded once by msgspec into the llava
converter's lenient Structs (only the fields read are built), then flattened into polars columns with
list comprehensions, so every figure after this is a vectorised expression, not a loop per record.

A record that does not fit the Structs (a turn that is a string, an `image` that is a number) is kept
out of the frames and listed in `Released.malformed` with its position and reason; a file that is not
JSON, is truncated, or is not a list raises one clear InputError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import gc

import msgspec
import numpy as np
import polars as pl

from datamix.converters.llava import LlavaRecord, as_images
from datamix.errors import InputError
from datamix.jsonio import convert_record, read_bytes

EXPECTED = 'a JSON list of LLaVA records ({"id", "image", "conversations"})'


@dataclass
class Released:
    """`records`: row, index (position in the file), id, image (first path or ""), n_images, n_turns,
    no_conversations. `turns`: row, pos (turn number in its record), role, value. `images`: row, path (every
    image of a record). `row` joins the three."""

    path: Path
    records: pl.DataFrame
    turns: pl.DataFrame
    images: pl.DataFrame
    malformed: list[dict] = field(default_factory=list)  # {"index", "reason"} per record left out

    @property
    def total(self) -> int:
        return self.records.height + len(self.malformed)


def read_released(path: str | Path) -> Released:
    """Decode `path` (fast typed path; record by record only when some record does not fit)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    data = read_bytes(path)
    # Millions of small objects, none of them cyclic: the collector's passes over them would double the time.
    enabled = gc.isenabled()
    gc.disable()
    try:
        try:
            records = msgspec.json.decode(data, type=list[LlavaRecord])
            indices, malformed = None, []
        except msgspec.ValidationError:
            records, indices, malformed = _record_by_record(path, data)
        except msgspec.DecodeError as exc:
            raise InputError(f"{path}: not valid JSON ({exc}); expected {EXPECTED}") from None
        del data
        frames = _frames(records, indices)
        del records
    finally:
        if enabled:
            gc.enable()
    return Released(path, *frames, malformed=malformed)


def _record_by_record(path: Path, data: bytes) -> tuple[list[LlavaRecord], list[int], list[dict]]:
    raw = msgspec.json.decode(data)  # valid JSON: the typed pass got as far as validating it
    if not isinstance(raw, list):
        raise InputError(f"{path}: expected {EXPECTED}, found a JSON {type(raw).__name__.replace('dict', 'object')}")
    records, indices, malformed = [], [], []
    for i, item in enumerate(raw):
        record, reason = convert_record(item, LlavaRecord)
        if reason is None:
            records.append(record)
            indices.append(i)
        else:
            malformed.append({"index": i, "reason": reason})
    return records, indices, malformed


def _frames(records: list[LlavaRecord], indices: list[int] | None) -> tuple[pl.DataFrame, ...]:
    n = len(records)
    images = [as_images(r.image) for r in records]
    n_images = np.fromiter((len(im) for im in images), np.int64, n)
    convs = [r.conversations or () for r in records]
    n_turns = np.fromiter((len(c) for c in convs), np.int64, n)
    recs = pl.DataFrame({
        "row": np.arange(n, dtype=np.int64),
        "index": np.arange(n, dtype=np.int64) if indices is None else np.asarray(indices, np.int64),
        "id": pl.Series([None if r.id is None else str(r.id) for r in records], dtype=pl.String),
        "image": pl.Series([im[0] if im else "" for im in images], dtype=pl.String),
        "n_images": n_images,
        "n_turns": n_turns,
        "no_conversations": pl.Series([not r.conversations for r in records], dtype=pl.Boolean),
    })
    paths = pl.DataFrame({"row": np.repeat(np.arange(n, dtype=np.int64), n_images),
                          "path": pl.Series([p for im in images for p in im], dtype=pl.String)})
    starts = np.concatenate([[0], np.cumsum(n_turns)[:-1]]) if n else np.zeros(0, np.int64)
    row = np.repeat(np.arange(n, dtype=np.int64), n_turns)
    turns = pl.DataFrame({
        "row": row,
        "pos": np.arange(len(row), dtype=np.int64) - np.repeat(starts, n_turns),
        "role": pl.Series([t.role for c in convs for t in c], dtype=pl.String),
        "value": pl.Series([t.value for c in convs for t in c], dtype=pl.String),
    })
    return recs, turns, paths
