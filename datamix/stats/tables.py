"""The figures as titled tables (header + rows of strings), drawn by rich in the terminal and as HTML
in the report, so both always show the same numbers. Each table fits 100 columns."""

from __future__ import annotations

from dataclasses import dataclass

TOTAL_LABEL = "total"


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""


def n(value) -> str:
    return "-" if value is None else f"{value:,}"


def pct(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def num(value) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def dist(d: dict | None) -> str:
    return "-" if not d or d.get("mean") is None else f"{num(d['mean'])}/{num(d['p50'])}/{num(d['p90'])}/{num(d['max'])}"


def _rows(stats: dict):
    yield from stats["sources"].items()
    yield TOTAL_LABEL, stats["total"]


def rejected(block: dict) -> str:
    return n(sum(sum(r.values()) for r in block.get("rejected", {}).values())) if "rejected" in block else "-"


def mixture_table(stats: dict) -> Table:
    rows = [[name, n(b["samples"]), pct(b["share"]), n(b.get("requested")), n(b.get("selected")), rejected(b),
             n(b["images"]), n(b["distinct_images"]), n(b["images_shared"]), pct(b["text_only_share"])]
            for name, b in _rows(stats)]
    return Table(f"{stats['name']}: mixture", ["source", "samples", "share", "req.", "sel.", "rej.",
                                              "images", "distinct", "shared", "no img"], rows,
                 "req./sel./rej.: requested, selected, rejected in the build; shared: distinct images "
                 "another source uses too; no img: text-only share")


def text_table(stats: dict) -> Table:
    unit = stats["length_unit"]
    rows = [[name, dist(b["turns_per_sample"]), dist((b["length"] or {}).get("human")),
             dist((b["length"] or {}).get("gpt")), dist((b["length"] or {}).get("conversation")),
             pct(b["supervised_share"]), n(b["duplicate_conversations"])] for name, b in _rows(stats)]
    return Table(f"turns and text length ({unit}; mean/p50/p90/max)",
                 ["source", "turns", "human turn", "gpt turn", "conversation", "superv.", "dup conv"], rows,
                 f"superv.: share of {unit} in gpt turns; dup conv: samples repeating an earlier conversation")


def answers_table(stats: dict) -> Table:
    rows = []
    for name, b in _rows(stats):
        a, f = b["answers"], b["format_prompts"]
        if a is None and f is None:
            continue
        top = ", ".join(f"{ans} {c / a['count']:.0%}" for ans, c in a["top"][:3]) if a else "-"
        policy = ", ".join(f"{k}" for k in (f or {}).get("policy", {})) or "-"
        prompted = f"{pct(f and f['first_turn']['share'])} / {pct(f and f['all_turns']['share'])}"
        rows.append([name, n(a and a["count"]), num(a and a["length"]["mean"]), pct(a and a["yes_share"]),
                     _fit(top, 30), prompted, _fit(policy, 14)])
    return Table("short answers and format prompts",
                 ["source", "answers", "len", "yes", "top answers", "prompted 1st / all", "policy"], rows,
                 "len: mean answer length; yes: share of yes among yes/no answers; prompted: questions ending "
                 "with their format instruction, first question / all questions")


def overlap_note(stats: dict) -> str:
    pairs = ", ".join(f"{p['a']}+{p['b']} {p['images']:,}" for p in stats["image_overlap"]) or "none"
    d = stats["duplicates"]
    return (f"images used by several sources: {pairs}; identical conversations: {d['identical_conversations']:,} "
            f"({d['identical_across_sources']:,} across sources)")


def stats_tables(stats: dict) -> list[Table]:
    tables = [mixture_table(stats), text_table(stats)]
    answers = answers_table(stats)
    return tables + ([answers] if answers.rows else [])


def compare_table(cmp: dict) -> Table:
    rows = []
    for name, c in [*cmp["sources"].items(), (TOTAL_LABEL, cmp["total"])]:
        ids = c.get("ids")
        rows.append([name, n(c["samples"]["a"]), n(c["samples"]["b"]), _signed(c["samples"]["diff"]),
                     pct(c["share"]["a"]), pct(c["share"]["b"]), _pp(c["share"]["diff"]),
                     n(ids and ids["added"]), n(ids and ids["removed"])])
    return Table(f"A = {cmp['a']}  vs  B = {cmp['b']}",
                 ["source", "A", "B", "B-A", "share A", "share B", "diff", "added", "removed"], rows,
                 "diff in percentage points; added/removed: sample ids in B but not A, in A but not B")


def _signed(value) -> str:
    return "-" if value is None else f"{value:+,}"


def _pp(value) -> str:
    return "-" if value is None else f"{value * 100:+.2f} pp"


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def duplicates_table(dup: dict, order: list[str]) -> Table:
    """`--duplicates N`: per source, the images that repeat an earlier one of the mix, by kind."""
    same_file, same_pixels, near = dup["same_file_other_path"], dup["same_pixels_other_file"], dup["near"]
    names = [s for s in order if s in {*same_file["per_source"], *same_pixels["per_source"], *near["per_source"]}]
    rows = [[name, n(same_file["per_source"].get(name, 0)), n(same_pixels["per_source"].get(name, 0)),
             n(near["per_source"].get(name, 0))] for name in names]
    rows.append([TOTAL_LABEL, n(same_file["images"]), n(same_pixels["images"]), n(near["images"])])
    by_distance = ", ".join(f"{d}: {k:,}" for d, k in near["by_distance"].items()) or "none"
    return Table(f"duplicate images (near: pHash within {dup['max_distance']} bits)",
                 ["source", "same file, other path", "same pixels, other file", "near duplicate"], rows,
                 f"{dup['distinct_images']:,} distinct images; same file: images stored under several paths; "
                 f"same pixels / near: images repeating an earlier one in mix order; near pairs by distance: "
                 f"{by_distance}; {near['across_sources']:,} near pairs across sources"
                 + (f"; {dup['unreadable']:,} images no longer decode" if dup["unreadable"] else ""))
