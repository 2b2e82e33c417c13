"""Fast, fault-tolerant JSON loading for the official files.

Three readers, each with a fast path that runs at the speed of a C parser and a slow path that
survives a bad record (so one malformed record is a rejection, not a crashed conversion):

- `read_object_table`: one JSON object (VQAv2 questions/annotations) parsed by pyarrow straight into
  Arrow columns, no Python object per answer; falls back to msgspec when Arrow's type inference
  cannot hold the data (mixed id types, a record that is not an object). `read_list_table` does the
  same for a file holding one JSON list (Visual Genome's region_descriptions.json).
- `decode_typed`: msgspec decoding into lenient Structs (only the fields we read are built).
- `iter_records`: a JSON list or JSON Lines file, one record at a time, with a reason for each bad one.

Text that is not strict JSON (RFC 8259 in UTF-8: truncated, NaN/Infinity, invalid UTF-8, a lone surrogate
escape, nesting beyond the parser's limit) is refused by msgspec. In a whole-file document that stops the
file with a ConverterError naming it, what is wrong and where (`json_error`); in JSON Lines it rejects that
line only. So no text that cannot be written as UTF-8 ever reaches a Parquet file. A leading UTF-8 byte
order mark is accepted everywhere.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.json as pa_json

from datamix.errors import ConverterError, InputError


# Windows tools write one before UTF-8 text; JSON parsers (msgspec included) refuse it, so it is dropped on read.
BOM = b"\xef\xbb\xbf"
_JSON_SPACE = re.compile(rb"[ \t\n\r]*")
_BYTE_OFFSET = re.compile(r"\s*\(byte (\d+)\)")
# A \uD800-\uDFFF escape that is not half of a pair: valid Python text, but not encodable as UTF-8, so no
# Parquet writer or reader can hold it. msgspec refuses it, with a misleading "truncated" message at a string's end.
_LONE_SURROGATE = re.compile(
    rb"(?<!\\)(?:\\\\)*(\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2})")
REPAIR = "repair the file or download it again"


def read_bytes(path: Path) -> bytes:
    """A file's bytes without a leading UTF-8 byte order mark; an unreadable file is an InputError."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    return data[len(BOM):] if data.startswith(BOM) else data


def first_byte(data: bytes) -> bytes:
    """The first byte after JSON whitespace (b"" for a blank file), found without copying `data`."""
    start = _JSON_SPACE.match(data).end()
    return data[start:start + 1]


def _file_head(path: Path) -> bytes:
    """The first non-space byte of a file, reading only as far as it."""
    try:
        with open(path, "rb") as f:
            chunk = f.read(1 << 16)
            chunk = chunk[len(BOM):] if chunk.startswith(BOM) else chunk
            while chunk and not first_byte(chunk):
                chunk = f.read(1 << 16)
    except OSError as exc:
        raise InputError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    return first_byte(chunk)


def read_object_table(path: Path, schema: pa.Schema) -> pa.Table | None:
    """Parse a file holding one JSON object into a one-row Arrow table of `schema`, or None if it does not fit.

    Fields outside `schema` (at any depth) are skipped by the parser without being materialised, which
    is most of the saving on VQAv2 annotations (`answer_confidence`, `answer_id`).
    Only a file that starts with `{` is given to Arrow: one that starts with `null` crashes the process
    (apache/arrow#47409). Arrow's reader does not check UTF-8, so the table is validated before use.
    """
    if _file_head(path) != b"{":
        return None
    size = os.path.getsize(path)
    options = pa_json.ReadOptions(block_size=max(size + 1, 1 << 20), use_threads=True)
    parse = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore", newlines_in_values=True)
    try:
        table = pa_json.read_json(path, read_options=options, parse_options=parse)
        table.validate(full=True)  # invalid UTF-8 in a string column
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    return table


class _Concatenated(io.RawIOBase):
    """A read-only stream of a few byte strings and files back to back, without joining them in memory."""

    def __init__(self, *parts: bytes | Path):
        self._parts = list(parts)
        self._current: io.BufferedIOBase | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self._parts or self._current:
            if self._current is None:
                part = self._parts.pop(0)
                self._current = io.BytesIO(part) if isinstance(part, bytes) else open(part, "rb")  # noqa: SIM115
            n = self._current.readinto(buffer)
            if n:
                return n
            self._current.close()
            self._current = None
        return 0

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
        super().close()


