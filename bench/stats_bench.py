"""`datamix stats` on a generated 665,298-sample mix against the plain Python loop users would write.

    .venv/bin/python bench/stats_bench.py [--work bench_out] [--scale 1.0]

1. Generates (once; cached under <work>/stats/ with a stamp) an index.parquet-shaped table
   (datamix.mixdir.index.INDEX_SCHEMA) with the published per-source sizes of llava_v1_5_mix665k.json,
   in shuffled mix order, with per-task shapes: multi-turn short-answer VQA with the format prompt on the
   first question and a yes-leaning yes/no balance, single-turn multiple choice and captions, long
   ShareGPT answers, grounding boxes; COCO images shared by five sources, GQA/VG sharing Visual Genome.
2. Runs, each in a fresh process: (a) the plain loop (pyarrow batches -> to_pylist -> per-source sample
   counts and word counts of human and gpt turns: nothing else), (b) `datamix stats <file> --json`
   (every figure: lengths, quantiles, answers, prompt coverage, duplicates, image overlap, histograms).
3. Prints wall time and peak RSS side by side, and the ratios, each measured by bench/measure.py around
   the whole process (interpreter start-up and imports included; each process's own peak RSS). Issue
   target: (b) >= 10x faster than (a), peak RSS < 2 GiB.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import measure  # noqa: E402

SOURCES = {  # name: (samples, task, image pool, turns range, question words, answer words)
    "llava_instruct": (157_712, "conversation", "coco", (1, 5), (6, 20), (20, 90)),
    "sharegpt": (40_688, "text", None, (1, 4), (8, 40), (40, 220)),
    "vqav2": (82_783, "vqa_short", "coco", (1, 10), (4, 10), (1, 2)),
    "gqa": (72_140, "vqa_short", "vg", (1, 12), (5, 12), (1, 2)),
    "okvqa": (8_998, "vqa_short", "coco", (1, 2), (5, 12), (1, 2)),
    "ocrvqa": (80_000, "vqa_short", "ocr", (1, 5), (5, 8), (1, 4)),
    "aokvqa": (66_160, "mcq", "coco", (1, 1), (8, 20), (1, 1)),
    "textcaps": (21_953, "caption", "textvqa", (1, 1), (0, 0), (8, 20)),
    "refcoco": (48_447, "grounding", "coco", (1, 6), (3, 8), (4, 4)),
    "vg": (86_417, "grounding", "vg", (1, 6), (3, 8), (4, 4)),
}
POOLS = {"coco": 118_287, "vg": 108_077, "ocr": 207_572, "textvqa": 21_953}
PROMPTS = {"vqa_short": "Answer the question using a single word or phrase.",
           "mcq": "Answer with the option's letter from the given choices directly.",
           "caption": "Provide a one-sentence caption for the provided image."}
WORDS = np.array(("red blue green yellow dog cat man woman table chair sky tree car bus street water white "
                  "black two three kite plate food wall sign window grass building person").split())
SHORT = np.array(["yes"] * 6 + ["no"] * 4 + ["2", "red", "white", "dog", "man", "table", "1", "left", "blue"])


def _sentences(rng, count: int, lo: int, hi: int) -> np.ndarray:
    """`count` random sentences of lo..hi words (a pool to draw turns from, so generation stays fast)."""
    lens = rng.integers(lo, hi + 1, count)
    words = rng.choice(WORDS, lens.sum())
    cuts = np.cumsum(lens)[:-1]
    return np.array([" ".join(w) for w in np.split(words, cuts)], dtype=object)


def _source(rng, name: str, spec: tuple):
    n, task, pool, (tlo, thi), qlen, alen = spec
    turns = rng.integers(tlo, thi + 1, n)
    total = int(turns.sum())
    questions = _sentences(rng, 8192, *qlen)[rng.integers(0, 8192, total)] if qlen[1] else np.full(total, "", object)
    if task in ("vqa_short", "mcq"):
        answers = (SHORT if task == "vqa_short" else np.array(list("ABCD")))[rng.integers(0, 19 if task == "vqa_short" else 4, total)]
    elif task == "grounding":
        answers = np.array([f"[{a:.2f}, {b:.2f}, {c:.2f}, {d:.2f}]" for a, b, c, d in rng.random((4096, 4))],
                           object)[rng.integers(0, 4096, total)]
    else:
        answers = _sentences(rng, 8192, *alen)[rng.integers(0, 8192, total)]
    first = np.concatenate([[0], np.cumsum(turns)[:-1]])
    questions = questions.astype(object)
    for i, k in enumerate(first):  # first question: sample number (distinct conversations), image, prompt
        q = f"{questions[k]} (#{i})".strip()
        if task == "mcq":
            q += "\nA. red\nB. blue\nC. green\nD. yellow"
        if task in PROMPTS:
            q += "\n" + PROMPTS[task]
        questions[k] = ("<image>\n" + q) if pool else q
    images = [[f"{x:064x}"] for x in rng.integers(0, POOLS[pool], n)] if pool else [[] for _ in range(n)]
    return turns, questions, answers.astype(object), images, task


def generate(path: Path, scale: float, seed: int = 0) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from datamix.mixdir.index import INDEX_SCHEMA, ROW_SCHEMA
    from datamix.sample_numbers import with_numbers
    from datamix.table import TURN_TYPE

    rng = np.random.default_rng(seed)
    parts = []
    for name, spec in SOURCES.items():
        spec = (max(1, round(spec[0] * scale)),) + spec[1:]
        turns, q, a, images, task = _source(rng, name, spec)
        flat = np.empty(2 * len(q), object)
        flat[0::2], flat[1::2] = q, a
        roles = np.tile(np.array(["human", "gpt"], object), len(q))
        offsets = np.concatenate([[0], np.cumsum(2 * turns)]).astype(np.int32)
        conv = pa.ListArray.from_arrays(pa.array(offsets), pa.StructArray.from_arrays(
            [pa.array(roles, pa.string()), pa.array(flat, pa.string())], fields=list(TURN_TYPE)))
        meta = (json.dumps({"converter": name, "format_prompt": PROMPTS[task], "format_prompt_policy": "first_turn"})
                if task in PROMPTS else json.dumps({"converter": name}))
        n = len(turns)
        parts.append(pa.table({
            "key": [""] * n, "shard": [""] * n, "id": [f"{name}/{i}" for i in range(n)], "source": [name] * n,
            "task": [task] * n, "images": [[f"{name}/{s[:12]}.jpg" for s in im] for im in images],
            "conversations": conv, "meta": [meta] * n, "image_sha256": images,
            "image_bytes": [[50_000] * len(im) for im in images], "turns": turns.astype(np.int32)}))
    table = pa.concat_tables([p.cast(ROW_SCHEMA) for p in parts])
    table = table.take(rng.permutation(table.num_rows))  # mix order: sources interleaved, as a build writes
    table = table.set_column(0, "key", pa.array([f"{i:06d}" for i in range(table.num_rows)]))
    # The numbers a build stores as it writes the index, in batches as it writes them.
    table = pa.concat_tables([with_numbers(pa.Table.from_batches([b])) for b in table.to_batches(8192)])
    assert table.schema.equals(INDEX_SCHEMA)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", row_group_size=64 * 1024)


def plain_loop(index: str) -> None:
    """What a user writes without datamix: per-source counts and word lengths, one sample at a time."""
    import pyarrow.parquet as pq

    samples, words = Counter(), Counter()
    for batch in pq.ParquetFile(index).iter_batches(columns=["source", "conversations"], batch_size=8192):
        for row in batch.to_pylist():
            samples[row["source"]] += 1
            for turn in row["conversations"]:
                words[row["source"], turn["from"]] += len(turn["value"].replace("<image>", "").split())
    print(json.dumps({"samples": sum(samples.values()), "words": sum(words.values())}), file=sys.stderr)


def run_stats(index: str, out: str) -> None:
    from datamix.cli import app

    code = app(["stats", index, "--json", out], standalone_mode=False)
    if code:
        sys.exit(code)


def generate_file(path: str, scale: str) -> None:
    generate(Path(path), float(scale))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("bench_out"))
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the 665,298 samples")
    args = parser.parse_args()
    index = args.work / "stats" / f"index-{args.scale:g}.parquet"
    if not index.exists():
        print(f"generating {index} ...", flush=True)
        measure("call", "stats_bench:generate_file", str(index), str(args.scale))
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(index).metadata
    print(f"{index}: {meta.num_rows:,} samples, {index.stat().st_size / 2**20:,.0f} MiB on disk")
    a = measure("call", "stats_bench:plain_loop", str(index))
    b = measure("call", "stats_bench:run_stats", str(index), str(index.with_suffix(".stats.json")))
    for label, r in (("(a) plain Python loop (counts, words)", a), ("(b) datamix stats (every figure)", b)):
        print(f"  {label:<40} {r['wall_s']:>8.2f} s {r['peak_rss_bytes'] / 2**20:>9,.0f} MiB")
    speed, mem = a["wall_s"] / b["wall_s"], b["peak_rss_bytes"] / a["peak_rss_bytes"]
    ok = speed >= 10 and b["peak_rss_bytes"] < 2 * 2**30
    print(f"  (b) is {speed:.1f}x faster than (a), with {mem:.2f}x its peak RSS "
          f"(target: >= 10x faster, < 2 GiB): {'OK' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
