"""Benchmarks of `datamix build` (run through `bench/run.py --only build`).

1. Shard-writing throughput. N samples (20,000 at scale 1), each with its own small real JPEG
   (64x64 .. 128x128, a few KB, all distinct files), stored as one converted Parquet source. In fresh
   processes (bench/measure.py):
     (a) the plain loop users write: read the Parquet rows, read each image's bytes, json.dumps the row,
         `webdataset.ShardWriter.write({"__key__", "json", "jpg"})`, same maxcount / maxsize;
     (b) `datamix build` of a recipe with that Parquet (ratio 1.0), --workers 1 and --workers 2: which
         also converts-or-reuses, ranks, verifies (fully decodes) every image, shuffles, hashes every shard,
         journals and writes index.parquet, stats.json, rejects.jsonl, README.md and manifest.json.
   Prints samples/s, MB/s (shard bytes / wall time) and the ratio (b)/(a). Issue target: (b) >= 0.8x (a).

2. Scale. A generated mix with the per-source sizes of LLaVA-1.5's 665,298-sample mix (one Parquet per
   source), built at ratio 0.1 and at ratio 1.0 in fresh processes: wall time, samples/s, peak RSS and
   the RSS ratio. Issue targets: peak RSS grows by no more than 1.2x from 10% to 100%, and stays < 2 GiB.
   To keep disk and time sane the images are SHARED: each source with images has a pool of
   `POOL_PER_SOURCE` distinct tiny 32x32 JPEGs, and sample i of the source points at image i % pool.
   datamix checks and copies per sample, not per file, so the work per sample is the same as with
   distinct files; only the page cache is kinder (the pool is ~8 MB in all) and the shards are small.
   The mix size is 665,298 x `--mix-scale` (default DEFAULT_MIX_SCALE, which finishes in a few minutes
   on 2 cores); `--mix-scale 1` builds the full 665K mix.

Generated inputs are cached under <work>/build/ with a stamp file, like bench/run.py's inputs().
"""

from __future__ import annotations

import io
import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path

# Published per-source sizes of llava_v1_5_mix665k.json (LLaVA-1.5 paper, Tab. 7 / released file).
LLAVA15_SOURCES = {  # name: (samples, task, has images)
    "llava_instruct": (157_712, "conversation", True),
    "sharegpt": (40_688, "conversation", False),
    "vqav2": (82_783, "vqa_short", True),
    "gqa": (72_140, "vqa_short", True),
    "okvqa": (8_998, "vqa_short", True),
    "ocrvqa": (80_000, "vqa_short", True),
    "aokvqa": (66_160, "mcq", True),
    "textcaps": (21_953, "caption", True),
    "refcoco": (48_447, "grounding", True),
    "vg": (86_417, "grounding", True),
}
MIX_TOTAL = sum(n for n, _, _ in LLAVA15_SOURCES.values())  # 665,298
THROUGHPUT_SAMPLES = 20_000
POOL_PER_SOURCE = 2_000
DEFAULT_MIX_SCALE = 0.25  # 166K samples: the 100% build takes ~2.5 min on 2 cores; 1.0 is the full mix
MAXCOUNT, MAXSIZE = 2_000, 64 * 10**6  # shard limits, identical for the plain loop and datamix
WORKER_COUNTS = (1, 2)

WORDS = ("red blue green yellow dog cat man woman table chair sky tree car bus street water "
         "white black two three kite plate food wall sign window grass building person").split()


# ----------------------------------------------------------------------------------------------- inputs

