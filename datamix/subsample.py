"""`datamix subsample`: smaller rungs of a built mix (0.1, 0.25, 0.5 ...), exact per source and nested.

- How many: per source, the nearest integer to ratio x the samples it has in the parent
  (`selection.targets`), so each source's count is exact and never shrinks as the ratio grows.
- Which: each source's samples ranked by `rank_key(parent seed, source, id)`, first k taken. The ranking
  does not depend on the ratio, so a smaller rung is inside a larger one, and reruns are identical.
- Decided from index.parquet alone; then ONE pass over the parent shards writes every rung at once.
  Member bytes (json and images) are copied untouched and the parent's shuffled order is kept; only the
  keys are renumbered to positions in the rung. Each rung goes through the same `MixWriter` as a
  build, so it has the same files and schemas; its manifest's `parent` says where it was cut from.
"""

from __future__ import annotations

import json
import os
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datamix.errors import InputError
from datamix.lock import output_lock
from datamix.mixdir import MANIFEST, MixWriter, iter_members, load_manifest, read_index
from datamix.mixdir.shards import sha256_file, written_shards
from datamix.paths import inside, remove_file
from datamix.selection import rank_order, targets


@dataclass
class Rung:
    ratio: float
    name: str
    out: Path
    positions: np.ndarray  # parent positions, ascending (= the parent's shuffled order)
    counts: dict[str, dict]  # per source: available, requested, selected (what MixWriter.finish is given)
    # A mix cut by `datamix decontaminate` instead of a ratio: what its manifest says of the cut.
    lineage: dict | None = None  # the manifest's `parent` beside name and sha256 (a rung: {"ratio": r})
    rejects: list[dict] = field(default_factory=list)
    decontamination: dict | None = None
    examples: list[dict] = field(default_factory=list)


def inherited_decontamination(manifest: dict) -> dict | None:
    """A mix cut from a decontaminated parent holds none of what the parent removed: it says so, under the
    parent's record (its own removals, if any, are beside it)."""
    record = manifest.get("decontamination")
    return None if record is None else {"inherited_from_parent": record}


def rung_name(parent: str, ratio: float) -> str:
    return f"{parent}-r{ratio:g}"


def plan_rungs(mix_dir: Path, ratios: list[float], out: Path, *, one: bool = False,
               verify: bool = True) -> tuple[dict, list[Rung], np.ndarray]:
    """Decide every rung's samples from the parent's index; `one`: `out` itself is the (single) rung.
    Also returns the parent's ids in mix order, which the copy checks the shards against."""
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
            counts[s] = {"available": len(members[s]), "requested": target.extra, "selected": len(take),
                         "images_checked": 0, "records_in": None}  # a rung copies bytes: it checks no image
        name = rung_name(manifest["name"], ratio)
        folder = out if one else inside(out, name)
        rungs.append(Rung(ratio, name, folder, np.sort(np.concatenate(chosen or [np.zeros(0, np.int64)])), counts,
                          decontamination=inherited_decontamination(manifest)))
    return manifest, rungs, ids


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
    manifest, rungs, index_ids = plan_rungs(mix_dir, ratios, out, one=one, verify=verify)
    return write_rungs(mix_dir, manifest, rungs, index_ids, verify=verify, command="subsample")


def write_rungs(mix_dir: Path, manifest: dict, rungs: list[Rung], index_ids: np.ndarray, *, verify: bool,
                command: str) -> list[dict]:
    """Write mixes cut from `mix_dir` (rungs, or a decontaminated copy), each folder locked while written."""
    for rung in rungs:
        if os.path.realpath(rung.out) == os.path.realpath(mix_dir):
            raise InputError(f"{rung.out}: the output folder is the parent mix itself; choose another --out")
    with ExitStack() as held:
        for rung in rungs:
            held.enter_context(output_lock(rung.out, f"datamix {command} {manifest['name']}"))
        return _write_rungs(mix_dir, manifest, rungs, index_ids, verify)


def _write_rungs(mix_dir: Path, manifest: dict, rungs: list[Rung], index_ids: np.ndarray,
                 verify: bool) -> list[dict]:
    for rung in rungs:
        _clear(rung)
    writers = _open(manifest, rungs)
    # Which rungs want each parent position (a rung is a subset, so most positions go to several).
    wanted: dict[int, list[int]] = {}
    for i, rung in enumerate(rungs):
        for p in rung.positions.tolist():
            wanted.setdefault(p, []).append(i)
    try:
        for key, members in iter_members(mix_dir, positions=wanted.keys(), manifest=manifest, verify=verify):
            json_bytes = members.pop("json")
            row = json.loads(json_bytes)
            if row["id"] != index_ids[int(key)]:  # the decision was made on the index: it must describe the shards
                raise InputError(f"{mix_dir}: sample {key} is {row['id']!r} in the shards but "
                                 f"{index_ids[int(key)]!r} in index.parquet; run datamix verify")
            notes = row["meta"].get("reencoded") or [None] * len(row["image_members"])
            for i in wanted[int(key)]:  # bytes as in the parent: nothing decoded or re-encoded
                writers[i].write(row, members, notes, json_bytes=json_bytes)
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    parent = {"name": manifest["name"], "manifest_sha256": sha256_file(mix_dir / MANIFEST)}
    return [writer.finish(seed=manifest["seed"], recipe=manifest["recipe"], inputs=manifest["inputs"],
                          counts=rung.counts, rejects=rung.rejects,
                          parent=parent | (rung.lineage if rung.lineage is not None else {"ratio": rung.ratio}),
                          decontamination=rung.decontamination, examples=rung.examples)
            for writer, rung in zip(writers, rungs)]


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


def _clear(rung: Rung) -> None:
    """Remove what a previous run left, manifest first: the folder is "finished" only once it is rewritten.
    Only the shard names this rung's writer makes are removed; other files in the folder are the user's."""
    rung.out.mkdir(parents=True, exist_ok=True)
    remove_file(rung.out, MANIFEST)
    for stale in written_shards(rung.out, rung.name):
        remove_file(rung.out, stale.name)


def _open(manifest: dict, rungs: list[Rung]) -> list[MixWriter]:
    """One writer per rung, with the parent's shard limits (kept by a rung of a rung too)."""
    spec = manifest["recipe"]["shards"]
    return [MixWriter(r.out, r.name, list(r.counts), total=len(r.positions), max_samples=spec["max_samples"],
                      max_bytes=spec["max_bytes"]) for r in rungs]
