"""`datamix verify`: is the mix on disk exactly the one its manifest describes?

Every shard is re-read once: the bytes are hashed and sized while `tarfile` streams over them to count
the json members, so a shard costs one sequential read. Every difference is collected, never just the
first, so one run tells the whole story (a copy that lost two shards and gained a stray one says so).
"""

from __future__ import annotations

import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from datamix.errors import DatamixError
from datamix.lock import LOCK_NAME
from datamix.mixdir import (INDEX, MANIFEST, OPTIONAL_FILES, RECORDED_FILES, SEAL, WORK, load_manifest,
                            manifest_digest, selection_digest)
from datamix.mixdir.shards import HashingReader, sha256_file, shard_pattern


class VerifyError(DatamixError):
    """The mix on disk differs from its manifest (the problems are listed before this is raised)."""


@dataclass
class Report:
    shards: int = 0
    samples: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def scan_shard(path: Path) -> tuple[str, int, int, str | None]:
    """(sha256, bytes, json members, read error or None) of one shard, in one read."""
    with open(path, "rb") as f:
        reader = HashingReader(f)
        count, error = 0, None
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                count = sum(1 for m in tar if m.isfile() and m.name.endswith(".json"))
        except tarfile.TarError as exc:
            error = str(exc)
        reader.drain()
    return reader.sha.hexdigest(), reader.size, count, error


def verify_mix(mix_dir: str | Path) -> Report:
    mix_dir = Path(mix_dir)
    manifest = load_manifest(mix_dir)
    report = Report(shards=len(manifest["shards"]), samples=manifest["samples"])
    problems = report.problems
    position = 0
    for shard in manifest["shards"]:
        name = shard["name"]
        if shard["first"] != position:
            problems.append(f"{name}: manifest says it starts at sample {shard['first']:,}, "
                            f"but the shards before it hold {position:,}")
        position += shard["samples"]
        path = mix_dir / name
        if not path.is_file():
            problems.append(f"{name}: missing shard")
            continue
        sha, size, count, error = scan_shard(path)
        if size != shard["bytes"]:
            problems.append(f"{name}: size {size:,} bytes, manifest says {shard['bytes']:,}")
        if sha != shard["sha256"]:
            problems.append(f"{name}: changed (sha256 {sha[:16]}..., manifest {shard['sha256'][:16]}...)")
        if error:
            problems.append(f"{name}: unreadable tar ({error})")
        if count != shard["samples"]:
            problems.append(f"{name}: {count:,} samples, manifest says {shard['samples']:,}")
    if position != manifest["samples"]:
        problems.append(f"manifest: its shards hold {position:,} samples but it says {manifest['samples']:,}")
    _check_seal(manifest, problems)
    _check_files(mix_dir, manifest, problems)
    _check_index(mix_dir, manifest, problems)
    _check_strays(mix_dir, manifest, problems)
    return report


def _check_seal(manifest: dict, problems: list[str]) -> None:
    """The manifest's own figures (per-source counts, seed, id digests, recipe) are covered by its seal."""
    if SEAL not in manifest:
        problems.append(f"manifest: no {SEAL} (written by datamix before 0.2, or the key was removed); "
                        "its own content cannot be checked: rebuild the mix")
    elif manifest[SEAL] != manifest_digest(manifest):
        problems.append("manifest: edited after it was written (its content no longer matches manifest_sha256)")


def _check_files(mix_dir: Path, manifest: dict, problems: list[str]) -> None:
    """Index, rejects, stats and the dataset card, each against the sha256 the manifest records."""
    recorded = manifest["files"]
    for name in RECORDED_FILES:
        if name not in recorded:
            problems.append(f"manifest: no sha256 for {name}")
    for name, digest in sorted(recorded.items()):
        path = mix_dir / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif sha256_file(path) != digest:
            problems.append(f"{name}: changed (sha256 differs from the manifest)")


def _check_index(mix_dir: Path, manifest: dict, problems: list[str]) -> None:
    path = mix_dir / INDEX
    if not path.is_file():
        return  # named by _check_files
    try:
        table = pq.read_table(path, columns=["shard", "id", "source"])
    except Exception as exc:  # noqa: BLE001 - any parquet failure is one more problem to list
        problems.append(f"{INDEX}: unreadable ({exc})")
        return
    shards = table.column("shard").to_pylist()
    _check_sources(manifest, table.column("id").to_pylist(), table.column("source").to_pylist(), problems)
    if len(shards) != manifest["samples"]:
        problems.append(f"{INDEX}: {len(shards):,} rows, manifest says {manifest['samples']:,} samples")
    # Each index row names its shard: the per-shard row counts must be the manifest's too.
    per_shard = Counter(shards)
    for shard in manifest["shards"]:
        rows = per_shard.get(shard["name"], 0)
        if rows != shard["samples"]:
            problems.append(f"{INDEX}: {rows:,} rows for {shard['name']}, manifest says {shard['samples']:,}")


def _check_sources(manifest: dict, ids: list[str], sources: list[str], problems: list[str]) -> None:
    """Per-source counts and id digests recomputed from the index (the digest depends on the seed)."""
    by_source: dict[str, list[str]] = {}
    for sample_id, source in zip(ids, sources):
        by_source.setdefault(source, []).append(sample_id)
    recorded = manifest.get("sources", {})
    for name in sorted(set(by_source) - set(recorded)):
        problems.append(f"manifest: source {name!r} is in the index but not in the manifest")
    for name, counts in recorded.items():
        found = by_source.get(name, [])
        if not isinstance(counts, dict):
            problems.append(f"manifest: source {name!r} has no counts")
            continue
        if counts.get("written") != len(found):
            problems.append(f"manifest: source {name!r} says {counts.get('written')} samples written, "
                            f"the index holds {len(found):,}")
        digest = counts.get("selected_ids_sha256")
        if digest is not None and digest != selection_digest(manifest["seed"], name, found):
            problems.append(f"manifest: source {name!r}: selected_ids_sha256 does not match the index's ids "
                            "under the manifest's seed (seed or digest edited?)")


# What a mix folder holds besides its shards; `.work/` (the build's cache) and the lock are datamix's own.
KNOWN_FILES = {MANIFEST, *RECORDED_FILES, *OPTIONAL_FILES, LOCK_NAME, WORK}


def _check_strays(mix_dir: Path, manifest: dict, problems: list[str]) -> None:
    """Anything the manifest does not list: a stray tar would be picked up by a reader globbing `*.tar`."""
    listed = {s["name"] for s in manifest["shards"]}
    ours = shard_pattern(manifest["name"])
    for path in sorted(mix_dir.iterdir()):
        if path.name in listed or path.name in KNOWN_FILES:
            continue
        if path.name.endswith(".tmp"):
            problems.append(f"{path.name}: leftover temporary file (an interrupted write)")
        elif ours.fullmatch(path.name):
            problems.append(f"{path.name}: unexpected shard, not in the manifest")
        elif ".tar" in path.name:
            problems.append(f"{path.name}: unexpected tar, not in the manifest (a reader globbing *.tar takes it)")
        else:
            problems.append(f"{path.name}: unexpected file, not part of the mix")
