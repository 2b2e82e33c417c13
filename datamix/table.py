"""Parquet storage of the unified schema through pyarrow.

Conversations are a list of `{from, value}` structs and `meta` is a JSON string, so the files read
directly in polars, pyarrow and Hugging Face `datasets.Dataset.from_parquet`. Files written here also
carry the `sample_numbers` columns (turn roles and lengths, prompt flags, short answers, a conversation
hash), computed once as they are written, which `datamix stats` reads instead of the text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from datamix import sample_numbers
from datamix.paths import Atomic
from datamix.schema import Sample

TURN_TYPE = pa.struct([("from", pa.string()), ("value", pa.string())])
ARROW_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("task", pa.string()),
        ("images", pa.list_(pa.string())),
        ("conversations", pa.list_(TURN_TYPE)),
        ("meta", pa.string()),
    ]
)
STORED_SCHEMA = pa.schema([*ARROW_SCHEMA, *sample_numbers.FIELDS])  # what SampleWriter writes
BATCH_ROWS = 8192


def encode_meta(meta: dict) -> str:
    # Sorted keys: the same sample always serialises to the same bytes.
    return json.dumps(meta, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def samples_to_table(samples: Iterable[Sample]) -> pa.Table:
    columns: dict[str, list] = {name: [] for name in ARROW_SCHEMA.names}
    for s in samples:
        columns["id"].append(s.id)
        columns["source"].append(s.source)
        columns["task"].append(s.task)
        columns["images"].append(s.images)
        columns["conversations"].append(s.conversations)
        columns["meta"].append(encode_meta(s.meta))
    return pa.Table.from_pydict(columns, schema=ARROW_SCHEMA)


def table_to_samples(table: pa.Table) -> Iterator[Sample]:
    """The samples of a table of the unified schema (any further columns, such as the stored numbers, ignored)."""
    for batch in table.select(ARROW_SCHEMA.names).to_batches(BATCH_ROWS):
        for row in batch.to_pylist():
            row["meta"] = json.loads(row["meta"]) if row["meta"] else {}
            yield Sample.from_dict(row)


class SampleWriter:
    """Streams tables or samples into one Parquet file, written to a temporary name and renamed on close."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = Atomic(self.path)
        self._writer = pq.ParquetWriter(self._file.tmp, STORED_SCHEMA, compression="zstd")
        self.rows = 0

    def write_table(self, table: pa.Table) -> None:
        table = sample_numbers.with_numbers(table.select(ARROW_SCHEMA.names).cast(ARROW_SCHEMA))
        self._writer.write_table(table, row_group_size=64 * 1024)
        self.rows += table.num_rows

    def write_samples(self, samples: Iterable[Sample]) -> None:
        batch: list[Sample] = []
        for sample in samples:
            batch.append(sample)
            if len(batch) == BATCH_ROWS:
                self.write_table(samples_to_table(batch))
                batch = []
        if batch:
            self.write_table(samples_to_table(batch))

    def close(self) -> None:
        self._writer.close()
        self._file.commit()

    def abort(self) -> None:
        self._writer.close()
        self._file.discard()

    def __enter__(self) -> SampleWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.abort() if exc_type else self.close()


def write_samples(path: str | Path, samples: Iterable[Sample]) -> int:
    with SampleWriter(path) as writer:
        writer.write_samples(samples)
    return writer.rows


def read_table(path: str | Path) -> pa.Table:
    return pq.read_table(path, columns=ARROW_SCHEMA.names, schema=ARROW_SCHEMA)


def read_samples(path: str | Path) -> Iterator[Sample]:
    yield from table_to_samples(read_table(path))