def read_list_table(path: Path, item_type: pa.DataType) -> pa.ListArray | None:
    """Parse a file holding one JSON list into an Arrow list of `item_type`, or None if it does not fit.

    Arrow's reader only takes objects, so the list is read as the value of `{"items": <file>}`, streamed
    from the file (no copy of the file in memory). Unknown fields are skipped, as in `read_object_table`.
    """
    size = os.path.getsize(path)
    options = pa_json.ReadOptions(block_size=max(size + 64, 1 << 20), use_threads=True)
    parse = pa_json.ParseOptions(explicit_schema=pa.schema([("items", pa.list_(item_type))]),
                                 unexpected_field_behavior="ignore", newlines_in_values=True)
    with io.BufferedReader(_Concatenated(b'{"items": ', Path(path), b"}\n"), buffer_size=1 << 24) as stream:
        try:
            table = pa_json.read_json(stream, read_options=options, parse_options=parse)
            table.validate(full=True)  # Arrow's reader does not check UTF-8; invalid strings crash polars later
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return None
    if table.num_rows != 1 or table.column("items").null_count:
        return None
    return table.column("items").combine_chunks()


def describe_json_error(data: bytes, exc: Exception) -> tuple[str, int | None]:
    """What is wrong with a JSON text msgspec refused, and the byte offset where, as precisely as known.

    The first problem in the text wins: msgspec's own offset, the first invalid UTF-8 byte (msgspec does not
    say where), a lone surrogate escape (msgspec calls it truncation), or the end of a truncated text.
    """
    if isinstance(exc, RecursionError):
        return "nested too deeply (arrays or objects inside each other beyond the parser's limit)", None
    if not first_byte(data):
        return "the file is empty", None
    message = str(exc)
    found: list[tuple[int, str]] = []
    offset = _BYTE_OFFSET.search(message)
    if offset:
        at = int(offset.group(1))
        what = _BYTE_OFFSET.sub("", message)
        if data[at:at + 3] in (b"NaN", b"Inf", b"-In"):
            what = "NaN or Infinity, which JSON does not allow"
        found.append((at, what))
    elif "truncated" in message:
        found.append((len(data), "the text ends in the middle of a value (truncated?)"))
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as bad:
        found.append((bad.start, f"invalid UTF-8 byte 0x{data[bad.start]:02x}"))
    surrogate = _LONE_SURROGATE.search(data)
    if surrogate:
        found.append((surrogate.start(1), f"a lone UTF-16 surrogate {surrogate.group(1).decode()}"))
    if not found:  # e.g. "Number out of range - at `$[3].id`": msgspec's words, with no offset
        return message, None
    at, what = min(found)
    return what, at


def _where(data: bytes, at: int | None) -> str:
    if at is None:
        return ""
    line = data.count(b"\n", 0, at) + 1
    column = at - (data.rfind(b"\n", 0, at) + 1) + 1
    return f" at line {line}, column {column} (byte {at})"


def json_error(path: Path, data: bytes, exc: Exception) -> ConverterError:
    """The file-level error for a whole-file JSON document that does not parse."""
    what, at = describe_json_error(data, exc)
    return ConverterError(f"{path}: not valid JSON: {what}{_where(data, at)}; {REPAIR}")


def decode_any(path: Path, data: bytes | None = None) -> Any:
    data = read_bytes(path) if data is None else data
    try:
        return msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise json_error(path, data, exc) from None


def decode_typed(path: Path, data: bytes, type_: Any) -> Any | None:
    """Decode into `type_`, or None when some record does not fit (the caller then goes record by record)."""
    try:
        return msgspec.json.decode(data, type=type_)
    except msgspec.ValidationError:
        return None
    except (msgspec.DecodeError, RecursionError) as exc:
        raise json_error(path, data, exc) from None


