"""Per-source figures as polars aggregations: counts, turns, images, text lengths, supervised share.

Every figure is one expression evaluated once grouped by source and once over the whole mix, so the
total is computed from the rows (a p90 of the mix is not an average of per-source p90s).
"""

from __future__ import annotations

import polars as pl

TOTAL = "__total__"  # key of the whole-mix row in the per-source dicts built here
ROLES = {"human": 0, "gpt": 1}


def dist(col: str | pl.Expr, name: str) -> list[pl.Expr]:
    """mean, p50, p90, max of a numeric column (linear interpolation, as numpy's default)."""
    c = pl.col(col) if isinstance(col, str) else col
    return [c.mean().alias(f"{name}.mean"), c.quantile(0.5, "linear").alias(f"{name}.p50"),
            c.quantile(0.9, "linear").alias(f"{name}.p90"), c.max().alias(f"{name}.max")]


def by_source(frame: pl.DataFrame | pl.LazyFrame, aggs: list[pl.Expr], names: list[str]) -> dict[str, dict]:
    """{source name: {figure: value}} plus the TOTAL row; dotted names nest (`turns.mean` -> turns/mean)."""
    lf = frame.lazy().with_columns(pl.col("src").cast(pl.Int32))
    grouped = lf.group_by("src").agg(aggs)
    total = lf.select(aggs).with_columns(pl.lit(-1, pl.Int32).alias("src"))
    rows = pl.concat([grouped, total.select(grouped.collect_schema().names())]).collect()
    out = {}
    for row in rows.iter_rows(named=True):
        src = row.pop("src")
        out[names[src] if src >= 0 else TOTAL] = nest(row)
    return out


def nest(row: dict) -> dict:
    out: dict = {}
    for key, value in row.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = round(value, 4) if isinstance(value, float) else value
    return out


def basic(samples: pl.DataFrame, names: list[str]) -> dict[str, dict]:
    """samples, turns (total and per sample), images, text-only."""
    return by_source(samples, [
        pl.len().alias("samples"), pl.col("turns").sum().alias("turns"), *dist("turns", "turns_per_sample"),
        pl.col("n_images").sum().alias("images"), (pl.col("n_images") == 0).sum().alias("text_only"),
        (pl.col("n_images") == 0).mean().alias("text_only_share"),
    ], names)


def lengths(samples: pl.DataFrame, turns: pl.DataFrame, names: list[str]) -> dict[str, dict]:
    """Length distributions of human turns, gpt turns and whole conversations; supervised share."""
    per_turn = by_source(turns, [
        *[x for role, code in ROLES.items() for x in dist(pl.col("len").filter(pl.col("role") == code), f"length.{role}")],
        *[pl.col("len").filter(pl.col("role") == code).sum().alias(f"length_total.{role}") for role, code in ROLES.items()],
        pl.col("len").sum().alias("length_total.all"),
    ], names)
    per_sample = by_source(samples, dist("conv_len", "conversation"), names)
    for name, figures in per_turn.items():
        figures["length"]["conversation"] = per_sample[name]["conversation"]
        totals = figures["length_total"]
        figures["supervised_share"] = round(totals["gpt"] / totals["all"], 6) if totals["all"] else None
    return per_turn
