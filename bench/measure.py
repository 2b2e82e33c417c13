"""Run one benchmark job in this fresh process and print its wall time and peak RSS as JSON.

Jobs: `json_load FILES...`, `pickle_load FILES...`, `naive_vqav2 Q A OUT`, `naive_gqa FILE OUT`,
`datamix ARGS...` (the real CLI), `wds_plain PARQUET IMAGE_ROOT PATTERN MAXCOUNT MAXSIZE` (the plain webdataset shard-writing loop).
`peak_rss_children_bytes` is the largest peak RSS of any finished child process (pool workers), 0 if none.
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


def pickle_load(*files: str) -> None:
    """The plain load of a refs pickle (Python-2 strings as text, as the refer API reads them)."""
    import pickle

    for f in files:
        with open(f, "rb") as fh:
            pickle.load(fh, encoding="latin1")


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


def wds_plain(parquet: str, image_root: str, pattern: str, maxcount: str, maxsize: str) -> None:
    """The loop users write today: Parquet rows -> json + image bytes read from disk -> webdataset.ShardWriter."""
    import os

    import pyarrow.parquet as pq
    import webdataset as wds

    with wds.ShardWriter(pattern, maxcount=int(maxcount), maxsize=float(maxsize), verbose=0) as sink:
        for batch in pq.ParquetFile(parquet).iter_batches(batch_size=8192):
            for row in batch.to_pylist():
                with open(os.path.join(image_root, row["images"][0]), "rb") as f:
                    image = f.read()
                key = row["id"].replace("/", "_")
                sink.write({"__key__": key, "json": json.dumps(row).encode(), "jpg": image})


def run_datamix(*args: str) -> None:
    from datamix.cli import app

    try:
        code = app(list(args), standalone_mode=False)
        if code:  # a clean `error: ...` exit returns its code in non-standalone mode: fail the job
            sys.exit(code)
    except SystemExit as exc:  # pragma: no cover - a failing job is reported by the caller
        if exc.code:
            raise


JOBS = {"json_load": json_load, "pickle_load": pickle_load, "naive_vqav2": naive_vqav2, "naive_gqa": naive_gqa,
        "datamix": run_datamix, "wds_plain": wds_plain}

if __name__ == "__main__":
    start = time.perf_counter()
    JOBS[sys.argv[1]](*sys.argv[2:])
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(json.dumps({"wall_s": wall, "peak_rss_bytes": peak, "peak_rss_children_bytes": children}))
