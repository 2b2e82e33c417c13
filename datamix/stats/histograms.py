"""Histogram counts for the report's charts (also in the JSON, so a chart can be redrawn from it).

Lengths use power-of-two bins, [0,1) [1,2) [2,4) [4,8) ..., because they span 1-word answers to
thousand-word ShareGPT replies; turns per sample use one bin per count, the last one open (>= TURN_CAP).
"""

from __future__ import annotations

import numpy as np
import polars as pl

TURN_CAP = 30


def log2_bin(values: np.ndarray) -> np.ndarray:
    """0 for 0, else floor(log2(v)) + 1: frexp's exponent (v = m * 2**e, 0.5 <= m < 1), exact for integers."""
    return np.frexp(values.astype(np.float64))[1].astype(np.int64)


def histograms(samples: pl.DataFrame, turns: pl.DataFrame, names: list[str], order: list[str]) -> dict:
    t_src, t_role = turns["src"].to_numpy(), turns["role"].to_numpy()
    t_bin = log2_bin(turns["len"].to_numpy())
    s_src = samples["src"].to_numpy()
    s_bin = log2_bin(samples["conv_len"].to_numpy())
    n_bins = int(max(t_bin.max(initial=0), s_bin.max(initial=0))) + 1
    s_turns = np.clip(samples["turns"].to_numpy(), 1, TURN_CAP)
    out: dict = {"length_edges": [0] + [2 ** i for i in range(n_bins)],
                 "turns_values": list(range(1, TURN_CAP + 1)), "sources": {}}
    for name in order:
        if name not in names:
            continue
        code = names.index(name)
        mine, own = t_src == code, s_src == code
        out["sources"][name] = {
            "human": np.bincount(t_bin[mine & (t_role == 0)], minlength=n_bins).tolist(),
            "gpt": np.bincount(t_bin[mine & (t_role == 1)], minlength=n_bins).tolist(),
            "conversation": np.bincount(s_bin[own], minlength=n_bins).tolist(),
            "turns": np.bincount(s_turns[own], minlength=TURN_CAP + 1)[1:].tolist(),
        }
    return out
