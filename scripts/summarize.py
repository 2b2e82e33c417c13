"""Print a mix's stats.json as a table, one row per source."""

from __future__ import annotations

import json
import sys


def main(path: str) -> None:
    stats = json.load(open(path, encoding="utf-8"))
    print(f"{stats['mix']}: {stats['samples']:,} samples")
    header = f"{'source':<10} {'avail':>6} {'req':>6} {'written':>7} {'share':>6} {'turns':>6} {'images':>6} {'rejected (reason: n)'}"
    print(header)
    print("-" * len(header))
    for name, s in stats["sources"].items():
        rejected = {**s["rejected"]["convert"], **s["rejected"]["images"]}
        reasons = ", ".join(f"{k}: {v}" for k, v in rejected.items()) or "-"
        print(f"{name:<10} {s['available']:>6} {s['requested']:>6} {s['written']:>7} {s['share']:>6.1%} "
              f"{s['turns']:>6} {s['images']:>6} {reasons}")


if __name__ == "__main__":
    main(sys.argv[1])
