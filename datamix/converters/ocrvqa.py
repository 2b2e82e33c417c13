"""OCR-VQA: questions about book covers, all questions of one book merged into one conversation.

Provenance: https://ocr-vqa.github.io (Mishra et al., ICDAR 2019), `dataset.json` plus `loadDataset.py`, which
downloads each cover from its Amazon URL. License: for research use; the covers belong to their publishers.
The file is one JSON object keyed by the Amazon ASIN/ISBN (recognised by content); one raw entry:

    "140031996X": {"imageURL": "http://ecx.images-amazon.com/images/I/51Jm9DoU0nL.jpg",
                   "questions": ["Who wrote this book?", "What is the title of this book?", "What is the genre of
                                 this book?", "Is this a religious book?", "Is this a comedy book?"],
                   "answers": ["Mark Twain", "The Adventures of Tom Sawyer", "Literature & Fiction", "No", "No"],
                   "title": "The Adventures of Tom Sawyer", "authorName": "Mark Twain",
                   "genre": "Literature & Fiction", "split": 1}

- Keys stay strings, never cast: ISBN-10s end in "X" (`140031996X`) and keep leading zeros (`0316015849`).
- One record is one question; the questions of a book are one conversation (LLaVA-1.5 App. A.2: "QA pairs from
  the same training image are merged into a single conversation"), in the file's order, with the short-answer
  prompt. LLaVA-1.5 samples 80K of these conversations out of the 207,572 downloaded covers: take them with the
  recipe's `count`.
- `split` is 1 = train, 2 = val, 3 = test; it is kept in `meta` and `split=train|val|test` keeps one of them
  (`all`, the default, keeps every book, as LLaVA's 207,572 covers are all three splits). Questions of the other
  splits are filed in the ledger as `other_split`, so a recipe selecting one split needs a reject budget for them.
- Images are `images/<key>.jpg` under the source's image root (LLaVA: `ocr_vqa/images/<key>.jpg`) whatever the
  extension of `imageURL`: LLaVA's download script saves every cover as `.jpg`, including GIFs and PNGs, so the
  extension says nothing about the content (images are opened by content at build time). The URL and its
  original extension are kept in `meta`.
`meta`: book id, title, author, genre, split (1/2/3 and its name), image URL and its extension.
Rejected, with the reason in the ledger: a book with no questions (`no_questions`, one record), a book whose
question and answer counts differ (`qa_length_mismatch`, each question), an entry that is not an object or has
the wrong types (`malformed_record`), a key that cannot name a file (`bad_key`), a book seen in an earlier file
(`duplicate_book`), an empty question or answer, the placeholder answer "*" (an unknown author), `<image>` in
the question text, a book outside the selected split (`other_split`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import polars as pl
import pyarrow as pa

from datamix.converters.base import Converter, gc_paused
from datamix.converters.options import option
from datamix.converters.qa import blank, merge_per_image, reject_rows
from datamix.errors import ConverterError
from datamix.jsonio import convert_record, decode_any, decode_typed, read_bytes
from datamix.ledger import Ledger
from datamix.progress import progress

SPLITS = {1: "train", 2: "val", 3: "test"}
SAFE_KEY = r"^[0-9A-Za-z][0-9A-Za-z._-]*$"  # an ASIN/ISBN; anything else could not name a file under images/


class Book(msgspec.Struct):
    imageURL: str | None = None  # noqa: N815 (the file's own keys)
    questions: list[str] | None = None
    answers: list[str] | None = None
    title: str | None = None
    authorName: str | None = None  # noqa: N815
    genre: str | None = None
    split: int | None = None


BOOK_SCHEMA = {"key": pl.Utf8, "questions": pl.List(pl.Utf8), "answers": pl.List(pl.Utf8), "title": pl.Utf8,
               "author": pl.Utf8, "genre": pl.Utf8, "split": pl.Int64, "image_url": pl.Utf8, "file": pl.Utf8}


@dataclass(frozen=True)
class OCRVQAOptions:
    split: str = option("all", "which books to keep by their `split` field: train (1), val (2), test (3) or all",
                        choices=("all", "train", "val", "test"))


class OCRVQA(Converter):
    id = "ocrvqa"
    description = "OCR-VQA dataset.json (book covers keyed by ASIN/ISBN), all questions of a book merged"
    Options = OCRVQAOptions

    def convert(self, files: list[Path], ledger: Ledger) -> Iterator[pa.Table]:
        with gc_paused():  # millions of small objects: see base.gc_paused
            frames = [load_books(path, ledger) for path in progress(files, "ocrvqa: parsing", unit="file")]
        books = pl.concat(frames) if frames else pl.DataFrame(schema=BOOK_SCHEMA)
        books = books.with_columns(n_questions=pl.col("questions").list.len().fill_null(0),
                                   n_answers=pl.col("answers").list.len().fill_null(0))
        ledger.records_in += int(books["n_questions"].clip(lower_bound=1).sum() or 0)
        books = self._reject_books(books, ledger)
        rows = books.explode(["questions", "answers"]).rename({"questions": "question", "answers": "answer"})
        rows = rows.with_columns(qid=pl.col("key") + pl.lit("#") + pl.int_range(pl.len()).over("key").cast(pl.Utf8))
        rows = reject_rows(rows, [
            (blank("question"), "empty_question"),
            (pl.col("question").str.contains("<image>", literal=True), "image_token_in_text"),
            (blank("answer"), "empty_answer"),
            (pl.col("answer").str.strip_chars() == "*", "placeholder_answer: '*' stands for an unknown value"),
        ], ledger, id_column="qid")
        ledger.records_out += rows.height
        if not rows.height:
            return
        rows = rows.with_columns(
            image_key=pl.col("key"),
            image_path=pl.lit("images/") + pl.col("key") + pl.lit(".jpg"),  # LLaVA saves every cover as .jpg
            split_name=pl.col("split").replace_strict(SPLITS, default=None, return_dtype=pl.Utf8),
            image_url_ext=pl.col("image_url").str.extract(r"(\.[A-Za-z0-9]+)$").str.to_lowercase(),
        )
        yield merge_per_image(
            rows, source=self.id, task="vqa_short", policy=self.format_prompt, meta_lists={},
            meta_first={"book_id": "key", "title": "title", "author": "author", "genre": "genre", "split": "split",
                        "split_name": "split_name", "image_url": "image_url", "image_url_ext": "image_url_ext"},
        )

    def _reject_books(self, books: pl.DataFrame, ledger: Ledger) -> pl.DataFrame:
        """Book-level problems reject every question of the book (or the book itself when it has none)."""
        checks = [
            (~pl.col("key").str.contains(SAFE_KEY), "bad_key: cannot name an image file"),
            (~pl.col("key").is_first_distinct(), "duplicate_book: key seen earlier in the inputs"),
            (pl.col("n_questions") == 0, "no_questions: book has no questions"),
            (pl.col("n_questions") != pl.col("n_answers"),
             "qa_length_mismatch: questions and answers differ in number"),
        ]
        if self.options.split != "all":
            wanted = next(code for code, name in SPLITS.items() if name == self.options.split)
            checks.append((pl.col("split").fill_null(0) != wanted, f"other_split: not the {self.options.split} split"))
        reason = pl.lit(None, dtype=pl.Utf8)
        for bad, why in reversed(checks):
            reason = pl.when(bad).then(pl.lit(why)).otherwise(reason)
        books = books.with_columns(_reason=reason)
        bad = books.filter(pl.col("_reason").is_not_null())
        # one ledger entry per question (`<key>#<i>`), or one under the key for a book without questions
        per_question = bad.select("key", "_reason", "file", i=pl.int_ranges(pl.col("n_questions").clip(1)),
                                  whole=pl.col("n_questions") == 0).explode("i")
        for key, why, file, i, whole in per_question.iter_rows():
            ledger.reject(key if whole else f"{key}#{i}", why, file=file)
        return books.filter(pl.col("_reason").is_null()).drop("_reason")


def load_books(path: Path, ledger: Ledger) -> pl.DataFrame:
    """`dataset.json` -> one row per book; entries that do not fit the type are rejected one by one."""
    data = read_bytes(path)
    if not data.lstrip().startswith(b"{"):
        raise ConverterError(f"{path}: not an OCR-VQA dataset.json: expected a JSON object keyed by ASIN/ISBN")
    books = decode_typed(data, dict[str, Book])
    del data
    if books is None:
        books = _convert_one_by_one(path, ledger)
    values = list(books.values())
    if values and all(b.questions is None and b.imageURL is None for b in values):
        raise ConverterError(f"{path}: not an OCR-VQA dataset.json: no entry has 'questions' or 'imageURL'")
    return pl.DataFrame({
        "key": list(books),
        # pyarrow turns the nested lists into list arrays in C, without one Python object per question
        "questions": pa.array([b.questions for b in values], type=pa.list_(pa.string())),
        "answers": pa.array([b.answers for b in values], type=pa.list_(pa.string())),
        "title": [b.title for b in values],
        "author": [b.authorName for b in values],
        "genre": [b.genre for b in values],
        "split": [b.split for b in values],
        "image_url": [b.imageURL for b in values],
    }, schema={k: v for k, v in BOOK_SCHEMA.items() if k != "file"}).with_columns(file=pl.lit(path.name))


def _convert_one_by_one(path: Path, ledger: Ledger) -> dict[str, Book]:
    raw = decode_any(path)
    if not isinstance(raw, dict):
        raise ConverterError(f"{path}: not an OCR-VQA dataset.json: expected a JSON object keyed by ASIN/ISBN")
    good = {}
    for key, entry in raw.items():
        value, reason = convert_record(entry, Book)
        if reason:
            ledger.records_in += 1
            ledger.reject(key, reason, file=path.name)
        else:
            good[key] = value
    return good