def decode_object_pairs(path: Path, data: bytes) -> list[tuple[str, Any]]:
    """The members of a top-level JSON object in file order, repeated keys included (a dict keeps only the last).

    msgspec first checks the text is strict JSON (the same errors as every other reader); Python's parser,
    which can report repeated keys, then builds the pairs. Slow, and only used on files that need it.
    """
    if not isinstance(decode_any(path, data), dict):
        raise ConverterError(f"{path}: expected a JSON object")
    outermost: list[list[tuple[str, Any]]] = []

    def keep_pairs(pairs: list[tuple[str, Any]]) -> dict:
        outermost[:] = [pairs]  # objects close inside out: the last one built is the top level
        return dict(pairs)

    try:
        json.loads(data.decode("utf-8"), object_pairs_hook=keep_pairs)
    except (ValueError, RecursionError) as exc:  # not expected once msgspec accepted the text; still one line
        raise json_error(path, data, exc) from None
    return outermost[0]


def convert_record(record: Any, type_: Any) -> tuple[Any, str | None]:
    """Convert one untyped record; returns (value, None) or (None, reason)."""
    try:
        return msgspec.convert(record, type_), None
    except msgspec.ValidationError as exc:
        return None, f"malformed_record: {exc}"


def iter_records(path: Path, type_: Any, required_key: str) -> Iterator[tuple[int, Any, str | None]]:
    """Yield (index, record, reason) for a JSON list or JSON Lines file.

    `index` is the position in the list, or the 0-based line number in JSON Lines. When `reason` is set,
    `record` is what could be read of it untyped (so its own id can name it), or None.
    A whole file that is not JSON, not a list, or not JSON Lines of objects with `required_key` raises
    ConverterError; in JSON Lines, a line that is not valid JSON is a rejected record.
    """
    data = read_bytes(path)
    head = first_byte(data)
    if head == b"[":
        yield from _iter_list(path, data, type_)
    elif head == b"{":
        yield from _iter_lines(path, data, type_, required_key)
    elif not head:
        raise ConverterError(f"{path}: the file is empty; expected a JSON list of records or JSON Lines")
    else:
        raise ConverterError(f"{path}: expected a JSON list of records or JSON Lines, found {head!r}")


def _iter_list(path: Path, data: bytes, type_: Any) -> Iterator[tuple[int, Any, str | None]]:
    typed = decode_typed(path, data, list[type_])
    if typed is not None:
        for i, record in enumerate(typed):
            yield i, record, None
        return
    records = decode_any(path, data)
    if not isinstance(records, list):
        raise ConverterError(f"{path}: expected a JSON list of records")
    for i, raw in enumerate(records):
        record, reason = convert_record(raw, type_)
        yield i, record if reason is None else raw, reason


def _iter_lines(path: Path, data: bytes, type_: Any, required_key: str) -> Iterator[tuple[int, Any, str | None]]:
    decoder = msgspec.json.Decoder(type_)
    lines = data.splitlines()
    first = next(line for line in lines if line.strip())
    if f'"{required_key}"'.encode() not in first:
        # A whole-file object (a VQAv2 or GQA file given to the wrong converter), not JSON Lines of records.
        raise ConverterError(f"{path}: expected a JSON list or JSON Lines of records with {required_key!r}")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            yield i, decoder.decode(line), None
        except msgspec.ValidationError as exc:
            yield i, _untyped(line), f"malformed_record: line {i + 1}: {exc}"
        except (msgspec.DecodeError, RecursionError) as exc:
            what, at = describe_json_error(line, exc)
            column = "" if at is None else f", column {at + 1}"
            yield i, None, f"invalid_json: line {i + 1}{column}: {what}"


def _untyped(text: bytes) -> Any:
    """A record that did not fit its type, read untyped so that its own id can name it (None if even that fails)."""
    try:
        return msgspec.json.decode(text)
    except (msgspec.DecodeError, RecursionError):
        return None


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    """One JSON object per line (sorted keys, UTF-8), written to a temporary name and renamed when complete."""
    from datamix.paths import Atomic

    with Atomic(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


def load_json_file(path: Path, fix: str) -> Any:
    """A small JSON file (a manifest, a reference); invalid JSON is an InputError that says `fix`."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON ({exc}){fix}") from None
