"""`datamix build RECIPE --out DIR`: a recipe becomes a mix a researcher can trust.

1. prepare: convert each source once (cached by input hashes)      -> builder/prepare.py
   exclude: rows removed before ranking (recipe exclude / dedupe)   -> builder/exclude.py
2. pick: exact, nested, seeded selection; images verified in rank order -> builder/pick.py
3. shuffle + route: seeded global shuffle into position buckets     -> builder/write.py
4. shards: WebDataset tars, written under .tmp and renamed, journaled -> mixdir.MixWriter
5. record: rejects, stats, dataset card, then manifest.json LAST      -> mixdir.MixWriter.finish

Steps 1, 2 and 4 run on an engine (builder/engines.py): local processes, or Ray tasks (builder/ray_engine.py).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pyarrow.parquet as pq

from datamix.builder.exclude import Exclusion, exclude_rows, mark_twins_outside_mix
from datamix.builder.pick import Picked, pick_source
from datamix.builder.prepare import PreparedSource, conversion_budget_problem, prepare_in_worker, prepare_source
from datamix.builder.engines import Engine, check_engine, open_engine
from datamix.builder.write import route_to_buckets, shuffle_positions
from datamix.decontam.decide import unmatchable_sets
from datamix.errors import BuildError, InputError
from datamix.ledger import tally_reasons
from datamix.lock import output_lock
from datamix.mixdir import MANIFEST, MixWriter
from datamix.mixdir.shards import completed_shards, written_shards
from datamix.paths import remove_file, remove_tree
from datamix.recipe import Recipe, SourceSpec, load_recipe
from datamix.selection import Target, targets

__all__ = ["build", "plan"]


def active_sources(recipe: Recipe, skip_planned: bool) -> list[SourceSpec]:
    planned = [s for s in recipe.sources if s.planned]
    if planned and not skip_planned:
        names = ", ".join(f"{s.name} (converter {s.converter!r} not written yet)" for s in planned)
        raise BuildError(f"{recipe.path.name}: cannot build yet: {names}; "
                         "pass --skip-planned to build the other sources")
    return [s for s in recipe.sources if not s.planned]


def resolve_targets(sources: list[PreparedSource], excluded: Exclusion | None = None) -> list[Target]:
    excluded = excluded or Exclusion()
    available = [excluded.available(s.name, pq.read_metadata(s.parquet).num_rows) for s in sources]
    result = targets([(s.spec.amount.kind, s.spec.amount.value) for s in sources], available)
    for source, target, n in zip(sources, result, available):
        if source.spec.amount.kind == "count" and target.extra > n:
            raise BuildError(f"source {source.name!r}: count {target.extra:,} but only {n:,} samples are available"
                             f"{' after exclude/dedupe' if excluded.removed else ''}; "
                             "lower the count, or use repeat to oversample")
    return result


def check_budgets(recipe: Recipe, prepared: list[PreparedSource], picks: list[Picked]) -> None:
    problems = [conversion_budget_problem(p, recipe.budget(p.spec)) for p in prepared]
    for source, picked in zip(prepared, picks):
        budget = recipe.budget(source.spec)
        if picked.examined and len(picked.rejects) / picked.examined > budget:
            reasons = ", ".join(f"{k} {v}" for k, v in tally_reasons(picked.rejects).items())
            problems.append(f"source {source.name!r}: {len(picked.rejects)} of {picked.examined} checked samples "
                            f"have unusable images ({len(picked.rejects) / picked.examined:.1%} > budget "
                            f"{budget:.1%}): {reasons}")
    problems = [p for p in problems if p]
    if problems:
        raise BuildError("over the error budget (max_reject_ratio):\n  " + "\n  ".join(problems))


def build_key(recipe: Recipe, prepared: list[PreparedSource], excluded: str = "") -> str:
    """What the shards depend on; a journal written under another key is never resumed."""
    from datamix import __version__

    payload = {"recipe": recipe.to_dict(), "inputs": [p.inputs for p in prepared], "version": __version__,
               "excluded": excluded}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def prepare_all(recipe: Recipe, sources: list[SourceSpec], work: Path, workers: int,
                engine: Engine) -> list[PreparedSource]:
    with engine.mapper(min(workers, len(sources))) as pool:
        return list(pool.imap(prepare_in_worker, [(recipe, s, work) for s in sources], chunksize=1))


def check_output_folder(recipe: Recipe, sources: list[SourceSpec], out: Path) -> None:
    """The output folder must not hold the build's own inputs: a rebuild would read what it wrote."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; choose a folder for --out")
    real_out = os.path.realpath(out)

    def within(path: Path) -> bool:
        real = os.path.realpath(path)
        return real == real_out or real.startswith(real_out.rstrip(os.sep) + os.sep)

    for source in sources:
        for path in [*source.inputs, source.parquet, source.image_root]:
            if path is not None and within(path):
                raise InputError(f"{out}: holds {path}, an input of source {source.name!r}; a build would read "
                                 "its own outputs: choose an --out outside the inputs and image roots")


