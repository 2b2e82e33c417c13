"""`datamix subsample`: smaller rungs of a built mix (0.1, 0.25, 0.5 ...), exact per source and nested.

- How many: per source, the nearest integer to ratio x the samples it has in the parent
  (`selection.targets`), so each source's count is exact and never shrinks as the ratio grows.
- Which: each source's samples ranked by `rank_key(parent seed, source, id)`, first k taken. The ranking
  does not depend on the ratio, so a smaller rung is inside a larger one, and reruns are identical.
- Decided from index.parquet alone; then ONE pass over the parent shards writes every rung at once.
  Member bytes (json and images) are copied untouched and the parent's shuffled order is kept; only the
  keys are renumbered to positions in the rung. manifest.json is written last, as in a build.
"""

from __future__ import annotations

import json
import os
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from datamix import __version__
from datamix.build.record import MANIFEST_FORMAT, write_json
from datamix.build.write import MixTally
from datamix.errors import InputError
from datamix.lock import output_lock
from datamix.mix import INDEX, MANIFEST, iter_members, load_manifest, read_index, sealed, selection_digest
from datamix.paths import inside, remove_file
from datamix.selection import rank_order, targets
from datamix.shards import ShardWriter, sha256_file, written_shards


@dataclass
class Rung:
    ratio: float
    name: str
    out: Path
    positions: np.ndarray  # parent positions, ascending (= the parent's shuffled order)
    counts: dict[str, dict]  # per source: available, requested, selected, written, selected_ids_sha256


def rung_name(parent: str, ratio: float) -> str:
    return f"{parent}-r{ratio:g}"


def plan_rungs(mix_dir: Path, ratios: list[float], out: Path, *, one: bool = False,
               verify: bool = True) -> tuple[dict, list[Rung]]:
    """Decide every rung's samples from the parent's index; `one`: `out` itself is the (single) rung."""
    manifest = load_manifest(mix_dir)
    index = read_index(mix_dir, ["id", "source"], manifest=manifest if verify else None)
    if index.num_rows != manifest["samples"]:
        raise InputError(f"{mix_dir}: index.parquet has {index.num_rows:,} rows but the manifest says "
                         f"{manifest['samples']:,} samples; run datamix verify")
    ids = np.asarray(index.column("id").to_pylist(), dtype=object)
    sources = np.asarray(index.column("source").to_pylist(), dtype=object)
    names = _source_order(manifest, set(sources.tolist()))
    members = {s: np.flatnonzero(sources == s) for s in names}  # parent positions of each source, mix order
    # The ranking is computed once and shared by every rung: that is what makes them nested.
    ranked = {s: members[s][rank_order(manifest["seed"], s, ids[members[s]].tolist())] for s in names}
    rungs = []
    for ratio in ratios:
        amounts = targets([("ratio", ratio)] * len(names), [len(members[s]) for s in names])
        chosen, counts = [], {}
        for s, target in zip(names, amounts):
            take = ranked[s][: target.extra]
            chosen.append(take)
            digest = selection_digest(manifest["seed"], s, ids[take].tolist())
            counts[s] = {"available": len(members[s]), "requested": target.extra, "selected": len(take),
                         "written": len(take), "selected_ids_sha256": digest}
        name = rung_name(manifest["name"], ratio)
        folder = out if one else inside(out, name)
        rungs.append(Rung(ratio, name, folder, np.sort(np.concatenate(chosen or [np.zeros(0, np.int64)])), counts))
    return manifest, rungs


def _source_order(manifest: dict, present: set[str]) -> list[str]:
    """Recipe order, as in the build, so the rung manifests list sources the way the parent does."""
    recipe = [s["name"] for s in manifest.get("recipe", {}).get("sources", [])]
    known = set(manifest["sources"]) | present
    return [s for s in recipe if s in known] + sorted(known - set(recipe))


def subsample(mix_dir: str | Path, ratios: list[float], out: str | Path, *, one: bool = False,
              verify: bool = True) -> list[dict]:
    """Write one complete mix per ratio; returns their manifests (in the order of `ratios`).

    `verify`: the parent's index and every shard read are checked against its manifest as they are read,
    so a damaged parent stops the run before any rung gets a manifest.
    """
    mix_dir, out = Path(mix_dir), Path(out)
    ratios = _check_ratios(ratios, one)
    manifest, rungs = plan_rungs(mix_dir, ratios, out, one=one, verify=verify)
    for rung in rungs:
        if os.path.realpath(rung.out) == os.path.realpath(mix_dir):
            raise InputError(f"{rung.out}: the output folder is the parent mix itself; choose another --out")
    with ExitStack() as held:
        for rung in rungs:
            held.enter_context(output_lock(rung.out, f"datamix subsample {manifest['name']}"))
        return _write_rungs(mix_dir, manifest, rungs, verify)


