"""Fingerprints of image files, computed through the build's process pool and cached beside the build.

The cache (`<out>/.work/fingerprints/<group>/<name>.parquet`) holds one row per image path with the file's
size and modification time; a rebuild re-hashes only files that changed. Its header records the image root,
the pixel limit and FINGERPRINT_VERSIONS: a cache made otherwise is not used.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from datamix.fingerprints import FINGERPRINT_VERSIONS, Fingerprint, fingerprint_job
from datamix.images import read_image_file, resolve_image
from datamix.paths import Atomic
from datamix.stats.report import thumbnail_uri

CACHE_SCHEMA = pa.schema([("path", pa.string()), ("size", pa.int64()), ("mtime_ns", pa.int64()),
                          ("sha256", pa.binary(32)), ("pixels", pa.binary(16)), ("phash", pa.uint64()),
                          ("reason", pa.string())])


def file_fingerprints(root: Path | None, paths: list[str], max_pixels: int, pool,
                      cache: Path | None = None) -> dict[str, Fingerprint | str]:
    """path -> Fingerprint, or the reason the image is unusable, for every distinct path (cached if `cache`)."""
    wanted = list(dict.fromkeys(paths))
    root_text = None if root is None else str(root)
    header = json.dumps({"image_root": None if root is None else os.path.realpath(root), "max_pixels": max_pixels,
                         "versions": FINGERPRINT_VERSIONS}, sort_keys=True)
    stamps = {p: _stamp(root_text, p) for p in wanted}
    known = _read_cache(cache, header) if cache is not None else {}
    found: dict[str, Fingerprint | str] = {}
    missing = []
    for p in wanted:
        entry = known.get(p)
        if entry is not None and stamps[p] is not None and entry[0] == stamps[p]:
            found[p] = entry[1]
        else:
            missing.append(p)
    for p, fp in zip(missing, pool.imap(fingerprint_job, [(root_text, p, max_pixels) for p in missing])):
        found[p] = fp
    if cache is not None and missing:
        known.update({p: (stamps[p], found[p]) for p in missing if stamps[p] is not None})
        _write_cache(cache, header, known)
    return found


def _stamp(root: str | None, relative: str) -> tuple[int, int] | None:
    """(size, mtime_ns) of the file, or None (no root, outside it, missing: never cached)."""
    if root is None:
        return None
    path = resolve_image(root, relative)
    try:
        st = os.stat(path) if not isinstance(path, str) else None
    except OSError:
        return None
    return None if st is None else (st.st_size, st.st_mtime_ns)


def _read_cache(cache: Path, header: str) -> dict[str, tuple[tuple[int, int], Fingerprint | str]]:
    if not cache.is_file():
        return {}
    try:
        table = pq.read_table(cache)
    except (pa.ArrowException, OSError):
        return {}  # a damaged cache is recomputed, never trusted
    if (table.schema.metadata or {}).get(b"datamix") != header.encode() or table.schema != CACHE_SCHEMA.with_metadata(
            table.schema.metadata):
        return {}
    out = {}
    for row in table.to_pylist():
        fp = row["reason"] if row["reason"] is not None else Fingerprint(row["sha256"], row["pixels"], row["phash"])
        out[row["path"]] = ((row["size"], row["mtime_ns"]), fp)
    return out


def _write_cache(cache: Path, header: str, known: dict) -> None:
    rows = sorted(known.items())
    ok = [fp if isinstance(fp, Fingerprint) else None for _, (_, fp) in rows]
    table = pa.table({
        "path": [p for p, _ in rows], "size": [s[0] for _, (s, _) in rows], "mtime_ns": [s[1] for _, (s, _) in rows],
        "sha256": [f.sha256 if f else None for f in ok], "pixels": [f.pixels if f else None for f in ok],
        "phash": [f.phash if f else None for f in ok],
        "reason": [fp if isinstance(fp, str) else None for _, (_, fp) in rows],
    }, schema=CACHE_SCHEMA.with_metadata({"datamix": header}))
    cache.parent.mkdir(parents=True, exist_ok=True)
    with Atomic(cache) as tmp:
        pq.write_table(table, tmp)


def file_thumbnail(root: Path | None, relative: str | None, max_pixels: int) -> str | None:
    if root is None or relative is None:
        return None
    return thumbnail_uri(read_image_file(root, relative), relative, max_pixels)
