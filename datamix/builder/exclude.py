"""Step 1b of a build, between prepare and pick: the rows no selection may take (recipe `exclude:` / `dedupe:`).

Every row of every converted source is looked at, whatever its ratio, so the removed rows do not depend on
the amounts: removing them before ranking leaves the others' rank order as it was, a `count` still gives
its number and rungs stay nested. Fingerprints go through the build's process pool and are cached under
`.work/fingerprints/` (a rebuild re-hashes only changed files). The removed rows become ledger entries
(stage `decontaminate` or `dedupe`) and the counts a `decontamination` block of the manifest and stats.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from datamix.builder.prepare import PreparedSource
from datamix.builder.workers import Mapper
from datamix.builder.write import mix_id
from datamix.decontam.decide import Decision, SourceRows, decide
from datamix.decontam.evalsets import read_eval_set
from datamix.decontam.keys import Links
from datamix.decontam.prints import file_fingerprints
from datamix.images import read_image_file
from datamix.paths import inside
from datamix.recipe import Recipe
from datamix.sample_numbers import conversation_hashes
from datamix.selection import rank_order


@dataclass
class Exclusion:
    """Per source: which rows of its converted Parquet are out, and their ledger entries."""

    removed: dict[str, np.ndarray] = field(default_factory=dict)  # bool per row
    rejects: dict[str, list[dict]] = field(default_factory=dict)
    record: dict | None = None  # the manifest's `decontamination` block; None when the recipe asks for nothing
    examples: list[dict] = field(default_factory=list)
    key: str = ""  # what the removals depend on beyond the recipe: the evaluation files' content
    labels: dict[str, list[str]] = field(default_factory=dict)  # per source: the mix id of each row

    def rows(self, name: str) -> np.ndarray | None:
        return self.removed.get(name)

    def available(self, name: str, n: int) -> int:
        removed = self.removed.get(name)
        return n if removed is None else n - int(removed.sum())


def exclude_rows(recipe: Recipe, prepared: list[PreparedSource], work: Path, pool: Mapper) -> Exclusion:
    if recipe.exclude is None and recipe.dedupe is None:
        return Exclusion()
    conversations = recipe.dedupe is not None and recipe.dedupe.conversations
    sources = [_source_rows(recipe.seed, p, conversations) for p in prepared]
    links = Links.read(recipe.exclude.links) if recipe.exclude is not None else Links()
    eval_sets = [read_eval_set(spec) for spec in recipe.exclude.sets] if recipe.exclude is not None else []
    fingerprint_eval = recipe.exclude is not None and recipe.exclude.tiers.fingerprints
    eval_prints = []
    for es in eval_sets:
        if not fingerprint_eval or es.image_root is None:
            eval_prints.append([None] * len(es.items))
            continue
        found = file_fingerprints(es.image_root, [i.image for i in es.items if i.image], recipe.max_image_pixels,
                                  pool, inside(work, "fingerprints", "eval", f"{es.name}.parquet"))
        eval_prints.append([found[i.image] if i.image else None for i in es.items])

    def prints(n: int, rows: list[int]) -> dict[int, list]:
        source = prepared[n]
        paths = [p for r in rows for p in sources[n].images[r]]
        found = file_fingerprints(source.spec.image_root, paths, recipe.max_image_pixels, pool,
                                  inside(work, "fingerprints", "sources", f"{source.name}.parquet"))
        return {r: [found[p] for p in sources[n].images[r]] for r in rows}

    def read(n: int, row: int, k: int):
        root = prepared[n].spec.image_root
        return None if root is None else read_image_file(root, sources[n].images[row][k])

    decision = decide(sources, exclude=recipe.exclude, dedupe=recipe.dedupe, eval_sets=eval_sets,
                      eval_prints=eval_prints, links=links, prints=prints, read=read,
                      max_pixels=recipe.max_image_pixels)
    return _exclusion(prepared, decision, sources)


def _source_rows(seed: int, source: PreparedSource, conversations: bool) -> SourceRows:
    table = pq.read_table(source.parquet, columns=["id", "source", "images"])
    ids = table.column("id").to_pylist()
    row_converters = table.column("source").to_pylist()
    converters = set(row_converters)
    converter = source.spec.converter or (converters.pop() if len(converters) == 1 else None)
    labels = [mix_id(i, c, source.name, 0) for i, c in zip(ids, row_converters)]  # the ids the mix gives them
    return SourceRows(name=source.name, converter=converter, labels=labels,
                      images=[list(x or []) for x in table.column("images").to_pylist()],
                      rank=rank_order(seed, source.name, ids),
                      conversations=stored_conversation_hashes(source.parquet) if conversations else None)


def stored_conversation_hashes(path: Path) -> np.ndarray:
    """The `conversation_hash` column a converted file (or a mix index) holds, else computed from the turns."""
    names = pq.read_schema(path).names
    if "conversation_hash" in names:
        return pq.read_table(path, columns=["conversation_hash"]).column(0).to_numpy()
    return conversation_hashes(pq.read_table(path, columns=["conversations"]).column(0)).to_numpy()


def _exclusion(prepared: list[PreparedSource], decision: Decision, sources: list[SourceRows]) -> Exclusion:
    # The shards depend on which rows are out (evaluation files and images included): that is the key.
    digest = hashlib.sha256()
    for source, removed in zip(prepared, decision.removed):
        digest.update(f"{source.name}\x1f{np.flatnonzero(removed).tolist()}\n".encode())
    return Exclusion(removed={p.name: r for p, r in zip(prepared, decision.removed)},
                     rejects={p.name: r for p, r in zip(prepared, decision.rejects)},
                     record=decision.record, examples=decision.examples,
                     key=digest.hexdigest(), labels={s.name: s.labels for s in sources})


def mark_twins_outside_mix(excluded: Exclusion, prepared: list[PreparedSource], picks: list) -> int:
    """Dedupe keeps the first copy by rank over *every* candidate row, so removals do not depend on the amounts
    and rungs stay nested. The kept copy is then not always selected (a ratio or count below the source's size,
    or its image failing the pick). Each dedupe entry says whether its twin is in the mix
    (`duplicate_of_in_mix`); returns how many are not, so the build can say so instead of losing them silently."""
    entries = [e for rejects in excluded.rejects.values() for e in rejects if e.get("stage") == "dedupe"]
    if not entries:
        return 0
    selected = {excluded.labels[source.name][r] for source, picked in zip(prepared, picks)
                for r in picked.rows.tolist()}
    for entry in entries:
        entry["duplicate_of_in_mix"] = entry["duplicate_of"] in selected
    return sum(not e["duplicate_of_in_mix"] for e in entries)
