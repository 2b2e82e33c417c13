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

(the prompt goes through `prompts.apply_format_prompt`, so `format_prompt: none` leaves it out) and the answer is
the bare letter, as LLaVA's option-only multiple-choice evaluation expects (docs/Evaluation.md). Copies share
the id `aokvqa/<question_id>`, made unique as `#1`, `#2`, ... in rotation order. Images are the COCO 2017 files
the record's split names (`train2017/%012d.jpg`, A-OKVQA's own `get_coco_path`), which LLaVA keeps under `coco/`.

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

from datamix.converters.base import RecordConverter
from datamix.converters.options import option
from datamix.ledger import Ledger
from datamix.schema import IMAGE_TOKEN, Sample

LETTERS = string.ascii_uppercase
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


class AOKVQA(RecordConverter):
    id = "aokvqa"
    description = "A-OKVQA (aokvqa_v1p0_*.json) as multiple choice with letter answers, augmented once per choice"
    Options = AOKVQAOptions
    record_type = AOKVQARecord
    required_key = "question_id"

    def convert(self, files: list[Path], ledger: Ledger) -> Iterator[list[Sample]]:
        self._questions: set[str] = set()
        return super().convert(files, ledger)

    def to_sample(self, record: AOKVQARecord, index: int, file: Path) -> list[Sample] | str:
        reason = self._problem(record)
        if reason:
            return reason
        qid = str(record.question_id)
        if qid in self._questions:
            return "duplicate_question_id: seen earlier in the inputs"
        self._questions.add(qid)
        k = len(record.choices)
        rotations = range(k) if self.options.augment == "rotate" else range(1)
        return [self._copy(record, qid, j) for j in rotations]

    @staticmethod
    def _problem(record: AOKVQARecord) -> str | None:
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

    def _copy(self, record: AOKVQARecord, qid: str, rotation: int) -> Sample:
        """Copy `rotation` of one question: option i shows choices[(i + rotation) % k]."""
        k = len(record.choices)
        shown = [record.choices[(i + rotation) % k] for i in range(k)]
        letter = LETTERS[(record.correct_choice_idx - rotation) % k]
        options = "\n".join(f"{LETTERS[i]}. {choice.strip()}" for i, choice in enumerate(shown))
        split = record.split
        question = record.question.strip()
        meta = {"original_id": qid, "question_id": qid, "image_id": str(record.image_id), "split": split,
                "choices": record.choices, "correct_choice_idx": record.correct_choice_idx,
                "rotation": rotation, "answer_letter": letter, "augment": self.options.augment,
                "direct_answers": record.direct_answers, "difficult_direct_answer": record.difficult_direct_answer,
                "rationales": record.rationales}
        return Sample(id=f"{self.id}/{qid}", source=self.id, task="mcq",
                      images=[f"{split}2017/{record.image_id:012d}.jpg"],
                      conversations=[{"from": "human", "value": f"{IMAGE_TOKEN}\n{question}\n{options}"},
                                     {"from": "gpt", "value": letter}],
                      meta=meta)
