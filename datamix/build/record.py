"""Step 5 of a build: the record of what the mix is. `manifest.json` is written last, atomically."""

from __future__ import annotations

import json
import platform
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from datamix import __version__
from datamix.build.pick import Picked
from datamix.build.prepare import PreparedSource
from datamix.build.write import SourceStats
from datamix.jsonio import write_jsonl
from datamix.mix import sealed, selection_digest
from datamix.recipe import Recipe
from datamix.shards import ShardRecord, sha256_file

# 2: sealed (manifest_sha256 over its own content) and selected_ids_sha256 in rank order, recomputable from the index
MANIFEST_FORMAT = "datamix-manifest/2"


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def tally(rejects: list[dict]) -> dict[str, int]:
    counts = Counter(r["reason"].split(":", 1)[0] for r in rejects)
    return dict(sorted(counts.items()))


def source_counts(source: PreparedSource, picked: Picked, stats: SourceStats) -> dict:
    return {
        "available": picked.available,
        "requested": picked.requested,
        "selected": len(picked.rows),
        "written": stats.samples,
        "shortfall": picked.requested - stats.samples,
        "images_checked": picked.examined,
        "rejected": {"convert": tally(source.rejects), "images": tally(picked.rejects)},
        "records_in": source.conversion.get("records_in"),
    }


def write_rejects(out: Path, prepared: list[PreparedSource], picks: list[Picked]) -> None:
    """Per source in recipe order: conversion rejects (relabelled with the recipe's source name), then images."""
    write_jsonl(out / "rejects.jsonl", (
        entry for source, picked in zip(prepared, picks)
        for entry in [r | {"source": source.name, "converter": r["source"]} for r in source.rejects] + picked.rejects))


def mix_statistics(out: Path, recipe: Recipe, prepared: list[PreparedSource], per_source: dict) -> dict:
    """The figures `datamix stats` prints, from the index just written, plus what only the build knows."""
    from datamix.stats import mix_records, stats_of_files

    counts = {name: {k: c[k] for k in ("available", "requested", "selected", "written")}
              for name, c in per_source.items()}
    figures = stats_of_files([out / "index.parquet"], "image_sha256", name=recipe.name, kind="mix",
                             order=[p.name for p in prepared],
                             records=mix_records(counts, out / "rejects.jsonl"))
    for name in figures["sources"]:  # keep the build-only keys (image bytes, re-encodings, shortfall)
        figures["sources"][name] = per_source[name] | figures["sources"][name]
    return figures


def write_records(out: Path, recipe: Recipe, prepared: list[PreparedSource], picks: list[Picked],
                  shards: list[ShardRecord], stats: dict[str, SourceStats], total: int) -> dict:
    write_rejects(out, prepared, picks)
    per_source = {p.name: source_counts(p, k, stats[p.name]) | stats[p.name].to_dict()
                  for p, k in zip(prepared, picks)}
    write_json(out / "stats.json", mix_statistics(out, recipe, prepared, per_source))
    digests = index_digests(out, recipe.seed)
    manifest = {
        "format": MANIFEST_FORMAT,
        "name": recipe.name,
        "seed": recipe.seed,
        "datamix_version": __version__,
        "python": platform.python_version(),
        "recipe": recipe.to_dict(),
        "inputs": {p.name: p.inputs for p in prepared},
        "sources": {p.name: {k: per_source[p.name][k] for k in ("available", "requested", "selected", "written")}
                    | {"rejected": sum(per_source[p.name]["rejected"]["convert"].values())
                       + sum(per_source[p.name]["rejected"]["images"].values()),
                       "selected_ids_sha256": digests.get(p.name, selection_digest(recipe.seed, p.name, []))}
                    for p in prepared},
        "samples": total,
        "bytes": sum(s.bytes for s in shards),
        "shards": [asdict(s) for s in shards],
        "index": {"file": "index.parquet", "sha256": sha256_file(out / "index.parquet")},
    }
    manifest = sealed(manifest)
    write_json(out / "manifest.json", manifest)
    return manifest


def index_digests(mix_dir: Path, seed: int) -> dict[str, str]:
    """selected_ids_sha256 per source, from what index.parquet says was written (verify recomputes it so)."""
    import pyarrow.parquet as pq

    table = pq.read_table(mix_dir / "index.parquet", columns=["id", "source"])
    by_source: dict[str, list[str]] = {}
    for sample_id, source in zip(table.column("id").to_pylist(), table.column("source").to_pylist()):
        by_source.setdefault(source, []).append(sample_id)
    return {source: selection_digest(seed, source, ids) for source, ids in by_source.items()}
