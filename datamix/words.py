"""Words per string straight from an Arrow string array's buffers, with numpy, in cache-sized chunks.

Why not a regex: `str.count_matches(r"\\S+")` costs one regex match per word (about 4 s for the 360 MB
of text of a 665K-sample mix on 2 cores); this is a few vectorised byte passes. A word is a run of
bytes that are not ASCII whitespace (space, \\t \\n \\v \\f \\r), Python's `str.split()` on ASCII text.
The `<image>` placeholder counts as whitespace: it is not text.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

CHUNK = 1 << 22  # bytes per pass: small enough that the temporaries stay in cache
IMAGE = np.frombuffer(b"<image>", dtype=np.uint8)


def _buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets relative to the first string, utf-8 bytes) of a string or large_string array."""
    if arr.type not in (pa.string(), pa.large_string()):
        arr = arr.cast(pa.large_string())
    kind = np.int64 if arr.type == pa.large_string() else np.int32
    _, offsets_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=kind)[arr.offset: arr.offset + len(arr) + 1].astype(np.int64)
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    return offsets - offsets[0], data[offsets[0]: offsets[-1]]


def _whitespace(chunk: np.ndarray, out: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    np.subtract(chunk, 9, out=tmp)  # uint8 wraps: bytes 9..13 become 0..4
    np.less_equal(tmp, 4, out=out)
    out |= chunk == 32
    return out


def _image_spans(data: np.ndarray, offsets: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Start positions (absolute) of `<image>` beginning in [lo, hi), never across two strings."""
    starts = np.flatnonzero(data[lo:hi] == IMAGE[0]) + lo
    starts = starts[starts + len(IMAGE) <= len(data)]
    for k in range(1, len(IMAGE)):
        starts = starts[data[starts + k] == IMAGE[k]]
    string_end = offsets[np.searchsorted(offsets, starts, side="right")]
    return starts[starts + len(IMAGE) <= string_end]


def word_counts(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """uint32 words per string (nulls count 0)."""
    if isinstance(arr, pa.ChunkedArray):
        parts = [word_counts(c) for c in arr.chunks]
        return np.concatenate(parts) if parts else np.zeros(0, np.uint32)
    offsets, data = _buffers(arr)
    n = len(data)
    cum = np.zeros(len(offsets), np.int64)  # cum[i]: word starts before offsets[i]
    ws = np.empty(min(CHUNK, n) + 1, bool)
    tmp = np.empty(min(CHUNK, n), np.uint8)
    prev_ws, base, masked_until, idx = True, 0, 0, 0
    for lo in range(0, n, CHUNK):
        hi = min(lo + CHUNK, n)
        w = _whitespace(data[lo:hi], ws[1: hi - lo + 1], tmp[: hi - lo])
        if masked_until > lo:  # an <image> that began in the previous chunk
            w[: masked_until - lo] = True
        for s in _image_spans(data, offsets, lo, hi):
            w[s - lo: min(s + len(IMAGE), hi) - lo] = True
            masked_until = max(masked_until, s + len(IMAGE))
        ws[0] = prev_ws
        end = np.searchsorted(offsets, hi, side="left")
        prev = ws[: hi - lo].copy()
        prev[offsets[idx:end] - lo] = True  # each string starts after "whitespace": words never span strings
        starts = np.flatnonzero(~w & prev) + lo  # non-space after space: a word begins
        cum[idx:end] = base + np.searchsorted(starts, offsets[idx:end], side="left")
        idx, base, prev_ws = end, base + len(starts), bool(w[-1])
    cum[idx:] = base
    return np.diff(cum).astype(np.uint32)
