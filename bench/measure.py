"""Run one benchmark job in this fresh process and print its wall time and peak RSS as JSON.

Jobs: `json_load FILES...`, `naive_vqav2 Q A OUT`, `naive_gqa FILE OUT`, `datamix ARGS...` (the real CLI).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections import defaultdict

PROMPT = "Answer the question using a single word or phrase."


def json_load(*files: str) -> None:
    for f in files:
        with open(f) as fh:
            json.load(fh)


def _dump_llava(conversations: dict, out: str) -> None:
    records = []
    for image, pairs in conversations.items():
        turns = []
        for i, (question, answer) in enumerate(pairs):
            value = f"<image>\n{question}\n{PROMPT}" if i == 0 else question
            turns += [{"from": "human", "value": value}, {"from": "gpt", "value": answer}]
        records.append({"id": str(image), "image": image, "conversations": turns})
    with open(out, "w") as fh:
        json.dump(records, fh)


def naive_vqav2(questions: str, annotations: str, out: str) -> None:
    """The script users write today: load both files, join in dicts, loop, dump LLaVA JSON."""
    with open(questions) as fh:
        qs = json.load(fh)["questions"]
    with open(annotations) as fh:
        answers = {a["question_id"]: a["multiple_choice_answer"] for a in json.load(fh)["annotations"]}
    conversations = defaultdict(list)
    for q in sorted(qs, key=lambda q: q["question_id"]):
        image = f"coco/train2017/{q['image_id']:012d}.jpg"
        conversations[image].append((q["question"], answers[q["question_id"]]))
    _dump_llava(conversations, out)


def naive_gqa(questions: str, out: str) -> None:
    with open(questions) as fh:
        qs = json.load(fh)
    conversations = defaultdict(list)
    for qid in sorted(qs):
        q = qs[qid]
        conversations[f"gqa/images/{q['imageId']}.jpg"].append((q["question"], q["answer"]))
    _dump_llava(conversations, out)


def run_datamix(*args: str) -> None:
    from datamix.cli import app

    try:
        app(list(args), standalone_mode=False)
    except SystemExit as exc:  # pragma: no cover - a failing job is reported by the caller
        if exc.code:
            raise


JOBS = {"json_load": json_load, "naive_vqav2": naive_vqav2, "naive_gqa": naive_gqa, "datamix": run_datamix}

if __name__ == "__main__":
    start = time.perf_counter()
    JOBS[sys.argv[1]](*sys.argv[2:])
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"wall_s": wall, "peak_rss_bytes": peak}))
