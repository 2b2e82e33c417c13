"""The numbers `datamix stats` needs, per sample and per turn, computed once when samples are written.

Stored as extra columns of the Parquet that `datamix convert` writes and of a mix's `index.parquet`,
so statistics read a few numeric columns instead of the conversation text (360 MB of it in the 665K
mix, whose word counting was most of the time). `scan` computes the very same columns from the text
of a file that lacks them (Parquet made elsewhere, or lengths in tokens), so the figures cannot differ.

- turn_roles       list<uint8>   per turn: 0 human, 1 gpt, 2 anything else (a leading system turn)
- turn_lengths     list<uint32>  per turn: words (`words.word_counts`: `str.split()`, `<image>` not counted)
- turn_prompted    list<bool>    per turn: a human turn of a short-answer task ending with its instruction
- short_answers    list<string>  the gpt turns of a short-answer sample, normalised (lowercase, no period)
- conversation_hash uint64       of the whole turn list (roles and text), to count identical conversations
- format_prompt_policy string    the policy recorded in `meta` (null where none)
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from datamix.prompts import FORMAT_PROMPTS

SHORT_TASKS = ("vqa_short", "mcq")  # tasks whose answers are a word, a phrase or a letter
ROLE_CODES = {"human": 0, "gpt": 1}  # anything else is 2
POLICY = pl.col("meta").str.extract(r'"format_prompt_policy"\s*:\s*"([^"]*)"')

FIELDS = [
    pa.field("turn_roles", pa.list_(pa.uint8())),
    pa.field("turn_lengths", pa.list_(pa.uint32())),
    pa.field("turn_prompted", pa.list_(pa.bool_())),
    pa.field("short_answers", pa.list_(pa.string())),
    pa.field("conversation_hash", pa.uint64()),
    pa.field("format_prompt_policy", pa.string()),
]
NAMES = [f.name for f in FIELDS]


def with_numbers(table: pa.Table) -> pa.Table:
    """`table` (unified schema: task, conversations, meta) with the FIELDS columns appended."""
    numbers = compute(table)
    for f in FIELDS:
        table = table.append_column(f, numbers[f.name])
    return table


def normalized_answers(text: pl.Series) -> pl.Series:
    """How answers are compared: surrounding whitespace and trailing periods removed, lowercase."""
    return text.str.strip_chars().str.strip_chars_end(".").str.strip_chars().str.to_lowercase()


def compute(table: pa.Table | pa.RecordBatch, lengths=None) -> dict[str, pa.Array]:
    """The FIELDS columns of `table`; `lengths(values) -> uint32 array` replaces the word counts (tokens)."""
    from datamix.words import word_counts

    conv = _array(table.column("conversations"))
    n = len(conv)
    counts = pc.list_value_length(conv).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    flat = pc.list_flatten(conv)
    roles, values = flat.field("from"), flat.field("value")
    row = np.repeat(np.arange(n), counts)
    role = pl.from_arrow(roles).replace_strict(ROLE_CODES, default=2, return_dtype=pl.UInt8).to_numpy()
    lens = (lengths or word_counts)(values).astype(np.uint32)
    task = pl.from_arrow(_array(table.column("task")))
    short = task.is_in(SHORT_TASKS).to_numpy()
    text = pl.from_arrow(values)
    prompted = np.zeros(len(role), bool)
    human = role == 0
    turn_task = task.gather(row) if len(row) else pl.Series([], dtype=pl.String)
    for name in SHORT_TASKS:
        sel = human & (turn_task == name).to_numpy()
        if sel.any():
            prompted[sel] = text.filter(sel).str.strip_chars_end().str.ends_with(FORMAT_PROMPTS[name]).to_numpy()
    answer = (role == 1) & short[row]
    answer_offsets = np.concatenate([[0], np.cumsum(np.bincount(row[answer], minlength=n))]).astype(np.int32)
    meta = table.column("meta") if "meta" in table.schema.names else pa.nulls(n, pa.string())
    return {
        "turn_roles": pa.ListArray.from_arrays(pa.array(offsets), pa.array(role, pa.uint8())),
        "turn_lengths": pa.ListArray.from_arrays(pa.array(offsets), pa.array(lens, pa.uint32())),
        "turn_prompted": pa.ListArray.from_arrays(pa.array(offsets), pa.array(prompted, pa.bool_())),
        "short_answers": pa.ListArray.from_arrays(pa.array(answer_offsets),
                                                  normalized_answers(text.filter(answer)).to_arrow().cast(pa.string())),
        "conversation_hash": conversation_hashes(conv),
        "format_prompt_policy": pl.from_arrow(_array(meta)).to_frame("meta").select(POLICY).to_series()
                                  .to_arrow().cast(pa.string()),
    }


def conversation_hashes(conversations) -> pa.Array:
    """uint64 per row of the whole turn list (roles and text): what "identical conversations" compares."""
    return pl.from_arrow(_array(conversations)).hash().to_arrow().cast(pa.uint64())


def _array(column) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