def build(recipe_path: str | Path, out: str | Path, *, workers: int = 1, skip_planned: bool = False,
          engine: str = "local", address: str | None = None, echo=print) -> dict:
    """`engine`: "local" or "ray" (builder/engines.py); `address`: the Ray cluster (none: a local Ray of
    `workers` CPUs). The output is the same bytes whatever the engine and the worker count."""
    check_engine(engine, address)  # before --out is created: a typo or a missing extra leaves nothing behind
    if engine == "ray":  # every path a task gets must be absolute: a node has its own working directory
        recipe_path, out = Path(recipe_path).absolute(), Path(out).absolute()
    recipe = load_recipe(recipe_path)
    sources = active_sources(recipe, skip_planned)
    out = Path(out)
    check_output_folder(recipe, sources, out)
    reads = paths_read(recipe, sources)
    with output_lock(out, f"datamix build {recipe.path.name}"), \
            open_engine(engine, workers=workers, address=address, out=out, reads=reads, echo=echo) as runner:
        return _build_locked(recipe, sources, out, workers, echo, runner)


def paths_read(recipe: Recipe, sources: list[SourceSpec]) -> list[Path]:
    """What an engine's tasks read: each source's inputs, Parquet and image root, the evaluation sets' images."""
    paths = [path for s in sources for path in (*s.inputs, s.parquet, s.image_root)]
    paths += [e.image_root for e in recipe.exclude.sets] if recipe.exclude is not None else []
    return [path for path in paths if path is not None]


def _build_locked(recipe: Recipe, sources: list[SourceSpec], out: Path, workers: int, echo, engine: Engine) -> dict:
    remove_file(out, MANIFEST)  # its presence means "finished": not until we are
    work = out / ".work"
    echo(f"[1/4] converting {len(sources)} source(s)")
    prepared = prepare_all(recipe, sources, work, workers, engine)
    with engine.mapper(workers) as pool:
        excluded = exclude_rows(recipe, prepared, work, pool)
        for name in unmatchable_sets(excluded.record):
            echo(f"      warning: evaluation set {name!r} can match nothing: none of its images has an id key "
                 "and none was fingerprinted; check its kind, or give its image_root")
        chosen = resolve_targets(prepared, excluded)
        echo("[2/4] selecting and verifying images")
        picks = [pick_source(p.name, p.parquet, t, seed=recipe.seed, image_root=p.spec.image_root,
                             max_pixels=recipe.max_image_pixels, pool=pool, removed=excluded.rows(p.name))
                 for p, t in zip(prepared, chosen)]
        outside = mark_twins_outside_mix(excluded, prepared, picks)
        if outside:
            echo(f"      dedupe: {outside:,} removed sample(s) repeat a kept sample that is not in the mix (not "
                 "selected at this amount, or its image failed); see duplicate_of_in_mix in rejects.jsonl")
        check_budgets(recipe, prepared, picks)
        echo("[3/4] shuffling")
        total = _route(recipe, prepared, picks, work)
        echo(f"[4/4] writing {total:,} samples into shards")
        key = build_key(recipe, prepared, excluded.key)
        writer = _write(recipe, prepared, out, work, key, total, pool, engine)
    manifest = writer.finish(seed=recipe.seed, recipe=recipe.to_dict(), inputs={p.name: p.inputs for p in prepared},
                             counts={p.name: _given_counts(p, k) for p, k in zip(prepared, picks)},
                             rejects=_rejects(prepared, picks, excluded), decontamination=excluded.record,
                             examples=excluded.examples)
    remove_tree(work, "buckets")
    remove_file(work, "journal.jsonl")
    return manifest


