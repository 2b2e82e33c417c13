"""Vectorised short-answer VQA: per-question rows -> one multi-turn conversation per image (polars).

LLaVA-1.5 App. A.2: "For all VQA datasets, QA pairs from the same training image are merged into a
single conversation." The first human turn carries `<image>\\n`; the format prompt goes on the first
question (`first_turn`, what the released mix does) or on every question (`every_turn`).

Row checks run as polars expressions too, so a million questions never become a million Python objects;
only the rejected rows are turned into ledger entries.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import pyarrow as pa

from datamix.ledger import Ledger
from datamix.prompts import FORMAT_PROMPTS, SEPARATOR, PromptPolicy
from datamix.schema import BAD_IMAGE_PATH, BLANK_CHARS, IMAGE_TOKEN
from datamix.table import ARROW_SCHEMA

Check = tuple[pl.Expr, str | pl.Expr]  # (expression true for a bad row, reason: fixed, or computed per row)


def blank(column: str) -> pl.Expr:
    """`schema.is_blank` as an expression: null, or nothing but whitespace and zero-width characters."""
    return pl.col(column).is_null() | (pl.col(column).str.strip_chars(BLANK_CHARS) == "")


def image_path_check(column: str = "image_path") -> Check:
    """`schema.validate`'s image path rule as a row check, so that a path built from an id such as
    `../../etc/passwd` is rejected here, with the same reason, rather than written and refused at build."""
    bad = pl.col(column).is_null() | pl.col(column).str.contains(BAD_IMAGE_PATH)
    why = pl.format("bad_image_path: '{}' is not a plain relative path inside the image root", pl.col(column))
    return bad, why


def reject_rows(df: pl.DataFrame, checks: Sequence[Check], ledger: Ledger, *, id_column: str) -> pl.DataFrame:
    """Drop the rows any check flags (first matching reason wins) into the ledger; return the rest."""
    reason = pl.lit(None, dtype=pl.Utf8)
    for bad, why in reversed(checks):
        reason = pl.when(bad).then(pl.lit(why) if isinstance(why, str) else why).otherwise(reason)
    df = df.with_columns(_reason=reason)
    file_col = "file" if "file" in df.columns else None
    for row in df.filter(pl.col("_reason").is_not_null()).select(
            id_column, "_reason", *([file_col] if file_col else [])).iter_rows():
        ledger.reject(row[0], row[1], file=row[2] if file_col else None)
    return df.filter(pl.col("_reason").is_null()).drop("_reason")


def reject_missing_ids(df: pl.DataFrame, ledger: Ledger, *, id_column: str, what: str) -> pl.DataFrame:
    """Reject rows whose id is blank (they can be joined to nothing), filed under `#<position>` in their file.

    `df` holds one file's rows with their position in a `_pos` column; the caller counts these records in.
    """
    position = pl.format("#{}", "_pos")
    df = df.with_columns(_rid=pl.when(blank(id_column)).then(position).otherwise(pl.col(id_column)))
    return reject_rows(df, [(blank(id_column), f"missing_{what}_id")], ledger, id_column="_rid").drop("_rid")


def reject_duplicates(df: pl.DataFrame, ledger: Ledger, *, id_column: str, what: str) -> pl.DataFrame:
    """Keep the first record of each id (in file order); later ones are rejected, never silently merged."""
    first = pl.col(id_column).is_first_distinct()
    return reject_rows(df, [(~first, f"duplicate_{what}_id: seen earlier in the inputs")], ledger, id_column=id_column)


def _prompted(question: pl.Expr, prompt: str) -> pl.Expr:
    already = question.str.strip_chars_end().str.ends_with(prompt)  # idempotent, as prompts.with_prompt
    return pl.when(already).then(question).otherwise(question + pl.lit(SEPARATOR + prompt))


def _human_turn(policy: PromptPolicy, prompt: str) -> pl.Expr:
    first = pl.col("_first")
    question = pl.col("question")
    if policy is PromptPolicy.every_turn:
        question = _prompted(question, prompt)
    elif policy is PromptPolicy.first_turn:
        question = pl.when(first).then(_prompted(question, prompt)).otherwise(question)
    return pl.when(first).then(pl.lit(IMAGE_TOKEN + "\n") + question).otherwise(question)


def _strings(series: pl.Series) -> pa.Array:
    return series.to_arrow().cast(pa.string())


def _lists(offsets: np.ndarray, values: pa.Array) -> pa.ListArray:
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), values)


def _conversations(df: pl.DataFrame, offsets: np.ndarray) -> pa.ListArray:
    """Interleave human_i, gpt_i per row into one struct array, cut into one list per image."""
    n = df.height
    order = np.empty(2 * n, dtype=np.int64)
    order[0::2], order[1::2] = np.arange(n), np.arange(n) + n
    values = pa.concat_arrays([_strings(df["_human"]), _strings(df["answer"])]).take(order)
    roles = pa.DictionaryArray.from_arrays(np.tile(np.array([0, 1], dtype=np.int8), n), ["human", "gpt"])
    turns = pa.StructArray.from_arrays([roles.cast(pa.string()), values], names=["from", "value"])
    return _lists(offsets * 2, turns)


def _meta_json(df: pl.DataFrame, offsets: np.ndarray, starts: pl.Series, fields: dict[str, pl.Expr],
               meta_lists: dict[str, str], meta_first: dict[str, str]) -> pa.Array:
    columns = {key: _lists(offsets, df[col].to_arrow()) for key, col in meta_lists.items()}
    columns.update({key: df[col].gather(starts).to_arrow() for key, col in meta_first.items()})
    exprs = {key: pl.col(key) for key in columns} | fields
    meta = pl.from_arrow(pa.table(columns)).select(
        pl.struct(*[expr.alias(key) for key, expr in sorted(exprs.items())]).struct.json_encode())
    return _strings(meta.to_series())


def merge_per_image(df: pl.DataFrame, *, source: str, task: str, policy: PromptPolicy,
                    meta_lists: dict[str, str], meta_first: dict[str, str]) -> pa.Table:
    """Rows sorted by (image, question order) with columns image_key, image_path, question, answer -> table.

    `meta_lists` maps a meta key to a column collected per image (one entry per question);
    `meta_first` maps a meta key to a column whose first value per image is kept.

    The rows are already sorted by image, so grouping is a list of offsets: every list column is an
    Arrow ListArray over the row values (no copy per group), which keeps memory flat at scale.
    """
    prompt = FORMAT_PROMPTS.get(task)
    if prompt is None:  # tasks without a response-format prompt (grounding) are never prompted
        policy = PromptPolicy.none
    first = (pl.col("image_key") != pl.col("image_key").shift(1)).fill_null(True)
    df = df.with_columns(_first=first).with_columns(_human=_human_turn(policy, prompt))
    starts = df["_first"].arg_true()
    offsets = np.append(starts.to_numpy().astype(np.int64), df.height)
    n_images = len(starts)
    extra = {} if policy is PromptPolicy.none else {
        "format_prompt": pl.lit(prompt), "format_prompt_policy": pl.lit(policy.value)}
    keys = df["image_key"].gather(starts)
    return pa.table({
        "id": _strings((source + "/") + keys),
        "source": pa.array([source] * n_images, type=pa.string()),
        "task": pa.array([task] * n_images, type=pa.string()),
        "images": _lists(np.arange(n_images + 1), _strings(df["image_path"].gather(starts))),
        "conversations": _conversations(df, offsets),
        "meta": _meta_json(df, offsets, starts, extra, meta_lists, meta_first),
    }, schema=ARROW_SCHEMA)
