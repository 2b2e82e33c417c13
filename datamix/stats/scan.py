"""One streaming pass over the Parquet row groups: the per-sample and per-turn tables every figure needs.

Only numbers and short strings are kept (text lengths, roles, answers of short-answer tasks, image
identities), never the conversation text, so memory is bounded by one batch of text plus these tables.
Text lengths come from `words.word_counts` on the Arrow buffers (or the tokenizer's Rust batch
encoder); sources are small integer codes while scanning and become names at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datamix.prompts import FORMAT_PROMPTS
from datamix.schema import IMAGE_TOKEN
from datamix.stats.words import word_counts

BATCH = 32_768  # samples per batch
SHORT_TASKS = ("vqa_short", "mcq")  # tasks whose answers are a word, a phrase or a letter
ROLE_CODES = {"human": 0, "gpt": 1}  # anything else (a leading system turn) is 2
POLICY = pl.col("meta").str.extract(r'"format_prompt_policy"\s*:\s*"([^"]*)"')


@dataclass
class Frames:
    names: list[str] = field(default_factory=list)  # source code -> name
    samples: list[pl.DataFrame] = field(default_factory=list)  # src, short, turns, n_images, policy, hash, conv_len
    turns: list[pl.DataFrame] = field(default_factory=list)  # src, short, role, len
    answers: list[pl.DataFrame] = field(default_factory=list)  # src, answer
    questions: list[pl.DataFrame] = field(default_factory=list)  # src, sample, ok, first
    images: list[pl.DataFrame] = field(default_factory=list)  # src, img

    def code(self, sources: pa.Array) -> np.ndarray:
        for name in pc.unique(sources).to_pylist():
            if name not in self.names:
                self.names.append(name)
        return pc.index_in(sources, value_set=pa.array(self.names)).to_numpy(zero_copy_only=False).astype(np.int32)

    def done(self) -> dict[str, pl.DataFrame]:
        def cat(parts):
            return pl.concat(parts) if parts else None
        return {k: cat(getattr(self, k)) for k in ("samples", "turns", "answers", "questions", "images")}


def scan(files: list, image_column: str, tokenizer=None) -> tuple[list[str], dict[str, pl.DataFrame]]:
    """(source names, frames) over every row of the files, in BATCH-sized record batches."""
    frames, offset = Frames(), 0
    for path in files:
        pf = pq.ParquetFile(path)
        columns = ["source", "task", "conversations", image_column] + (["meta"] if "meta" in pf.schema_arrow.names else [])
        for batch in pf.iter_batches(batch_size=BATCH, columns=columns):
            _scan_batch(frames, batch, image_column, tokenizer, offset)
            offset += batch.num_rows
    return frames.names, frames.done()


def _lengths(values: pa.Array, tokenizer) -> np.ndarray:
    if tokenizer is None:
        return word_counts(values)
    texts = pc.replace_substring(values, IMAGE_TOKEN, "").fill_null("").to_pylist()
    return np.fromiter((len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False)),
                       np.uint32, len(texts))


def _scan_batch(frames: Frames, batch: pa.RecordBatch, image_column: str, tokenizer, offset: int) -> None:
    conv = batch.column("conversations")
    counts = pc.list_value_length(conv).fill_null(0).to_numpy().astype(np.int64)
    roles, values = pc.list_flatten(conv).flatten()
    lens = _lengths(values, tokenizer)
    src = frames.code(batch.column("source"))
    task = pl.from_arrow(batch.column("task"))
    short = task.is_in(SHORT_TASKS).to_numpy()
    row = np.repeat(np.arange(batch.num_rows), counts)
    role = pl.from_arrow(roles).replace_strict(ROLE_CODES, default=2, return_dtype=pl.UInt8).to_numpy()
    cum = np.concatenate([[0], np.cumsum(lens, dtype=np.int64)])
    ends = np.cumsum(counts)
    frames.turns.append(pl.DataFrame({"src": src[row], "short": short[row], "role": role, "len": lens}))
    meta = pl.from_arrow(batch.column("meta")) if "meta" in batch.schema.names else pl.Series([None] * batch.num_rows, dtype=pl.String)
    frames.samples.append(pl.DataFrame({
        "src": src, "short": short, "turns": np.bincount(row[role == 0], minlength=batch.num_rows).astype(np.uint32),
        "n_images": pc.list_value_length(batch.column(image_column)).fill_null(0).to_numpy().astype(np.uint32),
        "conv_len": (cum[ends] - cum[ends - counts]).astype(np.uint32),
        "hash": pl.from_arrow(conv).hash().to_numpy(),
    }).with_columns(pl.when(pl.col("short")).then(meta.to_frame().select(POLICY).to_series()).alias("policy")))
    text = pl.from_arrow(values)
    gpt_short = (role == 1) & short[row]
    answers = text.filter(gpt_short).str.strip_chars().str.strip_chars_end(".").str.strip_chars().str.to_lowercase()
    frames.answers.append(pl.DataFrame({"src": src[row][gpt_short], "answer": answers}))
    _questions(frames, text, role, row, src, task, offset)
    img = pl.DataFrame({"src": src, "img": pl.from_arrow(batch.column(image_column))}).explode("img")
    frames.images.append(img.drop_nulls("img").unique())


def _questions(frames: Frames, text: pl.Series, role: np.ndarray, row: np.ndarray, src: np.ndarray,
               task: pl.Series, offset: int) -> None:
    """Human turns of short-answer / multiple-choice samples: prompted (ends with its instruction), first."""
    human = role == 0
    rows = row[human]
    first = np.concatenate([[True], rows[1:] != rows[:-1]]) if len(rows) else np.zeros(0, bool)
    tasks = task.gather(rows)
    ok = np.zeros(len(rows), bool)
    for name in SHORT_TASKS:
        sel = (tasks == name).to_numpy()
        if sel.any():
            q = text.filter(human).filter(sel).str.strip_chars_end()
            ok[sel] = q.str.ends_with(FORMAT_PROMPTS[name]).to_numpy()
    keep = tasks.is_in(SHORT_TASKS).to_numpy()
    frames.questions.append(pl.DataFrame({"src": src[rows][keep], "sample": rows[keep] + offset,
                                          "ok": ok[keep], "first": first[keep]}))
