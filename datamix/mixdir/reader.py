"""Reading a finished mix folder: its shards, its index, and its samples straight from the tars.

The manifest is the only authority on which shards make up a mix (never a glob: a stray or half-written
tar must not leak into what is read). Samples are streamed with `tarfile` in mix order and nothing is
decoded: image members stay bytes, so whoever copies them (subsample, export) copies them exactly.
"""

from __future__ import annotations

import bisect
import json
import tarfile
from collections.abc import Collection, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from datamix.errors import InputError
from datamix.mixdir.layout import INDEX
from datamix.mixdir.manifest import load_manifest
from datamix.mixdir.shards import HashingReader, sha256_file


def shard_paths(mix_dir: str | Path, manifest: dict | None = None) -> list[Path]:
    """The mix's shards, as the manifest lists them (never a glob), each checked to be on disk."""
    mix_dir = Path(mix_dir)
    manifest = manifest if manifest is not None else load_manifest(mix_dir)
    paths = [mix_dir / s["name"] for s in manifest["shards"]]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise InputError(f"{mix_dir}: {len(missing)} shard(s) listed in the manifest are missing, e.g. "
                         f"{missing[0].name}; run datamix verify")
    return paths


def read_index(mix_dir: str | Path, columns: list[str] | None = None, *, manifest: dict | None = None) -> pa.Table:
    """index.parquet: the unified schema in mix order plus key, shard, image_sha256, image_bytes, turns.

    With `manifest`, the file is first checked against the sha256 the manifest records for it.
    """
    path = Path(mix_dir) / INDEX
    if not path.is_file():
        raise InputError(f"{path}: missing; the mix is incomplete, rebuild it")
    recorded = (manifest or {}).get("files", {}).get(INDEX)
    if recorded is not None and sha256_file(path) != recorded:
        raise InputError(f"{path}: changed since the mix was written (sha256 differs from the manifest); "
                         "run datamix verify (or pass --no-verify to read it anyway)")
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: unreadable index ({exc}); run datamix verify") from None


def iter_members(mix_dir: str | Path, *, with_images: bool = True, positions: Collection[int] | None = None,
                 manifest: dict | None = None, verify: bool = True) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {suffix: raw bytes}) per sample, in mix order; the json member is included, undecoded.

    `positions` (mix positions, i.e. int(key)) limits what is yielded and lets whole shards be skipped
    by their manifest range; `with_images=False` reads only the json members (images are skipped over).
    `verify`: every shard's size is checked before it is opened, and its sha256, computed as it streams,
    when it has been read to the end: a damaged parent is never copied into a rung or an export unnoticed.
    """
    mix_dir = Path(mix_dir)
    manifest = manifest if manifest is not None else load_manifest(mix_dir)
    wanted = None if positions is None else set(positions)
    ordered = None if wanted is None else sorted(wanted)
    for shard in manifest["shards"]:
        if ordered is not None:  # skip a shard none of whose positions is wanted, without opening it
            i = bisect.bisect_left(ordered, shard["first"])
            if i == len(ordered) or ordered[i] >= shard["first"] + shard["samples"]:
                continue
        path = mix_dir / shard["name"]
        if not path.is_file():
            raise InputError(f"{path}: shard listed in the manifest is missing; run datamix verify")
        if verify and path.stat().st_size != shard["bytes"]:
            raise InputError(f"{path}: {path.stat().st_size:,} bytes, the manifest says {shard['bytes']:,}; "
                             f"the mix is damaged: run datamix verify (or pass --no-verify to read it anyway)")
        yield from _shard_members(path, with_images, wanted, shard["sha256"] if verify else None)


def _shard_members(path: Path, with_images: bool, wanted: set[int] | None,
                   sha256: str | None) -> Iterator[tuple[str, dict[str, bytes]]]:
    # "r|" is a pure stream: one sequential read, no seeking, constant memory whatever the shard size.
    # WebDataset groups a sample's members consecutively; a new key prefix closes the previous sample.
    current, members = None, {}
    with open(path, "rb") as f:
        reader = HashingReader(f)
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    key, _, suffix = member.name.partition(".")
                    if key != current:
                        if current is not None and _keep(current, wanted):
                            yield current, members
                        current, members = key, {}
                    if (suffix == "json" or with_images) and _keep(key, wanted):
                        members[suffix] = tar.extractfile(member).read()
        except tarfile.TarError as exc:
            raise InputError(f"{path}: unreadable shard ({exc}); run datamix verify") from None
        reader.drain()
    if sha256 is not None and reader.sha.hexdigest() != sha256:
        raise InputError(f"{path}: changed since it was written (sha256 differs from the manifest); the mix is "
                         "damaged: run datamix verify (or pass --no-verify to read it anyway)")
    if current is not None and _keep(current, wanted):
        yield current, members


def _keep(key: str, wanted: set[int] | None) -> bool:
    return wanted is None or int(key) in wanted


def iter_samples(mix_dir: str | Path, *, with_images: bool = True, positions: Collection[int] | None = None,
                 manifest: dict | None = None, verify: bool = True) -> Iterator[tuple[str, dict, dict[str, bytes]]]:
    """(key, sample row, {image suffix: bytes}) per sample in mix order; images as stored, not decoded."""
    for key, members in iter_members(mix_dir, with_images=with_images, positions=positions, manifest=manifest,
                                     verify=verify):
        if "json" not in members:
            raise InputError(f"{mix_dir}: sample {key} has no json member; run datamix verify")
        row = json.loads(members.pop("json"))
        yield key, row, members
