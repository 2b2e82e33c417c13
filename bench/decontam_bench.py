"""The build's exclude step (decontamination by ids, dedupe of conversations) on a 665K-sample mix, beside the
selection ranking every build already computes.

    .venv/bin/python bench/decontam_bench.py [--samples 665298] [--eval 9000] [--repeats 3]

The candidate rows have the image paths of the LLaVA-1.5 mix (`coco/train2017/%012d.jpg`, `gqa/images/<id>.jpg`,
`vg/VG_100K/<id>.jpg`, `textvqa/train_images/<hex>.jpg`, text-only rows) and random conversation hashes; the
evaluation set is POPE-shaped (`COCO_val2014_%012d.jpg` ids drawn from the same id range, so some overlap).
In one process, best of `--repeats`:
  (a) baseline: `selection.rank_order` over the ids (what the pick step does once per source anyway);
  (b) `decontam.decide.decide` with the ids tier and dedupe of conversations (image keys of every row,
      the id join, the dedupe walk, ledger entries, counts), no image decoded.
The image tiers are decode-bound; bench/fingerprint_bench.py measures the hashing and the pHash search.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from datamix.decontam.decide import SourceRows, decide
from datamix.decontam.evalsets import EvalItem, EvalSet
from datamix.decontam.keys import Links, coco_key
from datamix.decontam.spec import DedupeSpec, EvalSpec, ExcludeSpec, Tiers
from datamix.selection import rank_order


def rows(n: int, rng: np.random.Generator) -> tuple[list[str], list[list[str]]]:
    kinds = rng.choice(5, size=n, p=[0.55, 0.11, 0.13, 0.03, 0.18])
    ids = rng.integers(1, 600_000, size=n)
    images = []
    for kind, i in zip(kinds.tolist(), ids.tolist()):
        images.append([[f"coco/train2017/{i:012d}.jpg"], [f"gqa/images/{i}.jpg"], [f"vg/VG_100K/{i}.jpg"],
                       [f"textvqa/train_images/{i:016x}.jpg"], []][kind])
    return [f"llava/{k}" for k in range(n)], images


def best(repeats: int, fn) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=665_298)
    parser.add_argument("--eval", type=int, default=9_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    ids, images = rows(args.samples, rng)
    items = [EvalItem(f"COCO_val2014_{i:012d}.jpg", None, (coco_key(i),))
             for i in rng.integers(1, 600_000, size=args.eval).tolist()]
    eval_sets = [EvalSet("pope", "pope", Path("coco_pope_random.json"), items)]
    exclude = ExcludeSpec((EvalSpec("pope", "pope", Path("coco_pope_random.json")),),
                          Tiers(bytes=False, pixels=False, phash=None))
    hashes = rng.integers(0, 2**63, size=args.samples // 2, dtype=np.uint64)[rng.integers(0, args.samples // 2,
                                                                                          size=args.samples)]
    baseline, rank = best(args.repeats, lambda: rank_order(0, "llava", ids))

    def run():
        source = SourceRows("llava", "llava", ids, images, rank, hashes)
        return decide([source], exclude=exclude, dedupe=DedupeSpec(conversations=True), eval_sets=eval_sets,
                      eval_prints=[[None] * len(items)], links=Links(), prints=lambda n, r: {},
                      read=lambda n, r, k: None, max_pixels=10**8)

    took, decision = best(args.repeats, run)
    removed = decision.record["decontaminate"]["removed"]["llava"].get("ids", 0)
    duplicates = decision.record["dedupe"]["removed"]["llava"].get("conversation", 0)
    print(f"{args.samples:,} samples against {args.eval:,} evaluation images, best of {args.repeats}")
    print(f"  (a) rank_order (baseline)               {baseline:7.2f} s")
    print(f"  (b) decide: ids tier + dedupe of turns  {took:7.2f} s   {took / baseline:5.1f}x (a)   "
          f"removed {removed:,} by ids, {duplicates:,} repeated conversations")


if __name__ == "__main__":
    main()
