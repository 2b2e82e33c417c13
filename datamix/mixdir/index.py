"""`index.parquet`: one row per sample of a mix, in mix order, written as the samples are.

The unified schema plus where each sample lives (key, shard) and what its images are (content sha256,
size), and the `sample_numbers` columns: statistics, subsampling, `verify` and the trainer's length
grouping read this, never the tars.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from datamix import sample_numbers
from datamix.paths import Atomic
from datamix.table import ARROW_SCHEMA, encode_meta

ROWS_PER_WRITE = 8192

ROW_SCHEMA = pa.schema([
    ("key", pa.string()), ("shard", pa.string()),
    *[(f.name, f.type) for f in ARROW_SCHEMA],
    ("image_sha256", pa.list_(pa.string())), ("image_bytes", pa.list_(pa.int64())), ("turns", pa.int32()),
])
INDEX_SCHEMA = pa.schema([*ROW_SCHEMA, *sample_numbers.FIELDS])  # + what `datamix stats` reads


@dataclass
class SourceStats:
    """What a writer counts per source as samples pass (the rest of stats.json is computed from the index)."""

    samples: int = 0
    turns: int = 0
    images: int = 0
    text_only: int = 0
    image_bytes: int = 0
    reencoded: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict:
        return {"samples": self.samples, "turns": self.turns, "images": self.images, "text_only": self.text_only,
                "image_bytes": self.image_bytes, "reencoded": dict(sorted(self.reencoded.items()))}


class IndexWriter:
    """Per-source counts plus `index.parquet` (one row per sample, in mix order), fed as samples are written."""

    def __init__(self, sources: list[str], path: Path):
        self.stats = {name: SourceStats() for name in sources}
        self._file = Atomic(path)
        self._writer = pq.ParquetWriter(self._file.tmp, INDEX_SCHEMA, compression="zstd")
        self._rows: list[dict] = []

    def add(self, key: str, shard: str, row: dict, image_sha256: list[str], sizes: list[int],
            notes: list[str | None]) -> None:
        """One sample: its row, its images' sha256 (hex) and sizes, their re-encode notes."""
        stats = self.stats.setdefault(row["source"], SourceStats())
        turns = sum(1 for t in row["conversations"] if t["from"] == "human")
        stats.samples += 1
        stats.turns += turns
        stats.images += len(sizes)
        stats.text_only += not sizes
        stats.image_bytes += sum(sizes)
        stats.reencoded.update(note for note in notes if note)
        self._rows.append({"key": key, "shard": shard, "id": row["id"], "source": row["source"], "task": row["task"],
                           "images": row["images"], "conversations": row["conversations"],
                           "meta": encode_meta(row["meta"]),
                           "image_sha256": image_sha256, "image_bytes": sizes, "turns": turns})
        if len(self._rows) >= ROWS_PER_WRITE:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            table = pa.Table.from_pylist(self._rows, schema=ROW_SCHEMA)
            self._writer.write_table(sample_numbers.with_numbers(table))
            self._rows = []

    def close(self) -> dict[str, SourceStats]:
        self._flush()
        self._writer.close()
        self._file.commit()
        return self.stats

    def abort(self) -> None:
        self._writer.close()
        self._file.discard()
