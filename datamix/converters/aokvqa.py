"""A-OKVQA as multiple choice: the question, one `A. option` line per choice, the letter prompt, the bare letter.

Provenance: https://github.com/allenai/aokvqa (Schwenk et al., ECCV 2022), `aokvqa_v1p0.tar.gz` holding
`aokvqa_v1p0_{train,val,test}.json`. License: annotations Apache 2.0, images under the COCO terms of use.
A file is a JSON list of records (recognised by content); one raw record:

    {"split": "train", "image_id": 299207, "question_id": "22MexNkBPpdZGX6sxbxVBH",
     "question": "What is the man by the bags awaiting?", "choices": ["skateboarder", "train", "delivery", "cab"],
     "correct_choice_idx": 3, "direct_answers": ["ride", "ride", "bus", "taxi", ...x10],
     "difficult_direct_answer": false, "rationales": ["A train would not be on the street, ...", ...x3]}

LLaVA-1.5 (paper §3.3, App. A.2) turns A-OKVQA into multiple choice with the prompt "Answer with the option's
letter from the given choices directly." and "augments each QA pair k times, where k is the number of choices".
How the k copies differ is not published; here copy j (0..k-1) shows the choices rotated cyclically by j
(option i of copy j is `choices[(i + j) % k]`), so the correct letter takes every position once and a model
cannot learn a letter prior. `augment=none` writes one copy in the file's order. The human turn is

    <image>\\n<question>\\nA. <choice>\\nB. <choice>\\n...\\n
    Answer with the option's letter from the given choices directly.

(the prompt is appended by `prompts.with_prompt` and recorded in `meta` as every format prompt is, so
`format_prompt: none` leaves it out) and the answer is the bare letter, as LLaVA's option-only multiple-choice
evaluation expects (docs/Evaluation.md). The copies are built as one Arrow table (a record that passes the
checks gives valid samples by construction). Copies share the id `aokvqa/<question_id>`, made unique as `#1`,
`#2`, ... in rotation order. Images are the COCO 2017 files the record's split names (`train2017/%012d.jpg`,
A-OKVQA's own `get_coco_path`), which LLaVA keeps under `coco/`.

`meta`: question id, image id, split, the choices in the file's order, `correct_choice_idx`, the copy's
`rotation` and `answer_letter`, and `direct_answers`, `difficult_direct_answer`, `rationales` untouched (the
direct answers often disagree with the multiple-choice answer; they are kept, not used).
Rejected, with the reason in the ledger: a record without `correct_choice_idx` (`no_answer`: the test split is
private), an index outside the choices, fewer than 2 or more than 26 choices, an empty choice or question,
`<image>` in the text, a missing image id, a question id seen before (`duplicate_question_id`), a record that
is not an object or has the wrong types (`malformed_record`).
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import polars as pl
import pyarrow as pa

from datamix.converters.base import Converter, gc_paused, original_id
from datamix.converters.options import option
from datamix.jsonio import iter_records
from datamix.ledger import Ledger
from datamix.progress import progress
from datamix.prompts import FORMAT_PROMPTS, PromptPolicy, with_prompt
from datamix.schema import IMAGE_TOKEN
from datamix.table import ARROW_SCHEMA

LETTERS = string.ascii_uppercase
STRINGS = pa.list_(pa.string())
SPLITS = ("train", "val", "test")  # the COCO 2017 folder each split's images are in: train2017, val2017, test2017


class AOKVQARecord(msgspec.Struct):
    question_id: str | int | None = None
    image_id: int | None = None
    split: str | None = None
    question: str | None = None
    choices: list[str] | None = None
    correct_choice_idx: int | None = None
    direct_answers: list[str] | None = None
    difficult_direct_answer: bool | None = None
    rationales: list[str] | None = None

    @property
    def id(self) -> str | None:  # what `base.original_id` files a rejection under
        return None if self.question_id is None else str(self.question_id)


@dataclass(frozen=True)
class AOKVQAOptions:
    augment: str = option("rotate", "rotate = k copies per question (k = number of choices), copy j rotating the "
                          "choices by j so the correct letter takes every position; none = one copy, file order",
                          choices=("rotate", "none"))


class AOKVQA(Converter):
    id = "aokvqa"
    description = "A-OKVQA (aokvqa_v1p0_*.json) as multiple choice with letter answers, augmented once per choice"
    Options = AOKVQAOptions

    def convert(self, files: list[Path], ledger: Ledger) -> Iterator[pa.Table]:
        kept: list[AOKVQARecord] = []
        seen: set[str] = set()
        for file in files:
            with gc_paused():  # the file is decoded at the first record
                records = list(iter_records(file, AOKVQARecord, "question_id"))
            for index, record, reason in progress(records, f"{self.id} {file.name}", unit="rec"):
                ledger.records_in += 1
                reason = reason or self._problem(record)
                if not reason and str(record.question_id) in seen:
                    reason = "duplicate_question_id: seen earlier in the inputs"
                if reason:
                    ledger.reject(original_id(record, index), reason, file=file.name)
                    continue
                seen.add(str(record.question_id))
                kept.append(record)
        ledger.records_out += len(kept)
        if kept:
            yield self._table(kept)

    @staticmethod
    def _problem(record: AOKVQARecord) -> str | None:
        """Every check a copy would fail; a record that passes gives valid samples by construction."""
        choices = record.choices or []
        if record.image_id is None or record.image_id < 0:
            return "bad_image_id: missing or not a COCO integer id"
        if record.question_id in (None, ""):
            return "missing_question_id"
        if record.split not in SPLITS:
            return f"bad_split: {record.split!r}; expected one of {', '.join(SPLITS)}"
        if record.correct_choice_idx is None:
            return "no_answer: record has no correct_choice_idx (the test split is private)"
        if not 2 <= len(choices) <= len(LETTERS):
            return f"bad_choices: {len(choices)} choices; need 2 to {len(LETTERS)}"
        if not 0 <= record.correct_choice_idx < len(choices):
            return f"bad_correct_choice_idx: {record.correct_choice_idx} for {len(choices)} choices"
        if not (record.question or "").strip():
            return "empty_question"
        if any(not c.strip() for c in choices):
            return "empty_choice"
        if IMAGE_TOKEN in record.question or any(IMAGE_TOKEN in c for c in choices):
            return "image_token_in_text"
        return None

    def _table(self, records: list[AOKVQARecord]) -> pa.Table:
        """All copies as one unified-schema table; the per-question meta is gathered per copy by polars."""
        policy = self.format_prompt
        prompt = FORMAT_PROMPTS["mcq"]
        ids, images, turns, which, rotations, letters = [], [], [], [], [], []
        for n, record in enumerate(records):
            qid, k = str(record.question_id), len(record.choices)
            question = f"{IMAGE_TOKEN}\n{record.question.strip()}\n"
            image = f"{record.split}2017/{record.image_id:012d}.jpg"  # A-OKVQA's get_coco_path
            for j in range(k) if self.options.augment == "rotate" else range(1):
                # copy j: option i shows choices[(i + j) % k], so the right letter moves back by j
                human = question + "\n".join(f"{LETTERS[i]}. {record.choices[(i + j) % k].strip()}"
                                             for i in range(k))
                letter = LETTERS[(record.correct_choice_idx - j) % k]
                turns += [with_prompt(human, prompt) if policy is not PromptPolicy.none else human, letter]
                ids.append(f"{self.id}/{qid}" if j == 0 else f"{self.id}/{qid}#{j}")
                images.append(image)
                which.append(n)
                rotations.append(j)
                letters.append(letter)
        n_rows = len(ids)
        roles = pa.DictionaryArray.from_arrays(np.tile(np.array([0, 1], dtype=np.int8), n_rows), ["human", "gpt"])
        conversation = pa.StructArray.from_arrays([roles.cast(pa.string()), pa.array(turns, pa.string())],
                                                  names=["from", "value"])
        return pa.table({
            "id": pa.array(ids, pa.string()),
            "source": pa.array([self.id] * n_rows, pa.string()),
            "task": pa.array(["mcq"] * n_rows, pa.string()),
            "images": pa.ListArray.from_arrays(pa.array(np.arange(n_rows + 1), pa.int32()), pa.array(images)),
            "conversations": pa.ListArray.from_arrays(pa.array(np.arange(0, 2 * n_rows + 1, 2), pa.int32()),
                                                      conversation),
            "meta": self._meta(records, which, rotations, letters),
        }, schema=ARROW_SCHEMA)

    def _meta(self, records: list[AOKVQARecord], which: list[int], rotations: list[int],
              letters: list[str]) -> pa.Array:
        questions = pl.DataFrame({
            "question_id": [str(r.question_id) for r in records],
            "image_id": [str(r.image_id) for r in records],
            "split": [r.split for r in records],
            # list columns through pyarrow, which builds them in C (polars goes element by element)
            "choices": pa.array([r.choices for r in records], STRINGS),
            "correct_choice_idx": [r.correct_choice_idx for r in records],
            "direct_answers": pa.array([r.direct_answers for r in records], STRINGS),
            "difficult_direct_answer": [r.difficult_direct_answer for r in records],
            "rationales": pa.array([r.rationales for r in records], STRINGS),
        }, schema_overrides={"difficult_direct_answer": pl.Boolean})
        copies = questions[which].with_columns(
            original_id=pl.col("question_id"), rotation=pl.Series(rotations, dtype=pl.Int64),
            answer_letter=pl.Series(letters, dtype=pl.Utf8), augment=pl.lit(self.options.augment))
        if self.format_prompt is not PromptPolicy.none:  # recorded as prompts.apply_format_prompt does
            copies = copies.with_columns(format_prompt=pl.lit(FORMAT_PROMPTS["mcq"]),
                                         format_prompt_policy=pl.lit(self.format_prompt.value))
        meta = copies.select(pl.struct(*sorted(copies.columns)).struct.json_encode())
        return meta.to_series().to_arrow().cast(pa.string())
