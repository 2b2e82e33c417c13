"""Two mixes side by side (counts, shares, added / removed sample ids), or a mix against reference counts.

Ids are compared per source with anti-joins in polars: a 50% rung against its parent shows 0 added and
the other half removed; two builds of different recipes show exactly which samples moved.
"""

from __future__ import annotations

import polars as pl

EXAMPLES = 5  # example ids per source and direction kept in the JSON


def reference_stats(reference: dict) -> dict:
    """A reference manifest in the shape `compare` reads: name, samples, per-source samples and share."""
    counts = {name: int(v["samples"]) for name, v in reference["sources"].items()}
    total = int(reference.get("samples") or sum(counts.values()))
    return {"name": reference.get("name", "reference"), "samples": total,
            "sources": {k: {"samples": v, "share": round(v / total, 6) if total else 0.0} for k, v in counts.items()},
            "total": {"samples": total, "share": 1.0}}


def compare(a: dict, b: dict, ids_a: pl.DataFrame | None = None, ids_b: pl.DataFrame | None = None) -> dict:
    """Per source (A's order, then B's extra sources) and in total: samples, shares and their differences."""
    names = list(a["sources"]) + [s for s in b["sources"] if s not in a["sources"]]
    changes = id_changes(ids_a, ids_b) if ids_a is not None and ids_b is not None else None
    sources = {}
    for name in names:
        sa, sb = a["sources"].get(name, {}), b["sources"].get(name, {})
        sources[name] = _pair(sa, sb) | {"ids": changes.get(name, _no_change()) if changes is not None else None}
    total = _pair(a["total"], b["total"])
    if changes is not None:
        total["ids"] = {k: sum(c[k] for c in changes.values()) for k in ("added", "removed")}
    return {"a": a["name"], "b": b["name"], "sources": sources, "total": total}


def _pair(sa: dict, sb: dict) -> dict:
    ca, cb = sa.get("samples", 0), sb.get("samples", 0)
    ha, hb = sa.get("share", 0.0), sb.get("share", 0.0)
    return {"samples": {"a": ca, "b": cb, "diff": cb - ca},
            "share": {"a": ha, "b": hb, "diff": round(hb - ha, 6)}}


def _no_change() -> dict:
    return {"added": 0, "removed": 0, "examples_added": [], "examples_removed": []}


def id_changes(ids_a: pl.DataFrame, ids_b: pl.DataFrame) -> dict[str, dict]:
    """{source: added (in B only), removed (in A only), a few example ids of each}."""
    added = ids_b.join(ids_a, on=["source", "id"], how="anti")
    removed = ids_a.join(ids_b, on=["source", "id"], how="anti")
    out: dict[str, dict] = {}
    for key, frame in (("added", added), ("removed", removed)):
        counts = frame.group_by("source").agg(pl.len(), pl.col("id").sort().head(EXAMPLES).alias("ex"))
        for source, count, examples in counts.iter_rows():
            entry = out.setdefault(source, _no_change())
            entry[key], entry[f"examples_{key}"] = count, examples
    return out
