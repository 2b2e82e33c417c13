"""Duplicates: identical conversations, and the same image used by several sources.

Conversations are compared by a 64-bit hash of the whole turn list (roles and text): at a million
samples the chance of one false match is about 3e-8, and it saves holding the text.
Images are compared by identity: content sha256 in a mix (two paths, same bytes = one image), else path.
"""

from __future__ import annotations

import polars as pl

from datamix.stats.figures import TOTAL


def duplicates(samples: pl.DataFrame, names: list[str]) -> tuple[dict[str, int], dict]:
    """Per source: samples beyond the first copy of each conversation; mix-wide figures."""
    per = samples.group_by("src").agg((pl.len() - pl.col("hash").n_unique()).alias("dup"))
    per_source = {names[s]: d for s, d in per.iter_rows()}
    across = (samples.group_by("hash").agg(pl.col("src").n_unique().alias("n"))
              .filter(pl.col("n") > 1).height)
    per_source[TOTAL] = samples.height - samples["hash"].n_unique()
    return per_source, {"identical_conversations": per_source[TOTAL], "identical_across_sources": across}


def images(pairs: pl.DataFrame, names: list[str]) -> tuple[dict[str, dict], list[dict]]:
    """Per source: distinct images and how many of them another source uses too; pairwise overlap."""
    pairs = pairs.unique()
    users = pairs.group_by("img").agg(pl.col("src").n_unique().alias("n"))
    pairs = pairs.join(users, on="img")
    per = pairs.group_by("src").agg(pl.len().alias("distinct_images"), (pl.col("n") > 1).sum().alias("images_shared"))
    per_source = {names[s]: {"distinct_images": d, "images_shared": k} for s, d, k in per.iter_rows()}
    per_source[TOTAL] = {"distinct_images": users.height, "images_shared": int((users["n"] > 1).sum())}
    shared = pairs.filter(pl.col("n") > 1).select("src", "img").with_columns(
        pl.col("src").replace_strict(dict(enumerate(names)), return_dtype=pl.String))
    matrix = (shared.join(shared, on="img", suffix="_b").filter(pl.col("src") < pl.col("src_b"))
              .group_by("src", "src_b").len().sort("src", "src_b"))
    return per_source, [{"a": a, "b": b, "images": n} for a, b, n in matrix.iter_rows()]
