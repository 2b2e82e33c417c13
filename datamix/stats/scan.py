"""One streaming pass over the Parquet row groups: the per-sample and per-turn tables every figure needs.

Only numbers and short strings are kept (text lengths, roles, answers of short-answer tasks, image
identities), never the conversation text. They are read from the `sample_numbers` columns a build or
`datamix convert` stored, or computed from the text by the same function where a file lacks them (or
for token lengths, with the tokenizer's Rust batch encoder); sources are small integer codes while
scanning and become names at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datamix import sample_numbers as numbers
from datamix.schema import IMAGE_TOKEN

BATCH = 32_768  # samples per batch


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
    """(source names, frames) over every row of the files, in BATCH-sized record batches.

    Files that carry the sample_numbers columns are read by those (no text is read); others, or token
    lengths, compute the same columns from the conversations first.
    """
    frames, offset = Frames(), 0
    for path in files:
        pf = pq.ParquetFile(path)
        names = pf.schema_arrow.names
        stored = tokenizer is None and all(name in names for name in numbers.NAMES)
        text = [] if stored else ["conversations"] + (["meta"] if "meta" in names else [])
        columns = ["source", "task", image_column] + (numbers.NAMES if stored else text)
        for batch in pf.iter_batches(batch_size=BATCH, columns=columns):
            if not stored:
                lengths = None if tokenizer is None else (lambda values: _token_lengths(values, tokenizer))
                batch = _with(batch, numbers.compute(batch, lengths))
            _scan_batch(frames, batch, image_column, offset)
            offset += batch.num_rows
    return frames.names, frames.done()


def _with(batch: pa.RecordBatch, columns: dict[str, pa.Array]) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([*batch.columns, *columns.values()], names=[*batch.schema.names, *columns])


def _token_lengths(values: pa.Array, tokenizer) -> np.ndarray:
    texts = pc.replace_substring(values, IMAGE_TOKEN, "").fill_null("").to_pylist()
    return np.fromiter((len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False)),
                       np.uint32, len(texts))


def _flat(batch: pa.RecordBatch, name: str) -> np.ndarray:
    return pc.list_flatten(batch.column(name)).to_numpy(zero_copy_only=False)


def _scan_batch(frames: Frames, batch: pa.RecordBatch, image_column: str, offset: int) -> None:
    counts = pc.list_value_length(batch.column("turn_roles")).fill_null(0).to_numpy(zero_copy_only=False)
    counts = counts.astype(np.int64)
    role, lens = _flat(batch, "turn_roles"), _flat(batch, "turn_lengths").astype(np.uint32)
    src = frames.code(batch.column("source"))
    task = pl.from_arrow(batch.column("task"))
    short = task.is_in(numbers.SHORT_TASKS).to_numpy()
    row = np.repeat(np.arange(batch.num_rows), counts)
    cum = np.concatenate([[0], np.cumsum(lens, dtype=np.int64)])
    ends = np.cumsum(counts)
    frames.turns.append(pl.DataFrame({"src": src[row], "short": short[row], "role": role, "len": lens}))
    policy = pl.from_arrow(batch.column("format_prompt_policy"))
    frames.samples.append(pl.DataFrame({
        "src": src, "short": short, "turns": np.bincount(row[role == 0], minlength=batch.num_rows).astype(np.uint32),
        "n_images": pc.list_value_length(batch.column(image_column)).fill_null(0).to_numpy().astype(np.uint32),
        "conv_len": (cum[ends] - cum[ends - counts]).astype(np.uint32),
        "hash": batch.column("conversation_hash").to_numpy(zero_copy_only=False),
    }).with_columns(pl.when(pl.col("short")).then(policy).alias("policy")))
    answers = batch.column("short_answers")
    answer_src = np.repeat(src, pc.list_value_length(answers).fill_null(0).to_numpy(zero_copy_only=False))
    frames.answers.append(pl.DataFrame({"src": answer_src, "answer": pl.from_arrow(pc.list_flatten(answers))}))
    _questions(frames, role, _flat(batch, "turn_prompted"), row, src, short, offset)
    # Images by a 64-bit hash of their identity (sha256 hex or path): joins on integers, not 64-char strings.
    images = batch.column(image_column)
    per_row = pc.list_value_length(images).fill_null(0).to_numpy(zero_copy_only=False)
    identity = pl.from_arrow(pc.list_flatten(images))
    img = pl.DataFrame({"src": np.repeat(src, per_row), "img": identity.hash()}).filter(identity.is_not_null())
    frames.images.append(img.unique())


def _questions(frames: Frames, role: np.ndarray, prompted: np.ndarray, row: np.ndarray, src: np.ndarray,
               short: np.ndarray, offset: int) -> None:
    """Human turns of short-answer / multiple-choice samples: prompted (ends with its instruction), first."""
    human = role == 0
    rows = row[human]
    first = np.concatenate([[True], rows[1:] != rows[:-1]]) if len(rows) else np.zeros(0, bool)
    keep = short[rows]
    frames.questions.append(pl.DataFrame({"src": src[rows][keep], "sample": rows[keep] + offset,
                                          "ok": prompted[human][keep], "first": first[keep]}))