def _text(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def _jpeg(rng: random.Random, width: int, height: int, noise: int) -> bytes:
    """A real, distinct JPEG: a random gradient with a few random blocks and some pixel noise."""
    from PIL import Image, ImageDraw

    c0 = [rng.randrange(256) for _ in range(3)]
    c1 = [rng.randrange(256) for _ in range(3)]
    img = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    img = Image.merge("RGB", [band.point(lambda v, a=a, b=b: a + (b - a) * v // 255)
                              for band, a, b in zip(img.split(), c0, c1)])
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(2, 6)):
        x, y = rng.randrange(width), rng.randrange(height)
        draw.rectangle([x, y, x + rng.randint(4, width // 2), y + rng.randint(4, height // 2)],
                       fill=tuple(rng.randrange(256) for _ in range(3)))
    if noise:
        noisy = Image.frombytes("L", (width, height), rng.randbytes(width * height)).convert("RGB")
        img = Image.blend(img, noisy, noise / 100)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def _conversation(rng: random.Random, task: str, with_image: bool) -> list[dict]:
    if task == "conversation":
        turns = rng.randint(1, 5) if with_image else rng.randint(1, 4)
        lens = ((6, 20), (20, 90)) if with_image else ((8, 40), (40, 220))  # ShareGPT answers are long
    elif task == "vqa_short":
        turns, lens = rng.randint(1, 6), ((4, 10), (1, 2))
    elif task == "mcq":
        turns, lens = 1, ((10, 25), (1, 1))
    elif task == "caption":
        turns, lens = 1, ((0, 0), (8, 20))
    else:  # grounding: region descriptions and [x0, y0, x1, y1] boxes
        turns, lens = rng.randint(1, 6), ((3, 8), (0, 0))
    out = []
    for k in range(turns):
        question = _text(rng, *lens[0]).capitalize() or "Describe the image briefly"
        if task == "mcq":
            question += "\nA. red\nB. blue\nC. green\nD. yellow"
        if task == "grounding":
            answer = "[" + ", ".join(f"{rng.random():.2f}" for _ in range(4)) + "]"
        elif task == "mcq":
            answer = rng.choice("ABCD")
        else:
            answer = _text(rng, *lens[1])
        if k == 0 and with_image:
            question = "<image>\n" + question
        out += [{"from": "human", "value": question + ("?" if task != "grounding" else "")},
                {"from": "gpt", "value": answer}]
    return out


def _write_source(parquet: Path, name: str, n: int, task: str, images: Callable[[int], list[str]],
                  seed: int) -> None:
    from datamix.schema import Sample
    from datamix.table import write_samples

    rng = random.Random(seed)

    def samples():
        for i in range(n):
            imgs = images(i)
            yield Sample(id=f"{name}/{i:07d}", source=name, task=task, images=imgs,
                         conversations=_conversation(rng, task, bool(imgs)),
                         meta={"question_ids": [rng.randrange(10**9)]} if task != "conversation" else {})

    write_samples(parquet, samples())


def throughput_inputs(work: Path, scale: float) -> tuple[Path, Path, int]:
    """(parquet, image_root, n): n samples, each with its own distinct JPEG under image_root/img/."""
    n = max(1, int(THROUGHPUT_SAMPLES * scale))
    folder = work / "build" / "throughput"
    stamp = folder / f"inputs-{n}.done"
    parquet, root = folder / "bench.parquet", folder / "images"
    if not stamp.exists():
        print(f"generating throughput inputs: {n:,} samples with distinct 64..128 px JPEGs ...", flush=True)
        shutil.rmtree(folder, ignore_errors=True)
        (root / "img").mkdir(parents=True)
        rng = random.Random(1)
        for i in range(n):
            (root / "img" / f"{i:06d}.jpg").write_bytes(
                _jpeg(rng, rng.randint(64, 128), rng.randint(64, 128), noise=rng.randint(5, 25)))
        _write_source(parquet, "bench", n, "vqa_short", lambda i: [f"img/{i:06d}.jpg"], seed=2)
        stamp.touch()
    return parquet, root, n


def mix_inputs(work: Path, mix_scale: float) -> tuple[Path, dict[str, int]]:
    """One Parquet per LLaVA-1.5 source (sizes x mix_scale), images shared from a per-source pool."""
    sizes = {name: max(1, round(n * mix_scale)) for name, (n, _, _) in LLAVA15_SOURCES.items()}
    folder = work / "build" / f"mix-{sum(sizes.values())}"  # one folder per size: the default and full both cache
    stamp = folder / f"inputs-pool{POOL_PER_SOURCE}.done"
    if not stamp.exists():
        print(f"generating the LLaVA-1.5-shaped mix: {sum(sizes.values()):,} samples in {len(sizes)} sources, "
              f"{POOL_PER_SOURCE:,} shared 32x32 JPEGs per source with images ...", flush=True)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        rng = random.Random(3)
        for index, (name, (_, task, has_images)) in enumerate(LLAVA15_SOURCES.items()):
            pool = 0
            if has_images:
                pool = min(POOL_PER_SOURCE, sizes[name])
                (folder / "images" / name).mkdir(parents=True)
                for j in range(pool):
                    (folder / "images" / name / f"{j:05d}.jpg").write_bytes(_jpeg(rng, 32, 32, noise=10))
            _write_source(folder / f"{name}.parquet", name, sizes[name], task,
                          (lambda i, p=pool: [f"{i % p:05d}.jpg"]) if has_images else (lambda i: []),
                          seed=100 + index)
        stamp.touch()
    return folder, sizes


def write_recipe(path: Path, name: str, sources: list[dict]) -> Path:
    lines = [f"name: {name}", "seed: 0", f"shards: {{max_samples: {MAXCOUNT}, max_bytes: {MAXSIZE}}}", "sources:"]
    for s in sources:
        lines.append(f"  - name: {s['name']}")
        lines += [f"    {k}: {json.dumps(v) if isinstance(v, str) else v}" for k, v in s.items() if k != "name"]
    path.write_text("\n".join(lines) + "\n")
    return path


def mix_recipe(folder: Path, ratio: float) -> Path:
    sources = []
    for name, (_, _, has_images) in LLAVA15_SOURCES.items():
        spec = {"name": name, "parquet": str(folder / f"{name}.parquet"), "ratio": ratio}
        if has_images:
            spec["image_root"] = str(folder / "images" / name)
        if name == "sharegpt":
            spec["format_prompt"] = "none"
        sources.append(spec)
    return write_recipe(folder / f"mix-{ratio:g}.yaml", f"llava15-synth-{ratio:g}", sources)


# ------------------------------------------------------------------------------------------- reporting

def shard_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.tar"))


def _fmt(name: str, r: dict, n: int, nbytes: int) -> str:
    rss = r["peak_rss_bytes"] / 2**20
    kids = r.get("peak_rss_children_bytes", 0) / 2**20
    kid = f" (+ workers {kids:,.0f})" if kids else ""
    return (f"  {name:<40} {r['wall_s']:>7.2f} s {n / r['wall_s']:>9,.0f} samples/s "
            f"{nbytes / 1e6 / r['wall_s']:>7.1f} MB/s {rss:>7,.0f} MiB RSS{kid}")


def bench_throughput(work: Path, scale: float, measure, workers=WORKER_COUNTS) -> None:
    parquet, root, n = throughput_inputs(work.resolve(), scale)  # absolute: recipe paths are recipe-relative
    folder = parquet.parent
    images = sum(p.stat().st_size for p in (root / "img").iterdir())
    print(f"\nShard writing: {n:,} samples, {n:,} distinct JPEGs ({images / 1e6:,.1f} MB, "
          f"{images / n / 1e3:.1f} KB each), shards of {MAXCOUNT:,} samples / {MAXSIZE / 1e6:,.0f} MB")
    recipe = write_recipe(folder / "recipe.yaml", "bench",
                          [{"name": "bench", "parquet": str(parquet), "image_root": str(root), "ratio": 1.0}])
    plain_out = folder / "plain"
    shutil.rmtree(plain_out, ignore_errors=True)
    plain_out.mkdir()
    a = measure("wds_plain", str(parquet), str(root), str(plain_out / "bench-%06d.tar"), str(MAXCOUNT), str(MAXSIZE))
    a_bytes = shard_bytes(plain_out)
    print(_fmt("(a) plain webdataset.ShardWriter loop", a, n, a_bytes), flush=True)
    walls, shards = {}, {}
    for w in workers:
        out = folder / f"datamix-w{w}"
        shutil.rmtree(out, ignore_errors=True)
        b = measure("datamix", "build", str(recipe), "--out", str(out), "--workers", str(w))
        b_bytes = shard_bytes(out)
        walls[w], shards[w] = b["wall_s"], {p.name: p.read_bytes() for p in sorted(out.glob("*.tar"))}
        print(_fmt(f"(b) datamix build --workers {w}", b, n, b_bytes), flush=True)
        print(f"      (b)/(a) throughput: {a['wall_s'] / b['wall_s']:.2f}x   (target >= 0.80x)   "
              f"shard bytes (b)/(a): {b_bytes / a_bytes:.3f}")
    if 1 in walls and 2 in walls:
        print(f"      --workers 2 vs --workers 1: {walls[1] / walls[2]:.2f}x   (target >= 1.50x on 2 cores); "
              f"shards byte-identical: {shards[1] == shards[2]}")
    shutil.rmtree(plain_out, ignore_errors=True)


def bench_scale(work: Path, mix_scale: float, measure, workers: int = 2) -> None:
    folder, sizes = mix_inputs(work.resolve(), mix_scale)
    total = sum(sizes.values())
    label = "the full LLaVA-1.5 665K mix" if mix_scale == 1 else f"--mix-scale {mix_scale:g} of the 665K mix"
    print(f"\nScale: {total:,} samples in {len(sizes)} sources ({label}); images shared from pools of "
          f"{POOL_PER_SOURCE:,} 32x32 JPEGs per source; --workers {workers}")
    results = {}
    for ratio in (0.1, 1.0):
        out = folder / f"out-{ratio:g}"
        shutil.rmtree(out, ignore_errors=True)
        r = measure("datamix", "build", str(mix_recipe(folder, ratio)), "--out", str(out), "--workers", str(workers))
        n = json.loads((out / "manifest.json").read_text())["samples"]
        results[ratio] = r
        print(_fmt(f"ratio {ratio:g}: {n:,} samples", r, n, shard_bytes(out)), flush=True)
        shutil.rmtree(out, ignore_errors=True)
    small, big = (results[k]["peak_rss_total_bytes"] for k in (0.1, 1.0))  # main process + its workers
    print(f"  peak RSS (main + workers) ratio 100%/10%: {big / small:.2f}x (target <= 1.20x); 100% peak "
          f"{big / 2**30:.2f} GiB (target < 2 GiB)")


# ------------------------------------------------------------------------------- memory by build phase

def profile_phases(recipe: str, out: str, workers: int = 1, trace: bool = False) -> None:
    """Run `datamix.builder.build` in this process and print wall time and RSS per phase.

    RSS is sampled from /proc/self/statm every 10 ms by a thread (peak per phase, and at the phase's end);
    with `trace`, tracemalloc also gives the Python-heap peak per phase and the top live allocation sites
    at the end of each phase (slow: 2-3x). Wraps the phase functions of datamix.builder; changes nothing else.
    """
    import os
    import resource
    import threading
    import time
    import tracemalloc

    import datamix.builder as b

    page = os.sysconf("SC_PAGE_SIZE")

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page

    state = {"phase": "startup", "peak": {}}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            value, phase = rss(), state["phase"]
            state["peak"][phase] = max(state["peak"].get(phase, 0), value)
            stop.wait(0.01)

    rows = []

    def wrap(name: str, fn):
        def wrapper(*args, **kwargs):
            outer = state["phase"]
            state["phase"] = name
            if trace:
                tracemalloc.reset_peak()
            start, before = time.perf_counter(), rss()
            try:
                return fn(*args, **kwargs)
            finally:
                after = rss()
                state["peak"][name] = max(state["peak"].get(name, 0), before, after)
                heap = tracemalloc.get_traced_memory() if trace else (0, 0)
                rows.append((name, time.perf_counter() - start, before, after, heap))
                if trace:
                    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, "<frozen *>")])
                    top = snapshot.statistics("lineno")[:4]
                    where = [f"{s.size / 2**20:.0f} MiB {'/'.join(s.traceback[0].filename.split('/')[-2:])}"
                             f":{s.traceback[0].lineno}" for s in top]
                    rows.append((f"  after {name}, live: " + "; ".join(where), None, 0, 0, (0, 0)))
                state["phase"] = outer
        return wrapper

    from datamix.mixdir import MixWriter

    for name in ("prepare_all", "resolve_targets", "check_budgets", "_route", "_write"):
        setattr(b, name, wrap(name, getattr(b, name)))
    MixWriter.finish = wrap("MixWriter.finish", MixWriter.finish)  # index, rejects, stats, card, manifest
    pick = b.pick_source
    b.pick_source = wrap("pick_source", pick)
    if trace:
        tracemalloc.start(1)
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    state["phase"] = "build (other)"
    manifest = b.build(recipe, out, workers=workers, echo=lambda *_: None)
    total = time.perf_counter() - start
    stop.set()
    thread.join()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"build of {manifest['samples']:,} samples, --workers {workers}: {total:.1f} s, "
          f"peak RSS {max(state['peak'].values()) / 2**20:,.0f} MiB (ru_maxrss {maxrss / 2**20:,.0f} MiB)")
    merged: dict[str, list] = {}
    for name, wall, before, after, heap in rows:
        if wall is None:
            print(name)
            continue
        m = merged.setdefault(name, [0, 0.0, before, after, 0, 0])
        m[0] += 1
        m[1] += wall
        m[3] = after
        m[4], m[5] = max(m[4], heap[0]), max(m[5], heap[1])
    print(f"  {'phase':<16} {'calls':>5} {'wall s':>8} {'share':>6} {'RSS before':>11} {'RSS after':>10} "
          f"{'RSS peak':>9}" + ("  py-heap end/peak" if trace else ""))
    for name, (calls, wall, before, after, cur, peak) in merged.items():
        heap = f"  {cur / 2**20:>6,.0f}/{peak / 2**20:,.0f} MiB" if trace else ""
        print(f"  {name:<16} {calls:>5} {wall:>8.1f} {wall / total:>6.1%} {before / 2**20:>7,.0f} MiB "
              f"{after / 2**20:>6,.0f} MiB {state['peak'].get(name, 0) / 2**20:>5,.0f} MiB{heap}")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="memory and time by phase of one `datamix build`")
    parser.add_argument("recipe")
    parser.add_argument("--out", required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--trace", action="store_true", help="tracemalloc: Python-heap peak and top sites per phase")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    profile_phases(args.recipe, args.out, args.workers, args.trace)
