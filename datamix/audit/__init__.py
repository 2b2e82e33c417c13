"""`datamix audit`: what a released LLaVA mix file (`llava_v1_5_mix665k.json`) really holds, per source.

- `audit(path, reference=, image_root=, against=)`: every figure as one JSON-ready dict (`--json`):
  per class (source, by the llava converter's rules; classes.py) records and share, questions per record,
  prompt placement, answer casing, box formats (figures.py), problems, missing images (images.py),
  the counts against a reference manifest (`manifests/llava_v1_5_mix665k.json`: the exact per-source
  counts of LLaVA issues #702 / #657), and with `against` the record-level comparison with a build
  (against.py).
- `failures(result)`: the checks that failed, as short phrases (the CLI exits 1 when there are any).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from datamix.audit import figures as fig
from datamix.audit.classes import ORDER, TASK, classify, expected_counts
from datamix.audit.read import Released, read_released

FORMAT = "datamix-audit/1"
DEFAULT_REFERENCE = Path(__file__).resolve().parents[2] / "manifests" / "llava_v1_5_mix665k.json"
MALFORMED_EXAMPLES = 5
SHOWN = 3  # classes named in the one-line failure message


def audit(path: str | Path, reference: dict | None = None, image_root: str | Path | None = None,
          against: str | Path | None = None) -> dict:
    """Every figure of the released file at `path`; `reference` is a manifest (stats.load.load_reference)."""
    released = read_released(path)
    classes = classify(released.records, released.turns)
    turns = fig.with_prompts(released.turns.with_columns(_per_row(classes, released.turns)))
    recs = fig.per_record(released.records.with_columns(classes), turns)
    expected = expected_counts(reference) if reference is not None else {}
    blocks = _blocks(recs, turns, released.total)
    order = [c for c in dict.fromkeys([*expected, *ORDER, *sorted(blocks)]) if c in blocks and c != fig.TOTAL]
    result = {
        "format": FORMAT, "file": Path(path).name, "records": released.total,
        "classes": {c: blocks[c] for c in order}, "total": blocks[fig.TOTAL],
        "malformed": {"records": len(released.malformed), "examples": released.malformed[:MALFORMED_EXAMPLES]},
        "counts": _counts(blocks, expected, reference) if reference is not None else None,
        "images": None, "against": None,
    }
    if image_root is not None:
        from datamix.audit.images import check_images

        images = check_images(released.images.with_columns(_per_row(classes, released.images)), image_root)
        images["classes"] = {c: images["classes"][c] for c in order if c in images["classes"]}
        result["images"] = {"root": str(image_root), **images}
    if against is not None:
        from datamix.audit.against import compare_build, load_build

        result["against"] = compare_build((recs, turns), load_build(against), Path(against).name, order)
    return result


def _per_row(classes: pl.Series, frame: pl.DataFrame) -> pl.Series:
    """The record's class on every row of a turns or images frame."""
    return classes.gather(frame["row"])


def _blocks(recs: pl.DataFrame, turns: pl.DataFrame, total: int) -> dict[str, dict]:
    records = fig.record_figures(recs)
    prompts, answers, boxes = fig.prompt_figures(turns), fig.answer_figures(turns), fig.box_figures(turns)
    out = {}
    for cls, block in records.items():
        block = {"task": TASK.get(cls), **block, "share": round(block["records"] / total, 6) if total else 0.0,
                 "prompts": prompts.get(cls, {}), "answers": answers.get(cls), "boxes": boxes.get(cls)}
        if cls == fig.TOTAL:
            block.pop("task")
        out[cls] = block
    if fig.TOTAL not in out:  # an empty list
        out[fig.TOTAL] = {"records": 0, "share": 0.0}
    return out


def _counts(blocks: dict, expected: dict[str, int], reference: dict) -> dict:
    """Per class: found, expected, diff; `ok` when every class (and nothing else) has its expected count."""
    names = [*expected, *(c for c in blocks if c not in expected and c != fig.TOTAL)]
    rows = {}
    for cls in names:
        found = blocks.get(cls, {}).get("records", 0)
        want = expected.get(cls)
        rows[cls] = {"found": found, "expected": want, "diff": None if want is None else found - want}
    found_total = blocks[fig.TOTAL]["records"]
    want_total = int(reference.get("samples") or sum(expected.values()))
    return {"reference": reference.get("name", "reference"), "classes": rows,
            "total": {"found": found_total, "expected": want_total, "diff": found_total - want_total},
            "ok": all(r["diff"] == 0 for r in rows.values()) and found_total == want_total}


def failures(result: dict) -> list[str]:
    """The failed checks, each a short phrase naming the classes concerned."""
    out = []
    counts = result["counts"]
    if counts is not None and not counts["ok"]:
        off = [f"{c} {r['found']:,} (expected {r['expected']:,}, {r['diff']:+,})" if r["expected"] is not None
               else f"{c} {r['found']:,} (not in the reference)"
               for c, r in counts["classes"].items() if r["diff"] != 0]
        more = f"; and {len(off) - SHOWN} more" if len(off) > SHOWN else ""
        out.append(f"counts differ from {counts['reference']}: " + "; ".join(off[:SHOWN]) + more)
    if result["malformed"]["records"]:
        out.append(f"{result['malformed']['records']:,} malformed record(s)")
    images = result["images"]
    if images is not None:
        total = images["total"]
        if total["missing"]:
            out.append(f"{total['missing']:,} image(s) missing under {images['root']}")
        if total["unsafe"]:
            out.append(f"{total['unsafe']:,} image path(s) outside the image root")
    return out


__all__ = ["DEFAULT_REFERENCE", "FORMAT", "Released", "audit", "failures", "read_released"]
