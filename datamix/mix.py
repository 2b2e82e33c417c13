"""Reading a finished mix folder: its manifest, its index, and its samples straight from the tars.

The manifest is the only authority on which shards make up a mix (never a glob: a stray or half-written
tar must not leak into what is read). Samples are streamed with `tarfile` in mix order and nothing is
decoded: image members stay bytes, so whoever copies them (subsample, export) copies them exactly.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import tarfile
from collections.abc import Collection, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from datamix.errors import InputError
from datamix.jsonio import load_json_file
from datamix.paths import is_safe_name
from datamix.shards import HashingReader, sha256_file

MANIFEST = "manifest.json"
INDEX = "index.parquet"
SEAL = "manifest_sha256"  # the manifest's digest of its own content (every other key)


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


def _check_shape(manifest: object, path: Path) -> dict:
    """The keys every reader relies on, with their types: a hand-edited manifest fails here, in one line."""
    def bad(what: str) -> InputError:
        return InputError(f"{path}: not a valid datamix manifest ({what}); rebuild the mix or restore the file")

    if not isinstance(manifest, dict):
        raise bad("not a JSON object")
    if not is_safe_name(manifest.get("name")):
        raise bad("'name' missing or not a plain name")
    for key in ("seed", "samples"):
        if not isinstance(manifest.get(key), int) or isinstance(manifest.get(key), bool):
            raise bad(f"{key!r} must be an integer")
    if not isinstance(manifest.get("sources", {}), dict):
        raise bad("'sources' must be an object")
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
    """The mix's manifest.json; its absence means the build never finished (it is written last)."""
    mix_dir = Path(mix_dir)
    if not mix_dir.is_dir():
        raise InputError(f"{mix_dir}: no such folder")
    path = mix_dir / MANIFEST
    if not path.is_file():
        raise InputError(f"{mix_dir}: not a finished mix (no manifest.json); run datamix build")
    return _check_shape(load_json_file(path, "; rebuild the mix"), path)


def read_index(mix_dir: str | Path, columns: list[str] | None = None, *, manifest: dict | None = None) -> pa.Table:
    """index.parquet: the unified schema in mix order plus key, shard, image_sha256, image_bytes, turns.

    With `manifest`, the file is first checked against the sha256 the manifest records for it.
    """
    path = Path(mix_dir) / INDEX
    if not path.is_file():
        raise InputError(f"{path}: missing; the mix is incomplete, rebuild it")
    recorded = (manifest or {}).get("index", {}).get("sha256")
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


def hf_webdataset_features(max_images: int = 1):
    """Features for `datasets.load_dataset("webdataset", data_files=..., features=...)` on these shards.

    Inference from the first few samples cannot work on a mix: `meta` has another shape per source
    (each source keeps its own extras), text-only samples lack image members, and png/webp
    members appear later than the first jpg. Declared features avoid all three: `meta` is a `Json`
    column (dropped on datasets versions without `Json`), and each image member a nullable column.
    Samples with several images use `0.jpg`, `1.png`, ...: `max_images` > 1 declares those too.
    """
    import datasets
    from datasets import Features, Image, Value

    text = Value("string")
    row = {"id": text, "source": text, "task": text, "images": [text], "image_members": [text],
           "conversations": [{"from": text, "value": text}]}
    if hasattr(datasets, "Json"):
        row["meta"] = datasets.Json()
    features = {"__key__": text, "json": row}
    for ext in ("jpg", "png", "webp"):
        features[ext] = Image()
        for i in range(max_images if max_images > 1 else 0):
            features[f"{i}.{ext}"] = Image()
    return Features(features)
