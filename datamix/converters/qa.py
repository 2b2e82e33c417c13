"""Vectorised short-answer VQA: per-question rows -> one multi-turn conversation per image (polars).

LLaVA-1.5 App. A.2: "For all VQA datasets, QA pairs from the same training image are merged into a
single conversation." The first human turn carries `<image>\\n`; the format prompt goes on the first
question (`first_turn`, what the released mix does) or on every question (`every_turn`).

Row checks run as polars expressions too, so a million questions never become a million Python objects;
only the rejected rows are turned into ledger entries.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
import pyarrow as pa

from datamix.ledger import Ledger
from datamix.prompts import FORMAT_PROMPTS, SEPARATOR, PromptPolicy
from datamix.schema import IMAGE_TOKEN
from datamix.table import ARROW_SCHEMA

Check = tuple[pl.Expr, str]  # (expression true for a bad row, reason)


def blank(column: str) -> pl.Expr:
    return pl.col(column).is_null() | (pl.col(column).str.strip_chars() == "")


def reject_rows(df: pl.DataFrame, checks: Sequence[Check], ledger: Ledger, *, id_column: str) -> pl.DataFrame:
    """Drop the rows any check flags (first matching reason wins) into the ledger; return the rest."""
    reason = pl.lit(None, dtype=pl.Utf8)
    for bad, why in reversed(checks):
        reason = pl.when(bad).then(pl.lit(why)).otherwise(reason)
    df = df.with_columns(_reason=reason)
    file_col = "file" if "file" in df.columns else None
    for row in df.filter(pl.col("_reason").is_not_null()).select(
            id_column, "_reason", *([file_col] if file_col else [])).iter_rows():
        ledger.reject(row[0], row[1], file=row[2] if file_col else None)
    return df.filter(pl.col("_reason").is_null()).drop("_reason")


def reject_duplicates(df: pl.DataFrame, ledger: Ledger, *, id_column: str, what: str) -> pl.DataFrame:
    """Keep the first record of each id (in file order); later ones are rejected, never silently merged."""
    first = pl.col(id_column).is_first_distinct()
    return reject_rows(df, [(~first, f"duplicate_{what}_id: seen earlier in the inputs")], ledger, id_column=id_column)


def _prompted(question: pl.Expr, prompt: str) -> pl.Expr:
    already = question.str.strip_chars_end().str.ends_with(prompt)  # idempotent, as prompts.with_prompt
    return pl.when(already).then(question).otherwise(question + pl.lit(SEPARATOR + prompt))


def _human_turn(policy: PromptPolicy, prompt: str) -> pl.Expr:
    first = pl.int_range(pl.len()).over("image_key") == 0
    question = pl.col("question")
    if policy is PromptPolicy.every_turn:
        question = _prompted(question, prompt)
    elif policy is PromptPolicy.first_turn:
        question = pl.when(first).then(_prompted(question, prompt)).otherwise(question)
    return pl.when(first).then(pl.lit(IMAGE_TOKEN + "\n") + question).otherwise(question)


def merge_per_image(df: pl.DataFrame, *, source: str, task: str, policy: PromptPolicy,
                    meta_lists: dict[str, str], meta_first: dict[str, str]) -> pa.Table:
    """Rows sorted by (image, question order) with columns image_key, image_path, question, answer -> table.

    `meta_lists` maps a meta key to a column collected per image (one entry per question);
    `meta_first` maps a meta key to a column whose first value per image is kept.
    """
    prompt = FORMAT_PROMPTS[task]
    turn = pl.struct(pl.lit("human").alias("from"), _human_turn(policy, prompt).alias("value"))
    answer = pl.struct(pl.lit("gpt").alias("from"), pl.col("answer").alias("value"))
    rows = df.with_columns(_turns=pl.concat_list(turn, answer))
    grouped = rows.group_by("image_key", maintain_order=True).agg(
        pl.col("image_path").first(),
        pl.col("_turns").list.explode(keep_nulls=False, empty_as_null=False).alias("conversations"),
        *[pl.col(col).alias(key) for key, col in meta_lists.items()],
        *[pl.col(col).first().alias(key) for key, col in meta_first.items()],
    )
    meta_fields = {key: pl.col(key) for key in (*meta_lists, *meta_first)}
    if policy is not PromptPolicy.none:
        meta_fields["format_prompt"] = pl.lit(prompt)
        meta_fields["format_prompt_policy"] = pl.lit(policy.value)
    meta = pl.struct(*[expr.alias(key) for key, expr in sorted(meta_fields.items())]).struct.json_encode()
    out = grouped.select(
        id=pl.lit(source + "/") + pl.col("image_key"),
        source=pl.lit(source),
        task=pl.lit(task),
        images=pl.concat_list(pl.col("image_path")),
        conversations=pl.col("conversations"),
        meta=meta,
    )
    return out.to_arrow().cast(ARROW_SCHEMA)
