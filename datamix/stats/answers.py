"""Short-answer figures: answer lengths, the most frequent answers, the yes/no balance, and how many
questions carry their response-format instruction.

LLaVA-1.5's yes-bias came from the yes/no imbalance of its short-answer data, so the balance is shown
per source: the share of "yes" among the answers that are "yes" or "no" once normalised (lowercase,
surrounding whitespace and trailing periods removed, so "Yes." counts as "yes"). Short-answer tasks
are vqa_short and mcq (scan.SHORT_TASKS); the answers and questions tables come from scan.py.
"""

from __future__ import annotations

import polars as pl

from datamix.stats.figures import TOTAL, by_source, dist

TOP = 10  # most frequent answers kept per source


def answers(answers: pl.DataFrame, turns: pl.DataFrame, names: list[str]) -> dict[str, dict]:
    """Per source with short-answer samples: count, length, top answers, yes, no, yes_share."""
    if answers.is_empty():
        return {}
    lens = turns.lazy().filter(pl.col("short") & (pl.col("role") == 1))
    out = by_source(lens, [pl.len().alias("count"), *dist("len", "length")], names)
    yes_no = by_source(answers, [(pl.col("answer") == "yes").sum().alias("yes"),
                                 (pl.col("answer") == "no").sum().alias("no")], names)
    tops = top_answers(answers, names)
    for name, figures in out.items():
        yes, no = yes_no[name]["yes"], yes_no[name]["no"]
        figures |= {"top": tops[name], "yes": yes, "no": no,
                    "yes_share": round(yes / (yes + no), 6) if yes + no else None}
    return out


def top_answers(rows: pl.DataFrame, names: list[str]) -> dict[str, list]:
    """[[answer, n], ...] most frequent first, ties by answer text (deterministic)."""
    def top(frame: pl.DataFrame) -> pl.DataFrame:
        return (frame.group_by("src", "answer").len()
                .sort(["src", "len", "answer"], descending=[False, True, False])
                .group_by("src", maintain_order=True).head(TOP))

    rows = rows.with_columns(pl.col("src").cast(pl.Int32))
    counted = pl.concat([top(rows), top(rows.with_columns(pl.lit(-1, pl.Int32).alias("src")))])
    out: dict[str, list] = {}
    for src, answer, n in counted.iter_rows():
        out.setdefault(names[src] if src >= 0 else TOTAL, []).append([answer, n])
    return out


def format_coverage(questions: pl.DataFrame, samples: pl.DataFrame, names: list[str]) -> dict[str, dict]:
    """Share of short-answer / multiple-choice questions ending with their instruction, first and all turns.

    A question counts as prompted when it ends (trailing whitespace aside) with the FORMAT_PROMPTS entry
    of its sample's task, exactly the test `prompts.with_prompt` uses to stay idempotent.
    """
    if questions.is_empty():
        return {}
    out = by_source(questions, [
        pl.col("sample").n_unique().alias("samples"),
        pl.col("ok").filter("first").sum().alias("first_turn.prompted"), pl.col("first").sum().alias("first_turn.of"),
        pl.col("ok").sum().alias("all_turns.prompted"), pl.len().alias("all_turns.of"),
    ], names)
    policies = policy_counts(samples, names)
    for name, figures in out.items():
        for part in ("first_turn", "all_turns"):
            f = figures[part]
            f["share"] = round(f["prompted"] / f["of"], 6) if f["of"] else None
        figures["policy"] = policies.get(name, {})
    return out


def policy_counts(samples: pl.DataFrame, names: list[str]) -> dict[str, dict[str, int]]:
    """{source: {policy: samples}} over short-answer samples; 'unrecorded' where meta names none."""
    short = samples.filter(pl.col("short")).select(pl.col("src").cast(pl.Int32),
                                                    pl.col("policy").fill_null("unrecorded"))
    counted = pl.concat([short, short.with_columns(pl.lit(-1, pl.Int32).alias("src"))]).group_by(
        "src", "policy").len().sort("src", "policy")
    out: dict[str, dict[str, int]] = {}
    for src, policy, n in counted.iter_rows():
        out.setdefault(names[src] if src >= 0 else TOTAL, {})[policy] = n
    return out