def _write_rungs(mix_dir: Path, manifest: dict, rungs: list[Rung], verify: bool) -> list[dict]:
    for rung in rungs:
        _clear(rung)
    writers, tallies = _open(manifest, rungs)
    # Which rungs want each parent position (a rung is a subset, so most positions go to several).
    wanted: dict[int, list[int]] = {}
    for i, rung in enumerate(rungs):
        for p in rung.positions.tolist():
            wanted.setdefault(p, []).append(i)
    index_ids = read_index(mix_dir, ["id"]).column("id").to_pylist()
    try:
        for key, members in iter_members(mix_dir, positions=wanted.keys(), manifest=manifest, verify=verify):
            row = json.loads(members["json"])
            if row["id"] != index_ids[int(key)]:  # the decision was made on the index: it must describe the shards
                raise InputError(f"{mix_dir}: sample {key} is {row['id']!r} in the shards but "
                                 f"{index_ids[int(key)]!r} in index.parquet; run datamix verify")
            for i in wanted[int(key)]:
                _copy(writers[i], tallies[i], members, row, width=_key_width(len(rungs[i].positions)))
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    parent = {"name": manifest["name"], "manifest_sha256": sha256_file(mix_dir / MANIFEST)}
    return [_record(manifest, parent, rung, writers[i].close(), tallies[i].close()) for i, rung in enumerate(rungs)]


def _check_ratios(ratios: list[float], one: bool) -> list[float]:
    if not ratios:
        raise InputError("give --ratio R or --ratios R1,R2,...")
    if one and len(ratios) != 1:
        raise InputError("--ratio takes one ratio; use --ratios for several")
    bad = [r for r in ratios if not 0 < r <= 1]
    if bad:
        raise InputError(f"ratios must be in (0, 1], got {', '.join(f'{r:g}' for r in bad)}")
    if len(set(ratios)) != len(ratios):
        raise InputError("a ratio is repeated in --ratios")
    return list(ratios)


def _key_width(total: int) -> int:
    return max(6, len(str(max(total - 1, 0))))  # as in a build


def _clear(rung: Rung) -> None:
    """Remove what a previous run left, manifest first: the folder is "finished" only once it is rewritten.
    Only the shard names this rung's writer makes are removed; other files in the folder are the user's."""
    rung.out.mkdir(parents=True, exist_ok=True)
    remove_file(rung.out, MANIFEST)
    for stale in written_shards(rung.out, rung.name):
        remove_file(rung.out, stale.name)


def _open(manifest: dict, rungs: list[Rung]) -> tuple[list[ShardWriter], list[MixTally]]:
    spec = manifest["recipe"]["shards"]
    writers = [ShardWriter(r.out, r.name, max_samples=spec["max_samples"], max_bytes=spec["max_bytes"]) for r in rungs]
    tallies = [MixTally(list(r.counts), r.out / INDEX) for r in rungs]
    return writers, tallies


def _copy(writer: ShardWriter, tally: MixTally, members: dict[str, bytes], row: dict, width: int) -> None:
    key = f"{writer.position:0{width}d}"
    writer.write({"__key__": key, **members})  # bytes as in the parent: nothing decoded or re-encoded
    notes = row["meta"].get("reencoded") or [None] * len(row["image_members"])
    tally.add(key, writer.shard_name(writer.index), row, [members[s] for s in row["image_members"]], notes)


def _record(manifest: dict, parent: dict, rung: Rung, shards: list, stats: dict) -> dict:
    total = len(rung.positions)
    (rung.out / "rejects.jsonl").write_text("", encoding="utf-8")  # a subsample rejects nothing
    per_source = {}
    for s, counts in rung.counts.items():
        per_source[s] = counts | stats[s].to_dict()
        per_source[s]["share"] = round(stats[s].samples / total, 6) if total else 0.0
    lineage = parent | {"ratio": rung.ratio}
    write_json(rung.out / "stats.json", {"mix": rung.name, "parent": lineage, "samples": total,
                                         "sources": per_source})
    record = {
        "format": MANIFEST_FORMAT,
        "name": rung.name,
        "seed": manifest["seed"],
        "datamix_version": __version__,
        "parent": lineage,
        "recipe": manifest["recipe"],  # how the samples were made; its shard limits are reused by a rung of a rung
        "inputs": manifest.get("inputs", {}),
        "sources": rung.counts,
        "samples": total,
        "bytes": sum(s.bytes for s in shards),
        "shards": [asdict(s) for s in shards],
        "index": {"file": INDEX, "sha256": sha256_file(rung.out / INDEX)},
    }
    record = sealed(record)
    write_json(rung.out / MANIFEST, record)
    return record
