"""`make bench`: datamix against the baselines users have today, measured in the same invocation.

`--only convert|academic|regions|build|stats|audit|train|hd|fingerprint|decontam|ray|all`; see each section below
and bench/build_bench.py,
bench/regions_bench.py (the Visual Genome and RefCOCO/+/g converters at train scale), bench/stats_bench.py,
bench/audit_bench.py (`datamix audit` of a generated 665K-record release beside `json.load`),
bench/train_bench.py (the training input pipeline against a LLaVA-style loader, and data_wait in training),
bench/hd_bench.py (the LLaVA-1.5-HD image pipeline against transformers' LLaVA-NeXT image processor),
bench/fingerprint_bench.py (decontamination hashes beside a plain decode; matching 665K against 50K images),
bench/decontam_bench.py (the exclude step's decision on 665K rows beside the selection ranking),
bench/ray_bench.py (`datamix build --engine ray` beside `--engine local`, and Ray's start-up cost).

For a VQAv2-train-scale input (443,757 questions, 4,437,570 answers) and a GQA-balanced-train-scale
input (943,000 questions), each in the official format, it runs in separate fresh processes:
  (a) plain `json.load` of the same files (the floor of any pure-Python reader),
  (b) the naive conversion script (json.load, join in dicts, loop, json.dump LLaVA JSON),
  (c) `datamix convert` end to end (parse, join, merge per image, prompts, validate, Parquet + ledger),
and prints wall time, peak RSS and the ratios. `--scale 0.1` runs a tenth of the size for a quick look.

`--only build` runs the `datamix build` benchmarks instead (bench/build_bench.py: shard-writing throughput
against a plain webdataset loop, and a LLaVA-1.5-shaped 665K mix built at 10% and 100%; `--scale` sizes
the throughput input, `--mix-scale` the mix); `--only all` (the default) runs both.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import build_bench  # noqa: E402
import ray_bench  # noqa: E402
import regions_bench  # noqa: E402
from measure import measure  # noqa: E402
import synth  # noqa: E402

VQA_QUESTIONS = 443_757
GQA_QUESTIONS = 943_000


def inputs(work: Path, scale: float) -> tuple[list[Path], list[Path]]:
    n_vqa, n_gqa = int(VQA_QUESTIONS * scale), int(GQA_QUESTIONS * scale)
    stamp = work / f"inputs-{n_vqa}-{n_gqa}.done"
    vqa_dir, gqa_dir = work / "vqav2", work / "gqa"
    if not stamp.exists():
        print(f"generating inputs: {n_vqa:,} VQAv2 questions, {n_gqa:,} GQA questions ...", flush=True)
        for old in work.glob("inputs-*.done"):
            old.unlink()
        synth.write_vqav2(vqa_dir, n_vqa)
        synth.write_gqa(gqa_dir, n_gqa)
        stamp.touch()
    return sorted(vqa_dir.glob("*.json")), sorted(gqa_dir.glob("*.json"))


def row(name: str, result: dict, input_bytes: int) -> str:
    rss = result["peak_rss_bytes"]
    return (f"  {name:<34} {result['wall_s']:>8.2f} s {rss / 2**20:>9,.0f} MiB   "
            f"RSS/input {rss / input_bytes:>4.2f}x")


def bench_source(label: str, files: list[Path], naive: list[str], work: Path, source: str) -> None:
    size = sum(f.stat().st_size for f in files)
    print(f"\n{label}: {len(files)} file(s), {size / 2**20:,.0f} MiB")
    a = measure("json_load", *map(str, files))
    b = measure(*naive)
    c = measure("datamix", "convert", source, *map(str, files), "--out", str(work / f"{source}.parquet"))
    print(row("(a) json.load only", a, size))
    print(row("(b) naive script -> LLaVA JSON", b, size))
    print(row("(c) datamix convert", c, size))
    print(f"  (c) vs (a): {a['wall_s'] / c['wall_s']:.2f}x faster   (c) vs (b): {b['wall_s'] / c['wall_s']:.2f}x faster, "
          f"{b['peak_rss_bytes'] / c['peak_rss_bytes']:.2f}x less memory")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full train-split sizes")
    parser.add_argument("--work", type=Path, default=Path("bench_out"), help="where inputs and outputs go")
    parser.add_argument("--only", choices=("convert", "academic", "regions", "build", "stats", "audit", "train", "hd",
                                           "fingerprint", "decontam", "ray", "all"),
                        default="all",
                        help="which benchmarks")
    parser.add_argument("--mix-scale", type=float, default=build_bench.DEFAULT_MIX_SCALE,
                        help="fraction of the 665,298-sample LLaVA-1.5 mix for the build scale benchmark")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.only in ("convert", "all"):
        bench_convert(args)
    if args.only in ("academic", "all"):  # okvqa, aokvqa, ocrvqa, textcaps against json.load (academic_bench.py)
        subprocess.run([sys.executable, str(HERE / "academic_bench.py"), "--work", str(args.work),
                        "--scale", str(args.scale)], check=True)
    if args.only in ("regions", "all"):  # bench/regions_bench.py: Visual Genome and RefCOCO/+/g at train scale
        regions_bench.main(args.work, args.scale, measure)
    if args.only in ("build", "all"):
        build_bench.bench_throughput(args.work, args.scale, measure)
        build_bench.bench_scale(args.work, args.mix_scale, measure)
    if args.only in ("stats", "all"):  # its own script: it generates a 665K-row index and times two processes
        subprocess.run([sys.executable, str(HERE / "stats_bench.py"), "--work", str(args.work)], check=True)
    if args.only in ("audit", "all"):  # its own script: a generated 665K-record released file, two processes
        subprocess.run([sys.executable, str(HERE / "audit_bench.py"), "--work", str(args.work)], check=True)
    if args.only in ("train", "all"):  # its own script: loader jobs and a training run, each in a fresh process
        subprocess.run([sys.executable, str(HERE / "train_bench.py"), "--work", str(args.work)], check=True)
    if args.only in ("hd", "all"):  # its own process: one thread, so its samples/s are per core
        subprocess.run([sys.executable, str(HERE / "hd_bench.py")], check=True)
    if args.only in ("fingerprint", "all"):  # its own process: one thread, so its images/s are per core
        subprocess.run([sys.executable, str(HERE / "fingerprint_bench.py")], check=True)
    if args.only in ("decontam", "all"):  # its own process: the exclude step's decision on 665K rows
        subprocess.run([sys.executable, str(HERE / "decontam_bench.py")], check=True)
    if args.only in ("ray", "all"):  # bench/ray_bench.py: the throughput mix on both engines, Ray's fixed cost
        ray_bench.bench_ray(args.work, args.scale, measure)


def bench_convert(args: argparse.Namespace) -> None:
    vqa_files, gqa_files = inputs(args.work, args.scale)
    q, a = (str(f) for f in sorted(vqa_files, key=lambda f: "annotations" in f.name))
    bench_source("VQAv2 train scale", vqa_files, ["naive_vqav2", q, a, str(args.work / "naive_vqav2.json")],
                 args.work, "vqav2")
    bench_source("GQA balanced-train scale", gqa_files, ["naive_gqa", str(gqa_files[0]),
                 str(args.work / "naive_gqa.json")], args.work, "gqa")


if __name__ == "__main__":
    main()
