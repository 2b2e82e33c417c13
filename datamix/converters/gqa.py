"""GQA: question files (a dict keyed by question id) merged into one conversation per `imageId`.

Provenance: https://cs.stanford.edu/people/dorarad/gqa/download.html (questions1.2.zip). License: CC BY 4.0.
Files: `{train,val,testdev,test,challenge,submission}_{balanced,all}_questions.json`, and the folder
`train_all_questions/train_all_questions_{0..9}.json`; recognised by content. One raw record:

    "02930152": {"semantic": [...], "entailed": ["02930160"], "equivalent": ["02930152"],
                 "question": "Is the sky dark?", "imageId": "2354786", "isBalanced": true,
                 "groups": {"global": null, "local": "06-sky_dark"}, "answer": "yes",
                 "semanticStr": "...", "annotations": {...},
                 "types": {"detailed": "verifyAttr", "semantic": "attr", "structural": "verify"},
                 "fullAnswer": "Yes, the sky is dark."}

Ids stay strings (zero padding, `n`-prefixed image ids). The short `answer` is the target; `fullAnswer`,
`types` and `isBalanced` go into `meta`. Dropped: the semantic program, entailment links, token annotations.
Records without an answer (test, challenge, submission splits) are rejected as `no_answer`.
A question id given twice, in one file (a JSON object with a repeated key) or across files, keeps its first
record; the later ones are rejected as `duplicate_question_id`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import msgspec
import polars as pl
import pyarrow as pa

from datamix.converters.base import Converter, fitting_records
from datamix.converters.qa import (
    blank,
    image_path_check,
    merge_per_image,
    reject_duplicates,
    reject_missing_ids,
    reject_rows,
)
from datamix.errors import ConverterError
from datamix.jsonio import decode_object_pairs, decode_typed, first_byte, read_bytes
from datamix.ledger import Ledger
from datamix.progress import progress


class Types(msgspec.Struct):
    detailed: str | None = None
    semantic: str | None = None
    structural: str | None = None


class Question(msgspec.Struct):
    """Only the fields we read; msgspec skips the rest (the semantic programs) without building them.

    `decoded` counts the records decoded, repeated ids included: a JSON object with one id twice decodes to
    a dict that silently keeps only the last record, and this count is how that is noticed.
    """

    decoded: ClassVar[int] = 0
    question: str | None = None
    imageId: str | int | None = None  # noqa: N815 (the file's own key)
    answer: str | None = None
    fullAnswer: str | None = None  # noqa: N815
    isBalanced: bool | None = None  # noqa: N815
    types: Types | None = None

    def __post_init__(self) -> None:
        Question.decoded += 1


COLUMNS = {"qid": pl.Utf8, "image_id": pl.Utf8, "question": pl.Utf8, "answer": pl.Utf8, "full_answer": pl.Utf8,
           "is_balanced": pl.Boolean, "types": pl.Struct({"detailed": pl.Utf8, "semantic": pl.Utf8,
                                                         "structural": pl.Utf8}), "file": pl.Utf8}


class GQA(Converter):
    id = "gqa"
    description = "GQA questions (balanced or all, train_all shards included), merged per image"

    def convert(self, files: list[Path], ledger: Ledger) -> Iterator[pa.Table]:
        frames = [load_gqa_file(path, ledger) for path in progress(files, "gqa: parsing", unit="file")]
        rows = pl.concat(frames) if frames else pl.DataFrame(schema=COLUMNS)
        ledger.records_in += rows.height
        rows = reject_duplicates(rows, ledger, id_column="qid", what="question")
        rows = rows.with_columns(image_path=pl.lit("images/") + pl.col("image_id") + pl.lit(".jpg"))
        rows = reject_rows(rows, [
            (blank("image_id"), "missing_image_id"),
            image_path_check(),
            (pl.col("answer").is_null(), "no_answer: record has no answer (test/challenge/submission splits)"),
            (blank("question"), "empty_question"),
            (pl.col("question").str.contains("<image>", literal=True), "image_token_in_text"),
            (blank("answer"), "empty_answer"),
        ], ledger, id_column="qid")
        ledger.records_out += rows.height
        if not rows.height:
            return
        rows = rows.with_columns(image_key=pl.col("image_id")).sort(
            ["image_id", pl.col("qid").str.len_chars(), "qid"])  # numeric order of zero-padded ids
        yield merge_per_image(
            rows, source=self.id, task="vqa_short", policy=self.format_prompt,
            meta_lists={"question_ids": "qid", "full_answers": "full_answer", "is_balanced": "is_balanced",
                        "types": "types"},
            meta_first={"image_id": "image_id"},
        )


def load_gqa_file(path: Path, ledger: Ledger) -> pl.DataFrame:
    data = read_bytes(path)
    if first_byte(data) != b"{":
        raise ConverterError(f"{path}: not a GQA questions file: expected a JSON object keyed by question id")
    Question.decoded = 0
    records = decode_typed(path, data, dict[str, Question])
    if records is not None and Question.decoded == len(records):
        pairs = records.items()
    else:  # a record that does not fit, or an id given twice
        pairs = _convert_one_by_one(path, data, ledger)
    del data
    ids = [qid for qid, _ in pairs]
    values = [v for _, v in pairs]
    frame = pl.DataFrame({
        "qid": ids,
        "image_id": [None if v.imageId is None else str(v.imageId) for v in values],
        "question": [v.question for v in values],
        "answer": [v.answer for v in values],
        "full_answer": [v.fullAnswer for v in values],
        "is_balanced": [v.isBalanced for v in values],
        "types": [msgspec.structs.asdict(v.types) if v.types else None for v in values],
    }, schema={k: t for k, t in COLUMNS.items() if k != "file"})
    if frame.height and frame["question"].is_null().all() and frame["image_id"].is_null().all():
        raise ConverterError(f"{path}: not a GQA questions file: no record has 'question' or 'imageId'")
    frame = frame.with_columns(file=pl.lit(path.name), _pos=pl.int_range(pl.len()))
    before = ledger.rejected
    frame = reject_missing_ids(frame, ledger, id_column="qid", what="question").drop("_pos")
    ledger.records_in += ledger.rejected - before  # the converter counts only the rows it is given
    return frame


def _convert_one_by_one(path: Path, data: bytes, ledger: Ledger) -> list[tuple[str, Question]]:
    """Slow path: every (id, record) pair in file order, repeated ids kept (the converter rejects the later ones);
    records that do not fit the type are rejected here."""
    return fitting_records(decode_object_pairs(path, data), Question, ledger, path.name)