def _route(recipe: Recipe, prepared: list[PreparedSource], picks: list[Picked], work: Path):
    remove_tree(work, "buckets")
    bucket_dir = work / "buckets"
    bucket_dir.mkdir(parents=True)
    counts = [len(p.items()[0]) for p in picks]
    positions = shuffle_positions(recipe.seed, sum(counts))
    buckets: dict[int, object] = {}
    start = 0
    try:
        for source, picked, n in zip(prepared, picks, counts):
            route_to_buckets(picked, source.parquet, positions[start:start + n],
                             source.spec.format_prompt, buckets, bucket_dir)
            start += n
    finally:
        for f in buckets.values():
            f.close()
    return sum(counts)


def _write(recipe: Recipe, prepared: list[PreparedSource], out: Path, work: Path, key: str, total: int,
           pool, engine: Engine) -> MixWriter:
    journal, key_file = work / "journal.jsonl", work / "build.key"
    if not key_file.exists() or key_file.read_text() != key:
        journal.unlink(missing_ok=True)
        key_file.write_text(key)
    done = completed_shards(out, journal)
    _remove_stale_shards(out, recipe.name, keep={r.name for r in done})
    journal.write_text("".join(json.dumps(r.__dict__) + "\n" for r in done))
    writer = MixWriter(out, recipe.name, [p.name for p in prepared], total=total, done=done, journal=journal,
                       max_samples=recipe.shards.max_samples, max_bytes=recipe.shards.max_bytes)
    roots = {p.name: None if p.spec.image_root is None else str(p.spec.image_root) for p in prepared}
    # No abort on failure: what is left is what a kill leaves, and the next run resumes from the journal.
    engine.write_shards(work / "buckets", writer, roots, recipe.max_image_pixels, pool, skip_before=writer.position)
    return writer


def _given_counts(source: PreparedSource, picked: Picked) -> dict:
    return {"available": picked.available, "requested": picked.requested, "selected": len(picked.rows),
            "images_checked": picked.examined, "records_in": source.conversion.get("records_in")}


def _rejects(prepared: list[PreparedSource], picks: list[Picked], excluded: Exclusion) -> list[dict]:
    """Per source in recipe order: conversion rejects (relabelled with the recipe's source name), rows removed
    by exclude / dedupe, then images."""
    return [entry for source, picked in zip(prepared, picks)
            for entry in [r | {"source": source.name, "converter": r["source"]} for r in source.rejects]
            + excluded.rejects.get(source.name, []) + picked.rejects]


def _remove_stale_shards(out: Path, name: str, keep: set[str]) -> None:
    """Shards of an earlier, different build (only names this mix's writer makes; nothing else is touched)."""
    for path in written_shards(out, name):
        if path.name not in keep:
            remove_file(out, path.name)


def plan(recipe_path: str | Path, *, skip_planned: bool = False) -> list[dict]:
    """`--dry-run`: per-source available and selected counts and expected bytes; writes nothing."""
    import tempfile

    recipe = load_recipe(recipe_path)
    sources = active_sources(recipe, skip_planned)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = [prepare_source(recipe, s, Path(tmp)) for s in sources]
        chosen = resolve_targets(prepared)
        return [_plan_row(p, t) for p, t in zip(prepared, chosen)]


def _plan_row(source: PreparedSource, target: Target) -> dict:
    meta = pq.read_metadata(source.parquet)
    n = meta.num_rows
    text_bytes = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)) / max(n, 1)
    image_bytes = _mean_image_bytes(source)
    selected = target.total(n)
    return {"source": source.name, "available": n, "selected": selected,
            "rejected_in_conversion": source.conversion.get("rejected", 0),
            "expected_bytes": int(selected * (text_bytes + image_bytes + 1024))}  # + tar headers


def _mean_image_bytes(source: PreparedSource, sample: int = 200) -> float:
    if source.spec.image_root is None:
        return 0.0
    images = pq.read_table(source.parquet, columns=["images"]).column("images").to_pylist()[:sample]
    sizes = [(source.spec.image_root / p).stat().st_size for paths in images for p in paths
             if (source.spec.image_root / p).is_file()]
    return sum(sizes) / len(sizes) if sizes else 0.0
