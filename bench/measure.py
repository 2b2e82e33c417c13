"""Run one benchmark job in a fresh process; `measure(...)` reports its wall time and its own peak RSS.

Jobs: `json_load FILES...`, `pickle_load FILES...`, `naive_vqav2 Q A OUT`, `naive_gqa FILE OUT`, `datamix ARGS...` (the real CLI),
`wds_plain PARQUET IMAGE_ROOT PATTERN MAXCOUNT MAXSIZE` (the plain webdataset shard-writing loop),
`call MODULE:FUNCTION ARGS...` (a function of another bench script), `hold MIB` (a calibration job).

Peak memory is each process's own: `VmHWM` of /proc/<pid>/status, the high-water mark of the memory
image it runs. Not `ru_maxrss`: Linux carries that over from the parent across fork and exec, so a
job started by a process that had grown to 3.6 GiB reported 3.6 GiB whatever it did itself.
- `peak_rss_bytes`: the job process's VmHWM, read as it exits.
- `peak_rss_children_bytes`: the sum of its child processes' VmHWM (pool workers), each read by a
  thread every 20 ms while they live (the last reading after a child's exec is its own peak).
- `wall_s`: measured by the caller around the whole process, interpreter start-up and imports included.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent

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


def call(target: str, *args: str) -> None:
    """`module:function` of a script in bench/ (e.g. `stats_bench:plain_loop`), called with `args`."""
    module, function = target.split(":")
    getattr(importlib.import_module(module), function)(*args)


def hold(mib: str, child_mib: str | None = None) -> None:
    """Touch `mib` MiB (and, given `child_mib`, in a spawned child as a pool worker would): a job of known
    size, to check what the figures report."""
    if child_mib is not None:
        import multiprocessing

        child = multiprocessing.get_context("spawn").Process(target=hold, args=(child_mib,))
        child.start()
        child.join()
    block = bytearray(int(mib) << 20)
    block[::4096] = b"x" * len(block[::4096])
    time.sleep(0.1)  # long enough for a parent's 20 ms reading


JOBS = {"json_load": json_load, "pickle_load": pickle_load, "naive_vqav2": naive_vqav2, "naive_gqa": naive_gqa,
        "datamix": run_datamix, "wds_plain": wds_plain, "call": call, "hold": hold}


def vm_hwm(pid: int | str = "self") -> int:
    """Bytes of the process's peak resident set (VmHWM), 0 if it is gone or has no memory image."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found


class ChildPeaks(threading.Thread):
    """Reads every descendant's VmHWM every `interval` s; keeps the last reading per pid.

    The last, not the largest: a spawned child is forked (a copy of this process's memory image, with its
    high-water mark) and then execs a fresh interpreter, whose own mark starts again from zero.
    """

    def __init__(self, interval: float = 0.02):
        super().__init__(daemon=True)
        self.interval, self.peaks, self.done = interval, {}, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.poll()
            self.done.wait(self.interval)

    def poll(self) -> None:
        for pid in descendants(os.getpid()):
            value = vm_hwm(pid)
            if value:
                self.peaks[pid] = value

    def total(self) -> int:
        self.done.set()
        self.poll()
        return sum(self.peaks.values())


def measure(*args: str) -> dict:
    """Run `measure.py JOB ARGS...` as a fresh process: its wall time (start-up included) and peak RSS."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, str(HERE / "measure.py"), *args], check=True, capture_output=True,
                         text=True)
    wall = time.perf_counter() - start
    return json.loads(out.stdout.strip().splitlines()[-1]) | {"wall_s": wall}


if __name__ == "__main__":
    children = ChildPeaks()
    children.start()
    started = time.perf_counter()
    JOBS[sys.argv[1]](*sys.argv[2:])
    job_s = time.perf_counter() - started
    kids = children.total()
    own = vm_hwm()
    print(json.dumps({"job_s": job_s, "peak_rss_bytes": own, "peak_rss_children_bytes": kids,
                      "peak_rss_total_bytes": own + kids}))
