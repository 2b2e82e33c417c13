"""Seeded, nested, exact selection.

A source's samples are ranked by a stable hash of (seed, source, id) and the first k are taken, so:
- subsets are nested across ratios (10% inside 25% inside 50%),
- the result is independent of input order, Python version and machine (blake2b, not `hash()`),
- amounts are exact per source: a quota r x n is rounded to the nearest integer (halves up), for each
  source on its own.

Why not largest remainder across sources (which makes the mix total exact too)? It is not monotone
(the Alabama paradox): raising every ratio can take a sample away from one source, e.g. sources of 36
and 2 samples get [7, 1] at 0.2 but [11, 0] at 0.3, which breaks nesting. Per-source rounding is
monotone in r and never lets one source's amount move another's; the total is the sum of the
per-source counts (within half a sample per source of r x N) and is what the manifest records.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


def rank_key(seed: int, source: str, sample_id: str) -> int:
    digest = hashlib.blake2b(f"{seed}\x1f{source}\x1f{sample_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rank_order(seed: int, source: str, ids: Sequence[str]) -> np.ndarray:
    """Row indices of `ids` from first to last in the seeded ranking: the one ranking of a build's pick,
    a subsample's rungs and the manifest's id digests."""
    keys = np.fromiter((rank_key(seed, source, i) for i in ids), dtype=np.uint64, count=len(ids))
    order = np.argsort(keys, kind="stable")
    if len(keys) > 1 and bool(np.any(keys[order][1:] == keys[order][:-1])):
        # A 64-bit collision (never seen): break the tie by id so input order can never matter.
        order = np.lexsort((np.asarray(ids, dtype=object).astype(str), keys))
    return order


@dataclass(frozen=True)
class Target:
    """How many samples a source contributes: `copies` whole passes plus the first `extra` ranked samples."""

    copies: int
    extra: int

    def total(self, available: int) -> int:
        return self.copies * available + self.extra

    def distinct(self, available: int) -> int:
        return available if self.copies else self.extra


def round_quota(quota: float) -> int:
    """Nearest integer, halves up (Python's round() would send 2.5 to 2 and 3.5 to 4)."""
    return math.floor(quota + 0.5 + 1e-9)


def targets(amounts: Iterable[tuple[str, float]], available: Sequence[int]) -> list[Target]:
    """(kind, value) per source, with its available count -> exact targets.

    `count` is exact (the caller checks it against what is available); `ratio` and the fractional part
    of `repeat` are rounded per source, so each amount depends only on its own source.
    """
    result = []
    for (kind, value), n in zip(amounts, available):
        if kind == "count":
            result.append(Target(0, int(value)))
            continue
        whole = int(value) if kind == "repeat" else 0
        result.append(Target(whole, round_quota((value - whole) * n)))
    return result
