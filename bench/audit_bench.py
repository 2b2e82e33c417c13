"""`datamix audit` on a generated 665,298-record `llava_v1_5_mix665k.json` beside `json.load` of the same file.

    .venv/bin/python bench/audit_bench.py [--work bench_out] [--scale 1.0]

1. Generates (once; cached under <work>/audit/) a released-format file with the exact published per-source
   counts (manifests/llava_v1_5_mix665k.json) and each source's real shape: image folders and ids, GQA and
   OCR-VQA style multi-turn short answers with the prompt on the first question only, A-OKVQA options and
   the letter prompt, TextCaps captions, RefCOCO/VG REG/REC sentences with `round(v, 2)` boxes, long
   multi-turn ShareGPT text without `image`, LLaVA-Instruct conversations and detailed descriptions.
   About 1 GB at scale 1, like the real file.
2. Runs, each in a fresh process: (a) `json.load` of the file (what LLaVA's trainer does, and the floor
   of any pure-Python reader), (b) `datamix audit FILE --json OUT` (decode, classify, every figure, the
   count check), each `--repeat` times.
3. Prints the best wall time, its CPU time (user + system: what a busy machine does not inflate) and peak
   RSS side by side, and the ratios.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import numpy as np

sys.path.insert(0, str(Path(__file__).parent.parent))

SHORT = "Answer the question using a single word or phrase."
LETTER = "Answer with the option's letter from the given choices directly."
CAPTION = "Provide a one-sentence caption for the provided image."
REG = "Please provide a short description for this region: "
REC = "Please provide the bounding box coordinate of the region this sentence describes: "
WORDS = np.array(("red blue green yellow dog cat man woman table chair sky tree car bus street water white "
                  "black two three kite plate food wall sign window grass building person book title").split())
ANSWERS = np.array(["Yes"] * 6 + ["No"] * 4 + ["2", "Red", "White", "Dog", "Man", "Table", "1", "Left", "Blue"])
# source: (records, image folder or None, questions per record (lo, hi))
SOURCES = {
    "llava_instruct": (157_712, "coco/train2017", (1, 5)),
    "sharegpt": (40_688, None, (1, 4)),
    "vqav2": (82_783, "coco/train2017", (3, 8)),
    "gqa": (72_140, "gqa/images", (8, 18)),
    "okvqa": (8_998, "coco/train2017", (1, 2)),
    "ocrvqa": (80_000, "ocr_vqa/images", (4, 6)),
    "aokvqa": (66_160, "coco/train2017", (1, 1)),
    "textcaps": (21_953, "textvqa/train_images", (1, 1)),
    "refcoco": (48_447, "coco/train2017", (2, 9)),
    "vg": (86_417, "vg/VG_100K", (10, 10)),
}


class Pool:
    """Random sentences drawn from a fixed pool, so that generating a gigabyte stays fast."""

    def __init__(self, rng: np.random.Generator, lo: int, hi: int, size: int = 4096):
        lens = rng.integers(lo, hi + 1, size)
        words = rng.choice(WORDS, lens.sum())
        self.items = [" ".join(w).capitalize() for w in np.split(words, np.cumsum(lens)[:-1])]
        self.rng = rng

    def __call__(self) -> str:
        return self.items[int(self.rng.integers(len(self.items)))]


def _box(rng) -> str:
    x1, y1 = rng.random(2) * 0.6
    x2, y2 = x1 + rng.random() * 0.4, y1 + rng.random() * 0.4
    return "[" + ", ".join(str(round(float(v), 2)) for v in (x1, y1, x2, y2)) + "]"


def _record(name: str, i: int, folder: str | None, k: int, rng, pools) -> dict:
    q, long, para = pools["q"], pools["long"], pools["para"]
    turns: list[tuple[str, str]] = []
    if name in ("vqav2", "okvqa", "gqa", "ocrvqa"):
        turns = [(q() + "?" + (f"\n{SHORT}" if j == 0 else ""), str(ANSWERS[rng.integers(len(ANSWERS))]))
                 for j in range(k)]
    elif name == "aokvqa":
        options = "\n".join(f"{letter}. {w}" for letter, w in zip("ABCD", rng.choice(WORDS, 4)))
        turns = [(f"{q()}?\n{options}\n{LETTER}", "ABCD"[int(rng.integers(4))])]
    elif name == "textcaps":
        turns = [(CAPTION, long() + ".")]
    elif name in ("refcoco", "vg"):
        turns = [(REG + _box(rng) + ".", q() + ".") if rng.random() < 0.5 else (REC + q().lower() + ".", _box(rng))
                 for _ in range(k)]
    elif name == "llava_instruct":
        turns = [(q() + "?", para()) for _ in range(k)]
    else:  # sharegpt: long text answers
        turns = [(long() + "?", " ".join(para() for _ in range(int(rng.integers(2, 10))))) for _ in range(k)]
    conversations = []
    for j, (human, gpt) in enumerate(turns):
        conversations += [{"from": "human", "value": ("<image>\n" + human) if folder and j == 0 else human},
                          {"from": "gpt", "value": gpt}]
    if folder is None:
        return {"id": f"{i:07x}_0", "model": "", "conversations": conversations}
    ident = f"{i:012d}" if folder.startswith("coco") else str(1_000_000 + i)
    return {"id": ident, "image": f"{folder}/{ident}.jpg", "conversations": conversations}


def generate(path: Path, scale: float, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    pools = {"q": Pool(rng, 3, 9), "long": Pool(rng, 8, 20), "para": Pool(rng, 30, 120)}
    records = []
    for name, (n, folder, (lo, hi)) in SOURCES.items():
        for i in range(max(1, round(n * scale))):
            records.append(_record(name, i, folder, int(rng.integers(lo, hi + 1)), rng, pools))
    order = rng.permutation(len(records))  # sources interleaved, ShareGPT not all at the end
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.encode([records[k] for k in order]))


def job(name: str, *args: str) -> None:
    """Run one job in this (fresh) process; print wall time, CPU time and peak RSS as the last line."""
    start, cpu = time.perf_counter(), time.process_time()
    if name == "json_load":
        with open(args[0]) as f:
            json.load(f)
    else:
        from datamix.cli import app

        code = app(["audit", *args], standalone_mode=False)
        if code:
            sys.exit(code)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "peak_rss_bytes": peak}))


def measure(repeat: int, *args: str) -> dict:
    runs = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, __file__, "--job", *args], check=True, capture_output=True, text=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return min(runs, key=lambda r: r["wall_s"])


def main() -> None:
    if sys.argv[1:2] == ["--job"]:  # the job's own arguments (--json ...) are not this script's options
        return job(*sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("bench_out"))
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the 665,298 records")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each job; the fastest is shown")
    args = parser.parse_args()
    path = args.work / "audit" / f"llava_v1_5_mix665k-{args.scale:g}.json"
    if not path.exists():
        print(f"generating {path} ...", flush=True)
        generate(path, args.scale)
    size = path.stat().st_size
    print(f"{path}: {size / 2**20:,.0f} MiB")
    a = measure(args.repeat, "json_load", str(path))
    audit_args = [str(path), "--json", str(path.with_suffix(".audit.json"))]
    if args.scale != 1.0:
        audit_args.append("--no-counts")  # the published counts only hold at full scale
    b = measure(args.repeat, "audit", *audit_args)
    for label, r in (("(a) json.load", a), ("(b) datamix audit (every figure)", b)):
        print(f"  {label:<34} {r['wall_s']:>7.2f} s wall {r['cpu_s']:>7.2f} s CPU "
              f"{r['peak_rss_bytes'] / 2**20:>8,.0f} MiB")
    print(f"  (b) vs (a): {a['wall_s'] / b['wall_s']:.2f}x the speed (wall), {a['cpu_s'] / b['cpu_s']:.2f}x (CPU), "
          f"{b['peak_rss_bytes'] / a['peak_rss_bytes']:.2f}x the peak RSS")


if __name__ == "__main__":
    main()
