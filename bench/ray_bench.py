"""`bench/run.py --only ray`: the same build on the local engine and on Ray, in the same invocation.

Input: bench/build_bench.py's throughput mix (20,000 samples at scale 1, each with its own small real JPEG,
one converted Parquet source, shards of 2,000 samples / 64 MB). In fresh processes (bench/measure.py):
  (a) `datamix build --engine local --workers 2`;
  (b) `datamix build --engine ray --workers 2` (a local Ray with 2 CPUs, started and shut down by the build);
  (c) Ray's fixed cost alone: `ray.init(num_cpus=2)`, the first task, `ray.shutdown()`, timed inside one process.
Prints samples/s of (a) and (b), the fixed cost (c), and (b) once started: samples / ((b) - (c)), beside (a).
Issue target: (b) once started >= 0.8x (a). The shards of (a) and (b) are compared byte for byte.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import build_bench  # noqa: E402

CPUS = 2


def startup_cost(cpus: int) -> dict:
    """Seconds of ray.init, the first (empty) task and ray.shutdown, in this process."""
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=cpus, logging_level="ERROR")
    inited = time.perf_counter()
    ray.get(ray.remote(lambda: None).remote())
    first = time.perf_counter()
    ray.shutdown()
    return {"init_s": inited - start, "first_task_s": first - inited, "shutdown_s": time.perf_counter() - first}


def bench_ray(work: Path, scale: float, measure) -> None:
    parquet, root, n = build_bench.throughput_inputs(work.resolve(), scale)
    folder = parquet.parent
    recipe = build_bench.write_recipe(folder / "recipe.yaml", "bench",
                                      [{"name": "bench", "parquet": str(parquet), "image_root": str(root),
                                        "ratio": 1.0}])
    print(f"\nRay engine: {n:,} samples with distinct JPEGs, --workers {CPUS} locally and a local Ray of {CPUS} CPUs")
    walls, shards = {}, {}
    for engine in ("local", "ray"):
        out = folder / f"engine-{engine}"
        shutil.rmtree(out, ignore_errors=True)
        r = measure("datamix", "build", str(recipe), "--out", str(out), "--engine", engine, "--workers", str(CPUS))
        walls[engine], shards[engine] = r["wall_s"], {p.name: p.read_bytes() for p in sorted(out.glob("*.tar"))}
        print(f"  (a) --engine local --workers {CPUS}" if engine == "local" else f"  (b) --engine ray ({CPUS} CPUs)",
              f"{r['wall_s']:>8.2f} s {n / r['wall_s']:>9,.0f} samples/s", flush=True)
        shutil.rmtree(out, ignore_errors=True)
    cost = json.loads(subprocess.run([sys.executable, __file__, "--startup", str(CPUS)], check=True,
                                     capture_output=True, text=True).stdout.splitlines()[-1])
    fixed = sum(cost.values())
    started = walls["ray"] - fixed
    print(f"  (c) Ray fixed cost: init {cost['init_s']:.2f} s + first task {cost['first_task_s']:.2f} s + "
          f"shutdown {cost['shutdown_s']:.2f} s = {fixed:.2f} s")
    print(f"  (b) once started: {started:.2f} s {n / started:,.0f} samples/s; ray/local "
          f"{walls['local'] / started:.2f}x (target >= 0.80x); with start-up {walls['local'] / walls['ray']:.2f}x; "
          f"shards byte-identical: {shards['local'] == shards['ray']}")


if __name__ == "__main__" and sys.argv[1:2] == ["--startup"]:
    print(json.dumps(startup_cost(int(sys.argv[2]))))
