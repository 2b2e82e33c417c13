"""The audit's figures as titled tables (stats.tables.Table), drawn by rich in the terminal and as HTML in
the report, so both show the same numbers. Each table fits 100 columns."""

from __future__ import annotations

from datamix.audit.figures import PLACEMENTS
from datamix.stats.tables import Table, _fit, n, pct

TOTAL = "total"


def _rows(blocks: dict, total: dict):
    yield from blocks.items()
    yield TOTAL, total


def sources_table(result: dict) -> Table:
    counts = (result["counts"] or {}).get("classes", {})
    rows = []
    for cls, b in _rows(result["classes"], result["total"]):
        c = result["counts"]["total"] if cls == TOTAL and result["counts"] else counts.get(cls, {})
        rows.append([cls, b.get("task") or "", n(b["records"]), pct(b["share"], 2), n(c.get("expected")),
                     _signed(c.get("diff")), _num(b.get("questions_mean")), _num(b.get("questions_median"))])
    reference = f"expected: {result['counts']['reference']}; " if result["counts"] else ""
    return Table(f"{result['file']}: {result['records']:,} records by source",
                 ["source", "task", "records", "share", "expected", "diff", "q mean", "q median"], rows,
                 f"{reference}q: questions (human turns) per record; vqav2_okvqa holds VQAv2 and OK-VQA (same folder "
                 "and prompt)")


def prompts_table(result: dict) -> Table:
    rows = []
    for cls, b in _rows(result["classes"], result["total"]):
        records = b["records"] or 1
        placement = [pct(b["placement"][p] / records, 0) if b["placement"][p] else "-" for p in PLACEMENTS]
        prompts = ", ".join(f"{task} {k:,}" for task, k in b["prompts"].items()) or "-"
        a = b["answers"] or {}
        rows.append([cls, *placement, _fit(prompts, 22), pct(a.get("uppercase_share"), 0),
                     pct(a.get("period_share"), 0)])
    return Table("format prompts (share of records by placement) and answers",
                 ["source", "none", "single", "first", "every", "mixed", "prompted questions", "Upper", "end ."], rows,
                 "single: one question, prompted; first: only the first of several; Upper: answers starting "
                 "uppercase among cased ones; end .: answers ending with a period")


def boxes_table(result: dict) -> Table:
    rows = []
    for cls, b in _rows(result["classes"], result["total"]):
        x = b.get("boxes")
        if not x:
            continue
        f = x["formats"]
        rows.append([cls, n(x["boxes"]), n(x["in_human"]), n(x["in_gpt"]), pct(x["round_2dp_like_share"]),
                     pct(x["fixed_2dp_share"]), n(f["integer"]), n(f["more_dp"]), n(x["outside_unit"]),
                     n(x["inverted"])])
    return Table("boxes [x1, y1, x2, y2]", ["source", "boxes", "human", "gpt", "round(v,2)", "exact 2dp",
                                            "integer", ">2dp", "out 0-1", "inverted"], rows,
                 "human/gpt: boxes in questions (REG) / answers (REC); round(v,2): every value printed as Python "
                 "prints round(v, 2) (0.8, 0.61); exact 2dp: [0.61, 0.36, 0.92, 0.83]-style; integer: pixels")


def images_table(result: dict) -> Table:
    images = result["images"]
    rows = [[cls, n(x["images"]), n(x["missing"]), n(x["unsafe"]),
             _fit(", ".join(x["examples_unsafe"] + x["examples_missing"]), 44)]
            for cls, x in [*images["classes"].items(), (TOTAL, images["total"])]]
    return Table(f"images under {images['root']}", ["source", "images", "missing", "unsafe", "examples"], rows,
                 "images: distinct paths; unsafe: absolute, with '..', or leading out of the root (never looked up)")


def against_table(result: dict) -> Table:
    a = result["against"]
    rows = [[cls, n(c["both"]), n(c["only_released"]), n(c["only_build"]), n(c["differing"])]
            for cls, c in [*a["classes"].items(), (TOTAL, a["total"])]]
    return Table(f"released {result['file']}  vs  build {a['build']}",
                 ["source", "in both", "only released", "only build", "differing"], rows,
                 "matched by source-relative image path and first question (without <image> and format prompt); "
                 "differing: matched records whose turns differ")


def differences_table(result: dict) -> Table:
    rows = []
    for cls, c in result["against"]["classes"].items():
        for d in c["examples_differing"]:
            rows.append([cls, _fit(str(d["released_id"]), 14), str(d["turn"]),
                         _fit(_turn(d["role_released"], d["value_released"]), 30),
                         _fit(_turn(d["role_built"], d["value_built"]), 30)])
    return Table("first differences (released turn vs built turn)", ["source", "released id", "turn", "released",
                                                                     "built"], rows)


def audit_tables(result: dict) -> list[Table]:
    tables = [sources_table(result), prompts_table(result)]
    boxes = boxes_table(result)
    tables += [boxes] if boxes.rows else []
    if result["images"] is not None:
        tables.append(images_table(result))
    if result["against"] is not None:
        tables.append(against_table(result))
        diffs = differences_table(result)
        tables += [diffs] if diffs.rows else []
    return tables


def verdict(result: dict, failed: list[str]) -> str:
    """The footer: OK (which checks ran) or FAILED, and the records LLaVA's trainer would stumble on."""
    problems = {k: v for k, v in result["total"].get("problems", {}).items() if v}
    extra = ("; records with problems: " + ", ".join(f"{k} {v:,}" for k, v in problems.items())
             if problems else "")
    if failed:
        return f"FAILED: {len(failed)} check(s), listed below" + extra
    checks = [f"counts match {result['counts']['reference']}" if result["counts"] else "counts not checked"]
    if result["images"] is not None:
        checks.append(f"all {result['images']['total']['images']:,} images present")
    return "OK: " + ", ".join(checks) + extra


def _turn(role, value) -> str:
    if role is None and value is None:
        return "(no turn)"
    return f"{role}: " + (value or "").replace("\n", "\\n")


def _num(value) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _signed(value) -> str:
    return "-" if value is None else f"{value:+,}"
