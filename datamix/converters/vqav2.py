"""VQAv2: questions + annotations files joined on `question_id`, merged into one conversation per image.

Provenance: https://visualqa.org/download.html (GT-Vision-Lab/VQA). License: annotations CC BY 4.0,
images under the COCO terms of use. Files: `v2_OpenEnded_mscoco_{train2014,val2014,test2015}_questions.json`
and `v2_mscoco_{train2014,val2014}_annotations.json`, recognised by content (a `questions` or an
`annotations` list), not by name. One raw pair:

    questions[i]:   {"image_id": 458752, "question": "What is this photo taken looking through?", "question_id": 458752000}
    annotations[i]: {"question_type": "what is this", "multiple_choice_answer": "net",
                     "answers": [{"answer": "net", "answer_confidence": "maybe", "answer_id": 1}, ...x10],
                     "image_id": 458752, "answer_type": "other", "question_id": 458752000}

The answer is `multiple_choice_answer` (the consensus) or, with `answer="most_common"`, the most frequent
of the 10 annotator answers. All 10 answers, `answer_type` and `question_type` go into `meta`. A question
without annotations (the test split) is rejected as `no_answer`. Dropped: `answer_confidence`, `answer_id`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa

from datamix.converters.base import Converter
from datamix.converters.options import option
from datamix.converters.qa import (
    blank,
    image_path_check,
    merge_per_image,
    reject_duplicates,
    reject_missing_ids,
    reject_rows,
)
from datamix.errors import ConverterError
from datamix.jsonio import decode_any, read_object_table
from datamix.ledger import Ledger
from datamix.progress import progress

Q_COLUMNS = {"qid": pl.Utf8, "image_id": pl.Int64, "question": pl.Utf8, "subtype": pl.Utf8, "file": pl.Utf8}
_ID = pa.int64()
# What the fast path reads of either file; everything else is skipped by the parser.
FILE_SCHEMA = pa.schema([
    ("data_subtype", pa.string()),
    ("questions", pa.list_(pa.struct([("question_id", _ID), ("image_id", _ID), ("question", pa.string())]))),
    ("annotations", pa.list_(pa.struct([
        ("question_id", _ID), ("image_id", _ID), ("multiple_choice_answer", pa.string()),
        ("answers", pa.list_(pa.struct([("answer", pa.string())]))),
        ("answer_type", pa.string()), ("question_type", pa.string())]))),
])
A_COLUMNS = {"qid": pl.Utf8, "a_image_id": pl.Int64, "consensus": pl.Utf8, "answers": pl.List(pl.Utf8),
             "answer_type": pl.Utf8, "question_type": pl.Utf8, "file": pl.Utf8}


def join_questions(questions: list[pl.DataFrame], annotations: list[pl.DataFrame], annotation_schema: dict,
                   ledger: Ledger) -> pl.DataFrame:
    """Question rows joined with their annotation (`_annotated` marks the ones that have one), for the
    VQA-format files (VQAv2, OK-VQA). Repeated ids and annotations without a question go to the ledger."""
    q = pl.concat(questions)
    a = pl.concat(annotations) if annotations else pl.DataFrame(schema=annotation_schema)
    ledger.records_in += q.height
    q = reject_duplicates(q, ledger, id_column="qid", what="question")
    before = ledger.rejected
    a = reject_duplicates(a, ledger, id_column="qid", what="annotation")
    reject_rows(a.join(q, on="qid", how="anti"), [(pl.lit(True), "no_question: annotation without a question")],
                ledger, id_column="qid")
    ledger.records_in += ledger.rejected - before  # annotations that pair with no question are records too
    return q.join(a.drop("file").with_columns(_annotated=pl.lit(True)), on="qid", how="left")


def coco_naming_option():
    """The option VQA-format converters share: LLaVA-1.5's coco/train2017 image layout, or the 2014 one."""
    return option("2017", "image paths train2017/%012d.jpg (2017, LLaVA-1.5's layout) or "
                  "<split>/COCO_<split>_%012d.jpg (2014)", choices=("2017", "2014"))


@dataclass(frozen=True)
class VQAOptions:
    answer: str = option("consensus", "consensus = the file's multiple_choice_answer; most_common = the most "
                         "frequent of the annotator answers (ties to the first given)",
                         choices=("consensus", "most_common"))
    coco_naming: str = coco_naming_option()


