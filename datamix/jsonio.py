"""Fast, fault-tolerant JSON loading for the official files.

Three readers, each with a fast path that runs at the speed of a C parser and a slow path that
survives a bad record (so one malformed record is a rejection, not a crashed conversion):

- `read_object_table`: one JSON object (VQAv2 questions/annotations) parsed by pyarrow straight into
  Arrow columns, no Python object per answer; falls back to msgspec when Arrow's type inference
  cannot hold the data (mixed id types, a record that is not an object).
- `decode_typed`: msgspec decoding into lenient Structs (only the fields we read are built).
- `iter_records`: a JSON list or JSON Lines file, one record at a time, with a reason for each bad one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.json as pa_json

from datamix.errors import ConverterError


def read_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def read_object_table(path: Path, schema: pa.Schema) -> pa.Table | None:
    """Parse a file holding one JSON object into a one-row Arrow table of `schema`, or None if it does not fit.

    Fields outside `schema` (at any depth) are skipped by the parser without being materialised, which
    is most of the saving on VQAv2 annotations (`answer_confidence`, `answer_id`).
    """
    size = os.path.getsize(path)
    options = pa_json.ReadOptions(block_size=max(size + 1, 1 << 20), use_threads=True)
    parse = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore", newlines_in_values=True)
    try:
        return pa_json.read_json(path, read_options=options, parse_options=parse)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None


def decode_any(path: Path) -> Any:
    try:
        return msgspec.json.decode(read_bytes(path))
    except msgspec.DecodeError as exc:
        raise ConverterError(f"{path}: not valid JSON ({exc})") from None


def decode_typed(data: bytes, type_: Any) -> Any | None:
    """Decode into `type_`, or None when some record does not fit (the caller then goes record by record)."""
    try:
        return msgspec.json.decode(data, type=type_)
    except msgspec.ValidationError:
        return None


def convert_record(record: Any, type_: Any) -> tuple[Any, str | None]:
    """Convert one untyped record; returns (value, None) or (None, reason)."""
    try:
        return msgspec.convert(record, type_), None
    except msgspec.ValidationError as exc:
        return None, f"malformed_record: {exc}"


def iter_records(path: Path, type_: Any, required_key: str) -> Iterator[tuple[int, Any, str | None]]:
    """Yield (index, record, reason) for a JSON list or JSON Lines file; record is None when reason is set.

    A file that is neither a list nor JSON Lines of objects with `required_key` raises ConverterError.
    """
    data = read_bytes(path)
    head = data.lstrip()[:1]
    if head == b"[":
        yield from _iter_list(path, data, type_)
    elif head == b"{":
        yield from _iter_lines(path, data, type_, required_key)
    else:
        raise ConverterError(f"{path}: expected a JSON list of records or JSON Lines, found {head!r}")


def _iter_list(path: Path, data: bytes, type_: Any) -> Iterator[tuple[int, Any, str | None]]:
    typed = decode_typed(data, list[type_])
    if typed is not None:
        for i, record in enumerate(typed):
            yield i, record, None
        return
    records = decode_any(path)
    if not isinstance(records, list):
        raise ConverterError(f"{path}: expected a JSON list of records")
    for i, raw in enumerate(records):
        record, reason = convert_record(raw, type_)
        yield i, record, reason


def _iter_lines(path: Path, data: bytes, type_: Any, required_key: str) -> Iterator[tuple[int, Any, str | None]]:
    decoder = msgspec.json.Decoder(type_)
    lines = [line for line in data.splitlines() if line.strip()]
    if f'"{required_key}"'.encode() not in lines[0]:
        # A whole-file object (a VQAv2 or GQA file given to the wrong converter), not JSON Lines of records.
        raise ConverterError(f"{path}: expected a JSON list or JSON Lines of records with {required_key!r}")
    for i, line in enumerate(lines):
        try:
            yield i, decoder.decode(line), None
        except msgspec.ValidationError as exc:
            yield i, None, f"malformed_record: {exc}"
        except msgspec.DecodeError as exc:
            yield i, None, f"invalid_json: line {i + 1}: {exc}"


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    """One JSON object per line (sorted keys, UTF-8), written to a temporary name and renamed when complete."""
    from datamix.paths import Atomic

    with Atomic(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


def load_json_file(path: Path, fix: str) -> Any:
    """A small JSON file (a manifest, a reference); invalid JSON is an InputError that says `fix`."""
    from datamix.errors import InputError

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON ({exc}){fix}") from None
