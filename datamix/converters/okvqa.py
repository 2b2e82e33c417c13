"""OK-VQA: outside-knowledge VQA in the VQA file format, merged into one conversation per COCO image.

Provenance: https://okvqa.allenai.org/download.html (Marino et al., CVPR 2019; v1.1 answers lemmatised).
License: annotations CC BY 4.0, images under the COCO terms of use.
Files: `OpenEnded_mscoco_{train,val}2014_questions.json` and `mscoco_{train,val}2014_annotations.json`,
recognised by content (a `questions` or an `annotations` list)
as for VQAv2, whose schema they share. One raw pair:

    questions[i]:   {"image_id": 51606, "question": "What is the hairstyle of the blond called?",
                     "question_id": 516065}
    annotations[i]: {"image_id": 51606, "answer_type": "other", "question_type": "four", "question_id": 516065,
                     "answers": [{"answer_id": 1, "raw_answer": "pony tails", "answer_confidence": "yes",
                                  "answer": "pony tail"}, ...], "confidence": 3}
    annotations file top level: {..., "question_types": {"one": "Vehicles and Transportation", ...}}

How it differs from VQAv2 (and what that means here):
- `question_id = image_id * 10 + k`; ids become strings, questions are ordered by `question_id` per image.
- There is no `multiple_choice_answer`: the answer is the most frequent processed `answer` (`answer=most_common`,
  ties to the first given, as vqav2's `most_common`) or the most frequent `raw_answer` (`answer=most_common_raw`).
- `question_type` is a knowledge-category code ("one".."ten", "other"); `meta.knowledge_categories` holds the
  names from the file's `question_types` table. Every `answer_type` is "other".
- The answer count varies (5 answers each given twice = 10 in the release); any count is accepted, none is
  `empty_answer`.
LLaVA-1.5 reads OK-VQA images from `coco/train2017/` (8,998 conversations, one per train image), so the default
`coco_naming=2017` gives `train2017/%012d.jpg`; `2014` gives `<split>/COCO_<split>_%012d.jpg`.

`meta`: question ids, processed and raw answers, knowledge-category codes and names, image id, answer policy.
Rejected, with the reason in the ledger: a question without annotation (`no_answer`), an annotation without a
question (`no_question`), duplicate question ids, a record that is not an object or has the wrong types
(`malformed_record`), a missing image id, an empty question or answer, `<image>` in the question text.
Dropped: `answer_confidence`, `answer_id`, the annotation's `confidence`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import polars as pl
import pyarrow as pa

from datamix.converters.base import Converter, fitting_records, gc_paused
from datamix.converters.options import option
from datamix.converters.qa import merge_per_image, reject_missing_ids, reject_rows
from datamix.converters.vqav2 import VQAv2, coco_naming_option, coco_path, join_questions, most_common_answer
from datamix.errors import ConverterError
from datamix.jsonio import decode_any, decode_typed, first_byte, read_bytes
from datamix.ledger import Ledger
from datamix.progress import progress

Id = int | str | None
STRINGS = pa.list_(pa.string())


class Question(msgspec.Struct):
    image_id: Id = None
    question: str | None = None
    question_id: Id = None


class Answer(msgspec.Struct):
    answer: str | None = None
    raw_answer: str | None = None


class Annotation(msgspec.Struct):
    image_id: Id = None
    question_id: Id = None
    question_type: str | None = None
    answer_type: str | None = None
    answers: list[Answer] | None = None


class VQAFile(msgspec.Struct):
    """Either file: the record lists are decoded one record at a time only when the typed decode fails."""

    data_subtype: str | None = None
    questions: list[Question] | None = None
    annotations: list[Annotation] | None = None
    question_types: dict[str, str] | None = None


Q_SCHEMA = {"qid": pl.Utf8, "image_id": pl.Int64, "question": pl.Utf8, "subtype": pl.Utf8, "file": pl.Utf8}
A_SCHEMA = {"qid": pl.Utf8, "a_image_id": pl.Int64, "answers": pl.List(pl.Utf8), "raw_answers": pl.List(pl.Utf8),
            "question_type": pl.Utf8, "category": pl.Utf8, "file": pl.Utf8}


@dataclass(frozen=True)
class OKVQAOptions:
    answer: str = option("most_common", "most_common = the most frequent processed `answer`; most_common_raw = "
                         "the most frequent `raw_answer` as typed (ties to the first given)",
                         choices=("most_common", "most_common_raw"))
    coco_naming: str = coco_naming_option()


class OKVQA(Converter):
    id = "okvqa"
    description = "OK-VQA questions + annotations (knowledge categories, raw answers), merged per image"
    Options = OKVQAOptions

    def convert(self, files: list[Path], ledger: Ledger) -> Iterator[pa.Table]:
        questions, annotations = [], []
        with gc_paused():  # many small objects: see base.gc_paused
            for path in progress(files, "okvqa: parsing", unit="file"):
                kind, frame = load_okvqa_file(path, ledger)
                (questions if kind == "questions" else annotations).append(frame)
        if not questions:
            raise ConverterError("okvqa: no questions file among the inputs (OpenEnded_mscoco_*_questions.json)")
        rows = join_questions(questions, annotations, A_SCHEMA, ledger)
        column = "answers" if self.options.answer == "most_common" else "raw_answers"
        rows = rows.with_columns(answer=pl.col(column).map_batches(most_common_answer, return_dtype=pl.Utf8),
                                 image_path=coco_path(pl.col("image_id"), pl.col("subtype"), self.options.coco_naming))
        rows = reject_rows(rows, VQAv2._checks(), ledger, id_column="qid")  # the same checks as VQAv2
        ledger.records_out += rows.height
        if rows.height:
            yield self._to_table(rows)

    def _to_table(self, rows: pl.DataFrame) -> pa.Table:
        rows = rows.with_columns(
            image_key=pl.col("image_id").cast(pl.Utf8),
            answer_policy=pl.lit(self.options.answer),
            _order=pl.col("qid").cast(pl.Int64, strict=False),
        ).sort(["image_id", "_order", "qid"])
        return merge_per_image(
            rows, source=self.id, task="vqa_short", policy=self.format_prompt,
            meta_lists={"question_ids": "qid", "answers": "answers", "raw_answers": "raw_answers",
                        "question_types": "question_type", "knowledge_categories": "category"},
            meta_first={"image_id": "image_key", "answer_policy": "answer_policy"},
        )


def load_okvqa_file(path: Path, ledger: Ledger) -> tuple[str, pl.DataFrame]:
    """One official file -> ("questions" | "annotations", its rows); a bad record is rejected, not fatal,
    and a record without a question id is filed under its position (as vqav2 does)."""
    kind, frame = _read_okvqa_file(path, ledger)
    before = ledger.rejected
    frame = reject_missing_ids(frame.with_columns(_pos=pl.int_range(pl.len())), ledger, id_column="qid",
                               what="question").drop("_pos")
    ledger.records_in += ledger.rejected - before  # the converter counts only the rows it is given
    return kind, frame


def _read_okvqa_file(path: Path, ledger: Ledger) -> tuple[str, pl.DataFrame]:
    data = read_bytes(path)
    if first_byte(data) != b"{":
        raise ConverterError(f"{path}: not an OK-VQA file: expected a JSON object with a 'questions' or "
                             "'annotations' list")
    parsed = decode_typed(path, data, VQAFile)
    if parsed is None:
        parsed = _decode_one_by_one(path, data, ledger)
    del data
    subtype = parsed.data_subtype or "train2014"
    if parsed.questions is not None:
        return "questions", pl.DataFrame({
            "qid": [_text(q.question_id) for q in parsed.questions],
            "image_id": [_int(q.image_id) for q in parsed.questions],
            "question": [q.question for q in parsed.questions],
        }, schema={k: Q_SCHEMA[k] for k in ("qid", "image_id", "question")}).with_columns(
            subtype=pl.lit(subtype), file=pl.lit(path.name))
    if parsed.annotations is not None:
        names = parsed.question_types or {}
        records = parsed.annotations
        return "annotations", pl.DataFrame({
            "qid": [_text(a.question_id) for a in records],
            "a_image_id": [_int(a.image_id) for a in records],
            # list columns through pyarrow, which builds them in C (polars goes element by element)
            "answers": pa.array([[x.answer for x in a.answers] if a.answers is not None else None
                                 for a in records], STRINGS),
            "raw_answers": pa.array([[x.raw_answer for x in a.answers] if a.answers is not None else None
                                     for a in records], STRINGS),
            "question_type": [a.question_type for a in records],
            "category": [names.get(a.question_type or "") for a in records],
        }, schema={k: v for k, v in A_SCHEMA.items() if k != "file"}).with_columns(file=pl.lit(path.name))
    raise ConverterError(f"{path}: not an OK-VQA file: expected a top-level 'questions' or 'annotations' list")


def _decode_one_by_one(path: Path, data: bytes, ledger: Ledger) -> VQAFile:
    """Slow path when some record does not fit its type: keep the good records, reject the others."""
    raw = decode_any(path, data)
    if not isinstance(raw, dict):
        raise ConverterError(f"{path}: not an OK-VQA file: expected a JSON object")
    kind = next((k for k in ("questions", "annotations") if isinstance(raw.get(k), list)), None)
    if kind is None:
        raise ConverterError(f"{path}: not an OK-VQA file: expected a top-level 'questions' or 'annotations' list")
    record_type = Question if kind == "questions" else Annotation
    entries = ((record.get("question_id") if isinstance(record, dict) else None, record) for record in raw[kind])
    good = [value for _, value in fitting_records(entries, record_type, ledger, path.name)]
    types = raw.get("question_types")
    names = {k: v for k, v in types.items() if isinstance(v, str)} if isinstance(types, dict) else None
    subtype = raw.get("data_subtype")
    return VQAFile(data_subtype=subtype if isinstance(subtype, str) else None, **{kind: good}, question_types=names)


def _text(value: Id) -> str | None:
    return None if value is None else str(value)


def _int(value: Id) -> int | None:
    """COCO image ids are ints; a numeric string is accepted, anything else is a missing id (rejected)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else None