class VQAv2(Converter):
    id = "vqav2"
    description = "VQAv2 questions + annotations (also abstract scenes), merged per image"
    Options = VQAOptions

    def convert(self, files: list[Path], ledger: Ledger) -> Iterator[pa.Table]:
        questions, annotations = [], []
        for path in progress(files, "vqav2: parsing", unit="file"):
            kind, frame = load_vqa_file(path, ledger)
            (questions if kind == "questions" else annotations).append(frame)
        if not questions:
            raise ConverterError("vqav2: no questions file among the inputs (v2_OpenEnded_mscoco_*_questions.json)")
        rows = join_questions(questions, annotations, A_COLUMNS, ledger)
        rows = rows.with_columns(answer=self._answer_expr(),
                                 image_path=coco_path(pl.col("image_id"), pl.col("subtype"), self.options.coco_naming))
        rows = reject_rows(rows, self._checks(), ledger, id_column="qid")
        ledger.records_out += rows.height
        if rows.height:
            yield self._to_table(rows)

    def _answer_expr(self) -> pl.Expr:
        if self.options.answer == "consensus":
            return pl.col("consensus")
        if self.options.answer == "most_common":
            return pl.col("answers").map_batches(most_common_answer, return_dtype=pl.Utf8)
        raise ConverterError(f"vqav2: unknown answer policy {self.options.answer!r}; use consensus or most_common")

    @staticmethod
    def _checks() -> list[tuple[pl.Expr, str]]:
        return [
            (pl.col("_annotated").is_null(), "no_answer: question has no annotation (test splits have none)"),
            (pl.col("image_id").is_null(), "bad_image_id: missing or not an integer"),
            image_path_check(),  # the 2014 naming takes the folder from the file's data_subtype
            (pl.col("a_image_id").is_not_null() & (pl.col("a_image_id") != pl.col("image_id")),
             "image_id_mismatch: question and annotation name different images"),
            (blank("question"), "empty_question"),
            (pl.col("question").str.contains("<image>", literal=True), "image_token_in_text"),
            (blank("answer"), "empty_answer"),
        ]

    def _to_table(self, rows: pl.DataFrame) -> pa.Table:
        rows = rows.with_columns(
            image_key=pl.col("image_id").cast(pl.Utf8),
            _order=pl.col("qid").cast(pl.Int64, strict=False),
        ).sort(["image_id", "_order", "qid"])
        policy_name = "multiple_choice_answer" if self.options.answer == "consensus" else "most_common"
        return merge_per_image(
            rows.with_columns(answer_policy=pl.lit(policy_name)),
            source=self.id, task="vqa_short", policy=self.format_prompt,
            meta_lists={"question_ids": "qid", "answers": "answers", "answer_types": "answer_type",
                        "question_types": "question_type"},
            meta_first={"image_id": "image_key", "answer_policy": "answer_policy"},  # ids stay strings
        )


def coco_path(image_id: pl.Expr, subtype: pl.Expr, naming: str) -> pl.Expr:
    """COCO file names: 2017 `train2017/%012d.jpg` (LLaVA-1.5's layout) or 2014 `<split>/COCO_<split>_%012d.jpg`."""
    padded = image_id.cast(pl.Utf8).str.zfill(12)
    if naming == "2017":
        # 2017 re-partitions train2014+val2014 with the same ids; LLaVA-1.5 reads every VQAv2 image from train2017.
        return pl.lit("train2017/") + padded + pl.lit(".jpg")
    if naming == "2014":
        return subtype + pl.lit("/COCO_") + subtype + pl.lit("_") + padded + pl.lit(".jpg")
    raise ConverterError(f"vqav2: unknown COCO naming {naming!r}; use 2017 or 2014")


def most_common_answer(answers: pl.Series) -> pl.Series:
    """The most frequent answer per question; a tie goes to the answer given first (answer_id order)."""
    frame = pl.DataFrame({"answers": answers}).with_row_index("row")
    flat = frame.explode("answers").with_columns(pos=pl.int_range(pl.len()).over("row"))
    best = (flat.group_by("row", "answers").agg(n=pl.len(), first=pl.col("pos").min())
            .sort(["row", "n", "first"], descending=[False, True, False])
            .group_by("row", maintain_order=True).first())
    return frame.join(best, on="row", how="left").sort("row")["answers_right"].alias("answer")


def subtype_from_name(name: str) -> str | None:
    """The split an official file name carries (`..._mscoco_val2014_questions.json` -> `val2014`), for a file
    without `data_subtype`; None when the name tells none."""
    match = re.search(r"(train|val|test-dev|test)(2014|2015|2017)", name, re.ASCII)
    return match.group(0) if match else None


