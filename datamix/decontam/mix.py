"""`datamix decontaminate MIX_DIR --against ... --out CLEAN_DIR`: a finished mix without its contaminated samples.

The evaluation sets come from recipes (their `exclude:` sets, links and tiers, and their `dedupe:`) or from
`KIND:PATH` arguments. The decision is the build's (`decide.decide`) over every sample of the mix: ids from the
samples' image paths, fingerprints from the image bytes stored in the shards (one pass, through the process
pool). The result is written like a subsample rung (`subsample.write_rungs`): a complete mix whose manifest names
its parent, whose ledger holds the removed samples (stage `decontaminate` / `dedupe`), verified by `datamix verify`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datamix.builder.exclude import stored_conversation_hashes
from datamix.builder.workers import mapper
from datamix.decontam.decide import SourceRows, decide, recount
from datamix.decontam.evalsets import KINDS, read_eval_set
from datamix.decontam.keys import Links
from datamix.decontam.prints import file_fingerprints
from datamix.decontam.spec import DedupeSpec, EvalSpec, ExcludeSpec, Tiers
from datamix.errors import InputError
from datamix.fingerprints import fingerprint_bytes_job
from datamix.mixdir import INDEX, iter_samples, load_manifest, read_index
from datamix.mixdir.shards import sha256_file
from datamix.paths import is_safe_name
from datamix.recipe import DEFAULT_MAX_PIXELS, load_recipe
from datamix.selection import rank_order
from datamix.subsample import Rung, inherited_decontamination, write_rungs

BATCH = 256  # images in flight to the workers at once


def parse_against(values: list[str], tiers: Tiers | None, links: list[Path], image_root: Path | None
                  ) -> tuple[ExcludeSpec | None, DedupeSpec | None]:
    """`--against` values: recipe files (.yaml/.yml) or `KIND:PATH` evaluation sets, merged in the order given."""
    sets: list[EvalSpec] = []
    links = list(links)  # the caller's list is not ours to extend
    dedupe = None
    recipe_tiers = None
    recipes = [v for v in values if v.endswith((".yaml", ".yml"))]
    if len(recipes) > 1:  # whose tiers and dedupe would apply is not obvious: refuse rather than pick one
        raise InputError(f"--against: give at most one recipe (got {', '.join(recipes)}); name further "
                         "evaluation sets as KIND:PATH")
    for value in values:
        if value.endswith((".yaml", ".yml")):
            recipe = load_recipe(value, check_files=False)
            if recipe.exclude is None and recipe.dedupe is None:
                raise InputError(f"{value}: the recipe has no exclude: or dedupe: section to apply")
            if recipe.exclude is not None:
                sets += recipe.exclude.sets
                links += recipe.exclude.links
                recipe_tiers = recipe_tiers or recipe.exclude.tiers
            dedupe = dedupe or recipe.dedupe
            continue
        kind, sep, path = value.partition(":")
        if not sep or kind not in KINDS or not path:
            raise InputError(f"--against {value!r}: give a recipe (.yaml) or KIND:PATH with KIND one of "
                             f"{', '.join(KINDS)}, e.g. pope:coco_pope_random.json")
        name = Path(path).stem if is_safe_name(Path(path).stem) else kind
        if not Path(path).exists():
            raise InputError(f"--against {value!r}: {path} does not exist")
        # A folder (kind folder, or MME's release folder) is its own image root; --eval-image-root is for files.
        root = None if Path(path).is_dir() else image_root
        sets.append(EvalSpec(name=name, kind=kind, path=Path(path), image_root=root))
    names = [s.name for s in sets]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(f"--against: evaluation set name(s) given twice: {', '.join(repeated)}")
    exclude = ExcludeSpec(tuple(sets), tiers or recipe_tiers or Tiers(), tuple(links)) if sets else None
    return exclude, dedupe


def decontaminate(mix_dir: str | Path, out: str | Path, *, exclude: ExcludeSpec | None, dedupe: DedupeSpec | None,
                  workers: int = 1, verify: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS) -> dict:
    """Write the clean copy of `mix_dir` into `out`; returns its manifest."""
    mix_dir, out = Path(mix_dir), Path(out)
    if exclude is None and dedupe is None:
        raise InputError("nothing to remove against: give --against with evaluation sets or a recipe")
    manifest = load_manifest(mix_dir)
    index = read_index(mix_dir, ["id", "source", "images"], manifest=manifest if verify else None)
    ids = np.asarray(index.column("id").to_pylist(), dtype=object)
    by_row = np.asarray(index.column("source").to_pylist(), dtype=object)
    images = [list(x or []) for x in index.column("images").to_pylist()]
    hashes = stored_conversation_hashes(mix_dir / INDEX) if dedupe is not None and dedupe.conversations else None
    converters = {s["name"]: s.get("converter") for s in manifest.get("recipe", {}).get("sources", [])}
    names = [s for s in manifest["sources"] if s in set(by_row.tolist())] + sorted(set(by_row.tolist())
                                                                                  - set(manifest["sources"]))
    every = [np.flatnonzero(by_row == s) for s in names]
    # A repeat copy (`a/x@1`) is decided with its first copy (`a/x`), never as a duplicate of it: the decision
    # is made over the distinct samples, as in a build, whose dedupe runs before the copies are made.
    first = [_first_copy(ids[p].tolist()) for p in every]
    positions = [p[f == np.arange(len(p))] for p, f in zip(every, first)]
    sources = [SourceRows(name=s, converter=converters.get(s), labels=ids[p].tolist(), images=[images[i] for i in p],
                          rank=rank_order(manifest["seed"], s, _converted_ids(ids[p].tolist(), converters.get(s))),
                          conversations=None if hashes is None else hashes[p])
               for s, p in zip(names, positions)]
    with mapper(workers) as pool:
        eval_sets = [read_eval_set(spec) for spec in exclude.sets] if exclude is not None else []
        eval_prints = [file_fingerprints(es.image_root, [i.image for i in es.items if i.image], max_pixels, pool)
                       if exclude.tiers.fingerprints and es.image_root is not None else {} for es in eval_sets]
        eval_prints = [[found.get(i.image) if i.image else None for i in es.items]
                       for es, found in zip(eval_sets, eval_prints)]
        stored = _StoredImages(mix_dir, manifest, positions, pool, max_pixels, verify)
        decision = decide(sources, exclude=exclude, dedupe=dedupe, eval_sets=eval_sets, eval_prints=eval_prints,
                          links=Links.read(exclude.links) if exclude is not None else Links(),
                          prints=stored.prints, read=stored.read, max_pixels=max_pixels)
    removed_rows = [_with_copies(r, f) for r, f in zip(decision.removed, first)]
    rejects = [_with_copy_entries(entries, ids[p].tolist(), f, r) for entries, p, f, r
               in zip(decision.rejects, every, first, removed_rows)]
    kept = np.sort(np.concatenate([p[~r] for p, r in zip(every, removed_rows)] or [np.zeros(0, np.int64)]))
    counts = {s.name: {"available": len(p), "requested": int((~r).sum()), "selected": int((~r).sum()),
                       "images_checked": 0, "records_in": None} for s, p, r in zip(sources, every, removed_rows)}
    removed = int(sum(r.sum() for r in removed_rows))
    recount(decision.record, sources, [e for per_source in rejects for e in per_source])
    record = decision.record | {"against": [_described(s) for s in (exclude.sets if exclude else ())]}
    record |= inherited_decontamination(manifest) or {}  # what the parent had removed already
    rung = Rung(ratio=1.0, name=manifest["name"], out=out, positions=kept.astype(np.int64), counts=counts,
                lineage={"ratio": None, "removed": removed}, rejects=[e for r in rejects for e in r],
                decontamination=record, examples=decision.examples)
    return write_rungs(mix_dir, manifest, [rung], ids, verify=verify, command="decontaminate")[0]


def _first_copy(source_ids: list[str]) -> np.ndarray:
    """Per row, the row of its first copy: `a/x@2` is the third copy of `a/x` (the suffix `mix_id` gives repeat
    copies) when `a/x` is in the mix too; other rows are their own first copy."""
    row_of = {sample_id: row for row, sample_id in enumerate(source_ids)}
    first = np.arange(len(source_ids))
    for row, sample_id in enumerate(source_ids):
        stem, at, copy = sample_id.rpartition("@")
        if at and copy.isascii() and copy.isdecimal() and stem in row_of:
            first[row] = row_of[stem]
    return first


def _converted_ids(mix_ids: list[str], converter: str | None) -> list[str]:
    """The ids a build ranked (`llava/x` for the mix's `a/x`), so "the first by rank" is the build's choice.
    A source read from a Parquet file (no converter) is ranked by its mix ids."""
    if converter is None:
        return mix_ids
    return [f"{converter}/{i.split('/', 1)[1]}" if "/" in i else i for i in mix_ids]


def _with_copies(removed_first: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Removal per row of the source, from the removal of the first copies (in the order they appear)."""
    index_of_first = np.cumsum(first == np.arange(len(first))) - 1
    return removed_first[index_of_first[first]] if len(first) else np.zeros(0, dtype=bool)


def _with_copy_entries(entries: list[dict], source_ids: list[str], first: np.ndarray,
                       removed: np.ndarray) -> list[dict]:
    """The ledger entries of the first copies, then one per further copy removed with it (`copy_of`)."""
    by_id = {e["id"]: e for e in entries}
    copies = [by_id[source_ids[f]] | {"id": source_ids[row], "copy_of": source_ids[f]}
              for row, f in enumerate(first.tolist()) if f != row and removed[row] and source_ids[f] in by_id]
    return entries + copies


def _described(spec: EvalSpec) -> dict:
    return {"name": spec.name, "kind": spec.kind, "file": spec.path.name,
            "sha256": sha256_file(spec.path) if spec.path.is_file() else None}


class _StoredImages:
    """The image bytes a mix stores, fingerprinted in one pass over its shards on first use."""

    def __init__(self, mix_dir: Path, manifest: dict, positions: list[np.ndarray], pool, max_pixels: int,
                 verify: bool):
        self.mix_dir, self.manifest, self.positions = mix_dir, manifest, positions
        self.pool, self.max_pixels, self.verify = pool, max_pixels, verify
        self.where = {int(p): (n, row) for n, rows in enumerate(positions) for row, p in enumerate(rows)}
        self.found: dict[tuple[int, int], list] | None = None

    def prints(self, n: int, rows: list[int]) -> dict[int, list]:
        if self.found is None:
            self.found = self._fingerprint_all()
        return {r: self.found.get((n, r), []) for r in rows}

    def _fingerprint_all(self) -> dict[tuple[int, int], list]:
        found: dict[tuple[int, int], list] = {}
        owners, batch = [], []
        for key, row, members in iter_samples(self.mix_dir, manifest=self.manifest, verify=self.verify):
            if int(key) not in self.where:  # a further repeat copy: its first copy's images stand for it
                continue
            for suffix, path in zip(row["image_members"], row["images"]):
                owners.append(self.where[int(key)])
                batch.append((members[suffix], path, self.max_pixels))
            if len(batch) >= BATCH:  # bounded: the pool would otherwise queue every image of the mix at once
                self._run(batch, owners, found)
        self._run(batch, owners, found)
        return found

    def _run(self, batch: list, owners: list, found: dict) -> None:
        for owner, fp in zip(owners, self.pool.imap(fingerprint_bytes_job, batch, chunksize=8)):
            found.setdefault(owner, []).append(fp)
        batch.clear()
        owners.clear()

    def read(self, n: int, row: int, k: int) -> bytes | None:
        position = int(self.positions[n][row])
        for _, sample, members in iter_samples(self.mix_dir, positions=[position], manifest=self.manifest,
                                               verify=False):
            return members.get(sample["image_members"][k])
        return None
