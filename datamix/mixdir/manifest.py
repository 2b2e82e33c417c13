"""`manifest.json`: the one schema that says what a mix folder is, for a build and a rung alike.

A rung (`datamix subsample`) has every key a build has; `parent` says where it was cut from (null in a
build). `files` holds the sha256 of every other file of the folder (index, rejects, stats, dataset
card), and `manifest_sha256` seals the manifest's own content, so an edit of any figure is caught.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

from datamix.errors import InputError
from datamix.jsonio import load_json_file
from datamix.mixdir.layout import MANIFEST
from datamix.paths import is_safe_name, write_atomic

# 3: one schema for builds and rungs (parent, python, rejected per source in both), `files` hashes the index,
#    rejects, stats and dataset card. 2: sealed, selected_ids_sha256 in rank order.
FORMAT = "datamix-manifest/3"
SEAL = "manifest_sha256"  # the manifest's digest of its own content (every other key)
SOURCE_COUNTS = ("available", "requested", "selected", "written", "rejected", "selected_ids_sha256")


@dataclass(frozen=True)
class Manifest:
    """Every key of manifest.json. `sources`: per source, SOURCE_COUNTS; `shards`: ShardRecord dicts."""

    name: str
    seed: int
    recipe: dict
    inputs: dict
    sources: dict[str, dict]
    samples: int
    bytes: int
    shards: list[dict]
    files: dict[str, str]
    parent: dict | None = None  # a rung: {name, manifest_sha256, ratio}
    decontamination: dict | None = None  # samples removed by exclude / dedupe: per source, tier, evaluation set
    format: str = FORMAT
    datamix_version: str = field(default_factory=lambda: _version())
    python: str = field(default_factory=platform.python_version)

    def to_dict(self) -> dict:
        """The sealed JSON object written to disk."""
        return sealed(asdict(self))

    def write(self, folder: Path) -> dict:
        data = self.to_dict()
        write_atomic(Path(folder) / MANIFEST, json_text(data))
        return data


def _version() -> str:
    from datamix import __version__

    return __version__


def json_text(data: dict) -> str:
    """How every JSON record of a mix folder is written: sorted keys, indented, UTF-8, final newline."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def manifest_digest(manifest: dict) -> str:
    """sha256 of the manifest's canonical JSON without its seal: an edit of any figure changes it."""
    body = {k: v for k, v in manifest.items() if k != SEAL}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def sealed(manifest: dict) -> dict:
    return manifest | {SEAL: manifest_digest(manifest)}


def selection_digest(seed: int, source: str, ids: list[str]) -> str:
    """The manifest's digest of a source's samples: their mix ids in the seeded rank order.

    Rank order (not mix order) makes a rung's digest the prefix-consistent one of its parent, and ties
    the digest to the seed: a manifest whose seed was edited no longer matches its own index.
    """
    from datamix.selection import rank_order

    ordered = [ids[i] for i in rank_order(seed, source, ids)]
    return hashlib.sha256("".join(f"{i}\n" for i in ordered).encode()).hexdigest()


def check_shape(manifest: object, path: Path) -> dict:
    """The keys every reader relies on, with their types: a hand-edited manifest fails here, in one line."""
    def bad(what: str) -> InputError:
        return InputError(f"{path}: not a valid datamix manifest ({what}); rebuild the mix or restore the file")

    if not isinstance(manifest, dict):
        raise bad("not a JSON object")
    if manifest.get("format") != FORMAT:
        raise bad(f"format {manifest.get('format')!r}, this datamix reads {FORMAT!r}")
    if not is_safe_name(manifest.get("name")):
        raise bad("'name' missing or not a plain name")
    for key in ("seed", "samples"):
        if not isinstance(manifest.get(key), int) or isinstance(manifest.get(key), bool):
            raise bad(f"{key!r} must be an integer")
    if not isinstance(manifest.get("sources", {}), dict):
        raise bad("'sources' must be an object")
    files = manifest.get("files")
    if not (isinstance(files, dict) and all(is_safe_name(k) and isinstance(v, str) for k, v in files.items())):
        raise bad("'files' must map plain file names to sha256 digests")
    shards = manifest.get("shards")
    if not isinstance(shards, list):
        raise bad("'shards' must be a list")
    for shard in shards:
        if not (isinstance(shard, dict) and is_safe_name(shard.get("name"))
                and all(isinstance(shard.get(k), int) and not isinstance(shard.get(k), bool)
                        for k in ("first", "samples", "bytes"))
                and isinstance(shard.get("sha256"), str)):
            raise bad(f"shard entry {json.dumps(shard)[:80]} needs name, first, samples, bytes, sha256")
    return manifest


def load_manifest(mix_dir: str | Path) -> dict:
    """The mix's manifest.json, shape-checked; its absence means the mix was never finished (it is written last)."""
    mix_dir = Path(mix_dir)
    if not mix_dir.is_dir():
        raise InputError(f"{mix_dir}: no such folder")
    path = mix_dir / MANIFEST
    if not path.is_file():
        raise InputError(f"{mix_dir}: not a finished mix (no manifest.json); run datamix build")
    return check_shape(load_json_file(path, "; rebuild the mix"), path)