def load_vqa_file(path: Path, ledger: Ledger) -> tuple[str, pl.DataFrame]:
    """Read one official file into normalised columns; the fast path keeps answers columnar in Arrow."""
    table = read_object_table(path, FILE_SCHEMA)
    if table is not None and table.num_rows == 1:
        kind = _kind(path, [name for name in ("questions", "annotations") if table.column(name).null_count == 0])
        records = _flatten_records(table.column(kind))
        records = records.with_columns(_pos=pl.int_range(pl.len()))
        subtype = table.column("data_subtype")[0].as_py()
        del table
        pa.default_memory_pool().release_unused()  # hand the parse buffer back before the join
    else:
        obj = decode_any(path)
        if not isinstance(obj, dict):
            raise ConverterError(f"{path}: expected a VQA JSON object with a 'questions' or 'annotations' list")
        kind = _kind(path, list(obj))
        records = _records_frame(obj[kind], ledger, path)
        subtype = _text(obj.get("data_subtype"))
    frame = _questions(records) if kind == "questions" else _annotations(records)
    subtype = subtype or subtype_from_name(path.name) or "train2014"
    frame = frame.with_columns(subtype=pl.lit(subtype, dtype=pl.Utf8), file=pl.lit(path.name))
    before = ledger.rejected
    frame = reject_missing_ids(frame, ledger, id_column="qid", what="question")
    ledger.records_in += ledger.rejected - before  # the converter counts only the rows it is given
    return kind, frame.select(list(Q_COLUMNS if kind == "questions" else A_COLUMNS))


def _flatten_records(column: pa.ChunkedArray) -> pl.DataFrame:
    """list<struct> of one row -> one column per field, by Arrow views (no copy); answers -> list<string>."""
    structs = column.combine_chunks().flatten()
    fields = {structs.type.field(i).name: structs.field(i) for i in range(structs.type.num_fields)}
    if "answers" in fields:
        answers = fields["answers"]
        fields["answers"] = pa.ListArray.from_arrays(answers.offsets, answers.flatten().field("answer"),
                                                     mask=answers.is_null())
    return pl.from_arrow(pa.table(fields))


def _kind(path: Path, keys: list[str]) -> str:
    for kind in ("questions", "annotations"):
        if kind in keys:
            return kind
    raise ConverterError(f"{path}: not a VQAv2 file: expected a top-level 'questions' or 'annotations' list")


def _records_frame(records: object, ledger: Ledger, path: Path) -> pl.DataFrame:
    """Slow path for files Arrow cannot type: coerce each record, reject the ones that are not objects."""
    if not isinstance(records, list):
        raise ConverterError(f"{path}: the 'questions'/'annotations' value must be a list")
    rows = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            ledger.records_in += 1
            ledger.reject(f"#{i}", f"malformed_record: expected an object, got {type(rec).__name__}", file=path.name)
            continue
        rows.append({k: _text(v) if k != "answers" else _answers(v) for k, v in rec.items()} | {"_pos": i})
    if not rows:  # a frame with no column would turn the literal columns of `_questions` into one null row
        return pl.DataFrame(schema={"_pos": pl.Int64})
    frame = pl.DataFrame(rows, schema_overrides={"answers": pl.List(pl.Struct({"answer": pl.Utf8}))}, strict=False,
                         infer_schema_length=None)
    if "answers" in frame.columns:
        frame = frame.with_columns(pl.col("answers").list.eval(pl.element().struct.field("answer")))
    return frame


def _text(value: object) -> str | None:
    return None if value is None or isinstance(value, (dict, list)) else str(value)


def _answers(value: object) -> list[dict] | None:
    if not isinstance(value, list):
        return None
    return [{"answer": _text(a.get("answer"))} for a in value if isinstance(a, dict)]


def _column(records: pl.DataFrame, name: str, dtype: pl.DataType) -> pl.Expr:
    if name not in records.columns:
        return pl.lit(None, dtype=dtype)
    return pl.col(name).cast(dtype, strict=False)


def _questions(records: pl.DataFrame) -> pl.DataFrame:
    return records.select("_pos", qid=_column(records, "question_id", pl.Utf8),
                          image_id=_column(records, "image_id", pl.Int64),
                          question=_column(records, "question", pl.Utf8))


def _annotations(records: pl.DataFrame) -> pl.DataFrame:
    answers = (pl.col("answers").cast(pl.List(pl.Utf8), strict=False)
               if "answers" in records.columns else pl.lit(None, dtype=pl.List(pl.Utf8)))
    return records.select("_pos", qid=_column(records, "question_id", pl.Utf8),
                          a_image_id=_column(records, "image_id", pl.Int64),
                          consensus=_column(records, "multiple_choice_answer", pl.Utf8),
                          answers=answers,
                          answer_type=_column(records, "answer_type", pl.Utf8),
                          question_type=_column(records, "question_type", pl.Utf8))
