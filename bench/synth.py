"""Generators of official-format raw files at full train scale, for the benchmarks.

The content is random but the shapes, key order, id arithmetic and value distributions follow the
real files (the official VQAv2 and GQA layouts): VQAv2 `question_id = image_id*1000 + k`, 10 answers per question
with disagreement, GQA dict keyed by zero-padded question id with `semantic` programs.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = ("red blue green yellow dog cat man woman table chair sky tree car bus street water "
         "white black two three kite plate food wall sign window grass building person").split()
QTYPES = ["what color is the", "is the", "how many", "what is the", "are there", "what is this"]
ATYPES = ["other", "yes/no", "number"]
INFO = {"description": "This is v2.0 of the VQA dataset.", "url": "http://visualqa.org",
        "version": "2.0", "year": 2017, "contributor": "VQA Team", "date_created": "2017-04-26 17:07:13"}
LICENSE = {"url": "http://creativecommons.org/licenses/by/4.0/", "name": "Creative Commons Attribution 4.0 License"}


def _question(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))).capitalize() + "?"


def write_vqav2(out_dir: Path, n_questions: int, seed: int = 0) -> tuple[Path, Path]:
    rng = random.Random(seed)
    questions, annotations = [], []
    image_id, k = 9, 0
    for _ in range(n_questions):
        if k == 0 or rng.random() < 0.18:
            image_id += rng.randint(1, 7)
            k = 0
        qid = image_id * 1000 + k
        k += 1
        questions.append({"image_id": image_id, "question": _question(rng), "question_id": qid})
        atype = rng.choice(ATYPES)
        pool = ["yes", "no"] if atype == "yes/no" else (["1", "2", "3"] if atype == "number" else WORDS)
        answers = [rng.choice(pool) for _ in range(10)]
        annotations.append({
            "question_type": rng.choice(QTYPES), "multiple_choice_answer": max(set(answers), key=answers.count),
            "answers": [{"answer": a, "answer_confidence": rng.choice(("yes", "yes", "maybe", "no")), "answer_id": i + 1}
                        for i, a in enumerate(answers)],
            "image_id": image_id, "answer_type": atype, "question_id": qid,
        })
    rng.shuffle(annotations)  # order is not guaranteed between the two files
    out_dir.mkdir(parents=True, exist_ok=True)
    q_path = out_dir / "v2_OpenEnded_mscoco_train2014_questions.json"
    a_path = out_dir / "v2_mscoco_train2014_annotations.json"
    q_path.write_text(json.dumps({"info": INFO, "task_type": "Open-Ended", "data_type": "mscoco",
                                  "license": LICENSE, "data_subtype": "train2014", "questions": questions}))
    a_path.write_text(json.dumps({"info": INFO, "license": LICENSE, "data_subtype": "train2014",
                                  "annotations": annotations, "data_type": "mscoco"}))
    return q_path, a_path


def write_gqa(out_dir: Path, n_questions: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    records = {}
    image = 2300000
    for i in range(n_questions):
        if i % 13 == 0:
            image += rng.randint(1, 9)
        qid = f"{2000000 + i * 7:08d}" if i % 5 else f"{i:08d}"
        answer = rng.choice(("yes", "no", "left", "right", "blue", "table"))
        records[qid] = {
            "semantic": [{"operation": "select", "dependencies": [], "argument": f"sky ({rng.randint(1, 10**7)})"},
                         {"operation": "verify color", "dependencies": [0], "argument": "dark"}],
            "entailed": [f"{rng.randint(0, 10**8):08d}"], "equivalent": [qid], "question": _question(rng),
            "imageId": str(image) if i % 17 else f"n{image}", "isBalanced": True,
            "groups": {"global": None, "local": "06-sky_dark"}, "answer": answer,
            "semanticStr": "select: sky (2486325)->verify color: dark [0]",
            "annotations": {"answer": {}, "question": {"2": "2486325"}, "fullAnswer": {"2": "2486325"}},
            "types": {"detailed": "verifyAttr", "semantic": "attr", "structural": "verify"},
            "fullAnswer": f"The answer is {answer}.",
        }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "train_balanced_questions.json"
    path.write_text(json.dumps(records))
    return path
