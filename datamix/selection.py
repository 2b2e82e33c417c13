"""Seeded, nested, exact selection.

A source's samples are ranked by a stable hash of (seed, source, id) and the first k are taken, so:
- subsets are nested across ratios (10% inside 25% inside 50%),
- the result is independent of input order, Python version and machine (blake2b, not `hash()`),
- amounts are exact: fractional quotas are rounded by the largest-remainder method, so each source
  gets floor or ceil of its quota and the total is the rounded sum of all quotas.
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
    """Row indices of `ids` from first to last in the seeded ranking (ties, never seen, broken by id)."""
    keys = np.fromiter((rank_key(seed, source, i) for i in ids), dtype=np.uint64, count=len(ids))
    return np.lexsort((np.asarray(ids, dtype=object).astype(str), keys))


@dataclass(frozen=True)
class Target:
    """How many samples a source contributes: `copies` whole passes plus the first `extra` ranked samples."""

    copies: int
    extra: int

    def total(self, available: int) -> int:
        return self.copies * available + self.extra

    def distinct(self, available: int) -> int:
        return available if self.copies else self.extra


def largest_remainder(quotas: Sequence[float]) -> list[int]:
    """Round each quota down or up so that the total is the rounded sum of the quotas."""
    floors = [math.floor(q + 1e-9) for q in quotas]
    total = math.floor(sum(quotas) + 0.5)  # half up: round() would send 2.5 to 2
    remainders = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - floors[i]), i))
    for i in remainders[: max(0, total - sum(floors))]:
        floors[i] += 1
    return floors


def targets(amounts: Iterable[tuple[str, float]], available: Sequence[int]) -> list[Target]:
    """(kind, value) per source, with its available count -> exact targets.

    `count` is exact (capped by nothing here; the caller checks it against what is available), `ratio`
    and the fractional part of `repeat` share one largest-remainder pool so the mix total is exact too.
    """
    amounts = list(amounts)
    copies, quotas = [], []
    for (kind, value), n in zip(amounts, available):
        whole = int(value) if kind == "repeat" else 0
        copies.append(whole)
        quotas.append(0.0 if kind == "count" else (value - whole) * n)
    rounded = largest_remainder(quotas)
    return [Target(c, int(value) if kind == "count" else r)
            for (kind, value), c, r in zip(amounts, copies, rounded)]
