"""The training input pipeline and the training step of the bundled LLaVA-1.5 (`datamix train`).

    .venv/bin/python bench/train_bench.py [--work bench_out] [--steps 80]
    .venv/bin/python bench/run.py --only train

1. Inputs (once; cached under <work>/train/ with a stamp): `datamix demo-data --n-images 2400`, the demo
   recipe built into a mix (3,287 samples, 33 shards), the mix exported LLaVA's way (`datamix export
   --format llava`: one JSON + image files), and the run set-up of a tiny stage-2 run (`setup.prepare_run`:
   run.json, the BPE tokenizer trained on the mix, the image processor), which both loaders use.

2. Loader throughput, one full epoch per job, each job in a fresh process, workers = 0 and 2:
   (a) datamix: the trainer's own DataLoader, built as loop.py builds it for stage 2 with the tiny default
       config (MixStream + Encoder + make_loader: read shard, decode, expand-to-square, resize, normalise,
       render, tokenize, mask, collate; modality-grouped micro-batches of 16, as `datamix train` in stage 2);
   (b) LLaVA-style baseline (written here, after LLaVA's LazySupervisedDataset): json.load of the exported
       JSON, PIL open per image file, expand-to-square with the mean colour, `transformers.CLIPImageProcessor`
       configured like the tiny vision tower (48 px, CLIP mean/std; built locally), per-sample tokenization
       with the same tokenizer through the same vicuna_v1 render + mask (datamix.train.template.encode),
       LLaVA's pad_sequence collate, a shuffled DataLoader of batch 16.
   Only the storage/I-O path and the batching differ; the per-sample preprocessing is the same code.
   Timing: from the first batch (worker start-up and imports excluded; shown apart) to the end of the epoch.
   "per core" is printed two ways: (i) samples/s / loader processes (1 for workers=0, W for workers=W; the
   main process only receives batches then), (ii) samples per CPU-second of the main process plus its
   workers over the timed window (/proc/<pid>/stat), which is the per-core figure that does not depend on
   how busy the 2 cores are. Issue target: datamix >= 2x the baseline per core.

3. Training step: `datamix train MIX --workers 2 --max-steps N` (tiny model, stage 2) in a temp run folder, in
   a fresh process; mean `data_wait` share of step time and samples/s from its metrics.jsonl, first steps
   excluded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_IMAGES = 2400
BATCH = 16  # the tiny stage-2 micro batch (config.for_stage)
WORKER_COUNTS = (0, 2)
SKIP_STEPS = 5  # warm-up steps left out of the training figures


# ----------------------------------------------------------------------------------------------- inputs

def _cli(*args: str, env: dict | None = None) -> None:
    subprocess.run([sys.executable, "-m", "datamix", *args], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, **(env or {})})


def inputs(work: Path) -> dict[str, Path]:
    folder = work.resolve() / "train"
    paths = {"raw": folder / "raw", "mix": folder / "mix", "json": folder / "llava" / "llava.json",
             "images": folder / "llava" / "images", "setup": folder / "setup-run"}
    stamp = folder / f"inputs-{N_IMAGES}.done"
    if not stamp.exists():
        print(f"generating inputs: demo data with {N_IMAGES:,} images, the demo mix, its LLaVA export, "
              f"a tiny stage-2 run set-up ...", flush=True)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        _cli("demo-data", str(paths["raw"]), "--n-images", str(N_IMAGES))
        recipe = Path(__file__).resolve().parent.parent / "recipes" / "demo.yaml"
        _cli("build", str(recipe), "--out", str(paths["mix"]), env={"DATAMIX_DATA": str(paths["raw"])})
        _cli("export", str(paths["mix"]), "--format", "llava", "--out", str(paths["json"]),
             "--images-out", str(paths["images"]))
        subprocess.run([sys.executable, __file__, "--job", "setup", str(paths["mix"]), str(paths["setup"])],
                       check=True)
        stamp.touch()
    return paths


def job_setup(mix: str, out: str) -> None:
    """The run folder a tiny stage-2 `datamix train` writes first: run.json, tokenizer, processor."""
    from datamix.train.config import TrainConfig
    from datamix.train.setup import prepare_run

    cfg = TrainConfig(stage="finetune", group_by_modality=True).for_stage()  # as the CLI's stage-2 defaults
    prepare_run(cfg, Path(mix), Path(out), rank=0, world=1, resume=False)


# ------------------------------------------------------------------------------------------- the loaders

def _run_setup(setup: str):
    """(config, tokenizer, processor, image_seq_length, image_token_id) of the prepared tiny run."""
    from datamix.train.config import TrainConfig
    from datamix.train.model import build_tiny
    from datamix.train.setup import load_processor
    from datamix.train.tokenizer import load_tokenizer

    cfg = TrainConfig.from_dict(json.loads((Path(setup) / "run.json").read_text())["config"])
    tokenizer, processor = load_tokenizer(setup), load_processor(setup)
    config = build_tiny(cfg.tiny, tokenizer, projector=cfg.projector, seed=cfg.seed).config  # as setup.py
    return cfg, tokenizer, processor, config.image_seq_length, config.image_token_id


def datamix_loader(mix: str, setup: str, workers: int):
    """The trainer's DataLoader for epoch 0 of a fresh run, built as loop.py's training loop builds it
    (MixStream + make_loader)."""
    import dataclasses

    from datamix.train.data import Encoder, MixStream, check_slots, make_loader, mix_shards

    cfg, tokenizer, processor, seq, image_id = _run_setup(setup)
    cfg = dataclasses.replace(cfg, workers=workers)
    shards, _ = mix_shards(mix)
    check_slots(len(shards), 1, workers)
    accum = cfg.grad_accum(1)
    encoder = Encoder(tokenizer, processor, cfg.template, cfg.image_aspect, seq, image_id, cfg.model_max_length)
    stream = MixStream(shards, encoder, batch_size=cfg.micro_batch, megabatch=cfg.micro_batch * accum, epoch=0,
                       seed=cfg.seed, rank=0, world_size=1, skip=[0] * max(workers, 1),
                       shuffle_buffer=cfg.shuffle_buffer, group_by_modality=cfg.group_by_modality,
                       images_only=cfg.template == "plain")
    return make_loader(stream, workers)


def expand2square(pil_img, background_color):
    """LLaVA's llava/mm_utils.py expand2square."""
    from PIL import Image

    width, height = pil_img.size
    if width == height:
        return pil_img
    if width > height:
        result = Image.new(pil_img.mode, (width, width), background_color)
        result.paste(pil_img, (0, (width - height) // 2))
        return result
    result = Image.new(pil_img.mode, (height, height), background_color)
    result.paste(pil_img, ((height - width) // 2, 0))
    return result


class LazySupervisedDataset:  # a torch map-style Dataset (subclassed in baseline_loader, after torch is imported)
    """LLaVA's train.py LazySupervisedDataset: the whole JSON in memory, each image opened from its file."""

    def __init__(self, json_path: str, image_folder: str, tokenizer, processor, *, template: str,
                 image_seq_length: int, image_token_id: int, max_length: int):
        with open(json_path) as f:
            self.list_data_dict = json.load(f)
        self.image_folder, self.tokenizer, self.processor = image_folder, tokenizer, processor
        self.template, self.seq, self.image_id = template, image_seq_length, image_token_id
        self.max_length = max_length

    def __len__(self) -> int:
        return len(self.list_data_dict)

    def __getitem__(self, i: int) -> dict:
        import torch
        from PIL import Image

        from datamix.train.template import encode

        source = self.list_data_dict[i]
        enc = encode(self.tokenizer, source["conversations"], template=self.template, image_seq_length=self.seq,
                     image_token_id=self.image_id, max_length=self.max_length, sample_id=source.get("id", "?"))
        files = source.get("image", [])
        files = [files] if isinstance(files, str) else files
        images = []
        for name in files[:enc.n_images]:
            image = Image.open(os.path.join(self.image_folder, name)).convert("RGB")
            image = expand2square(image, tuple(int(x * 255) for x in self.processor.image_mean))
            images.append(self.processor.preprocess(image, return_tensors="pt")["pixel_values"][0])
        # LLaVA gives a text-only sample a zero image and skips it in the model; the tiny Llava wants no
        # pixels there, so the batch carries only real images (as datamix's collate does).
        return {"input_ids": torch.tensor(enc.input_ids), "labels": torch.tensor(enc.labels), "images": images}


class LlavaCollator:
    """LLaVA's DataCollatorForSupervisedDataset (pad_sequence, truncate, attention = ids != pad, stack images)."""

    def __init__(self, pad_id: int, max_length: int):
        self.pad_id, self.max_length = pad_id, max_length

    def __call__(self, instances: list[dict]) -> dict:
        import torch
        from torch.nn.utils.rnn import pad_sequence

        from datamix.train.template import IGNORE_INDEX

        ids = pad_sequence([x["input_ids"] for x in instances], batch_first=True, padding_value=self.pad_id)
        labels = pad_sequence([x["labels"] for x in instances], batch_first=True, padding_value=IGNORE_INDEX)
        ids, labels = ids[:, :self.max_length], labels[:, :self.max_length]
        # LLaVA's ids.ne(pad) would also drop real <unk> tokens; the lengths are exact and cost the same.
        mask = torch.zeros_like(ids)
        for k, x in enumerate(instances):
            mask[k, :len(x["input_ids"])] = 1
        images = [im for x in instances for im in x["images"]]
        return {"input_ids": ids, "labels": labels, "attention_mask": mask,
                "pixel_values": torch.stack(images) if images else None}


def clip_processor(size: int):
    """`transformers.CLIPImageProcessor` as the tiny vision tower wants it (CLIP mean/std are its defaults)."""
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


def baseline_loader(json_path: str, image_folder: str, setup: str, workers: int):
    import torch
    from torch.utils.data import DataLoader, Dataset

    cfg, tokenizer, run_processor, seq, image_id = _run_setup(setup)
    processor = clip_processor(cfg.tiny.vit_image_size)
    for key in ("size", "crop_size", "image_mean", "image_std", "resample", "do_center_crop", "rescale_factor"):
        if getattr(processor, key) != getattr(run_processor, key):
            raise SystemExit(f"the baseline's CLIPImageProcessor differs from the run's in {key}")

    class Data(LazySupervisedDataset, Dataset):
        pass

    data = Data(json_path, image_folder, tokenizer, processor, template=cfg.template, image_seq_length=seq,
                image_token_id=image_id, max_length=cfg.model_max_length)
    # HF Trainer's defaults: a seeded random sampler, prefetch_factor 2 with workers.
    return DataLoader(data, batch_size=cfg.micro_batch, shuffle=True, num_workers=workers,
                      collate_fn=LlavaCollator(tokenizer.pad_token_id, cfg.model_max_length),
                      generator=torch.Generator().manual_seed(cfg.seed))


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def job_loader(kind: str, workers: str, *args: str) -> None:
    """One epoch of one loader; prints samples, tokens, images, timings and CPU seconds as JSON."""
    workers = int(workers)
    start = time.perf_counter()
    loader = datamix_loader(*args, workers) if kind == "datamix" else baseline_loader(*args, workers)
    it = iter(loader)
    first = next(it)
    t0 = time.perf_counter()
    pids = [w.pid for w in getattr(it, "_workers", [])]
    main0, workers0 = time.process_time(), {p: _cpu_seconds(p) for p in pids}
    workers1 = dict(workers0)
    samples, tokens, images = 0, 0, 0
    for batch in it:
        samples += batch["input_ids"].shape[0]
        tokens += int(batch["attention_mask"].sum())
        images += 0 if batch["pixel_values"] is None else batch["pixel_values"].shape[0]
        for p in pids:  # read as we go: the iterator ends its workers when the epoch ends
            with contextlib.suppress(OSError):
                workers1[p] = _cpu_seconds(p)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - main0 + sum(workers1[p] - workers0[p] for p in pids)
    n0, i0 = first["input_ids"].shape[0], (0 if first["pixel_values"] is None else first["pixel_values"].shape[0])
    print(json.dumps({"samples": samples, "wall_s": wall, "cpu_s": cpu, "first_batch_s": t0 - start,
                      "epoch_samples": samples + n0, "epoch_tokens": tokens + int(first["attention_mask"].sum()),
                      "epoch_images": images + i0, "workers": workers}))


def job_profile(kind: str, workers: str, *args: str) -> None:
    """Like job_loader without the figures: a target for `py-spy record -- python train_bench.py --job profile`."""
    for _ in (datamix_loader(*args, int(workers)) if kind == "datamix" else baseline_loader(*args, int(workers))):
        pass


# ------------------------------------------------------------------------------------------- reporting

def run_job(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--job", *args], check=False, capture_output=True,
                         text=True)
    if out.returncode:
        sys.exit(f"job {' '.join(args[:2])} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_loader(paths: dict[str, Path], reps: int) -> None:
    n = json.loads((paths["mix"] / "manifest.json").read_text())["samples"]
    shards = len(list(paths["mix"].glob("*.tar")))
    print(f"\nLoader: one epoch of {n:,} samples (the demo mix, {shards} shards; LLaVA export: 1 JSON + "
          f"{sum(1 for p in paths['images'].rglob('*') if p.is_file()):,} image files), batch {BATCH}, "
          f"tiny stage-2 preprocessing (48 px, vicuna_v1); each job a fresh process, median of {reps}; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the start")
    print(f"  {'loader':<36} {'workers':>7} {'samples/s':>10} {'per proc':>9} {'per CPU-s':>10} "
          f"{'CPU use':>8} {'1st batch':>9}   samples/s range")
    results = {}
    for w in WORKER_COUNTS:
        runs = {"a": [], "b": []}
        for _ in range(reps):  # interleaved, so a burst of load from elsewhere hits both sides
            runs["b"].append(run_job("loader", "llava", str(w), str(paths["json"]), str(paths["images"]),
                                     str(paths["setup"])))
            runs["a"].append(run_job("loader", "datamix", str(w), str(paths["mix"]), str(paths["setup"])))
        a, b = (sorted(runs[k], key=lambda r: r["samples"] / r["wall_s"])[reps // 2] for k in "ab")  # median
        results[w] = (a, b)
        for label, r, rs in (("(a) datamix trainer DataLoader", a, runs["a"]),
                             ("(b) LLaVA-style baseline", b, runs["b"])):
            rate = r["samples"] / r["wall_s"]
            rates = [q["samples"] / q["wall_s"] for q in rs]
            spread = f"{min(rates):,.0f}-{max(rates):,.0f}"
            print(f"  {label:<36} {w:>7} {rate:>10,.0f} {rate / max(w, 1):>9,.0f} {r['samples'] / r['cpu_s']:>10,.0f} "
                  f"{r['cpu_s'] / r['wall_s']:>7.2f}x {r['first_batch_s']:>8.1f}s   {spread}", flush=True)
        ra, rb = (r["samples"] / r["wall_s"] for r in (a, b))
        ca, cb = (r["samples"] / r["cpu_s"] for r in (a, b))
        print(f"      workers={w}: (a)/(b) samples/s (and per process) {ra / rb:.2f}x, "
              f"per CPU-second {ca / cb:.2f}x   (target >= 2x per core): "
              f"{'OK' if ra / rb >= 2 and ca / cb >= 2 else 'MISSED'}")
    keys = ("epoch_samples", "epoch_tokens", "epoch_images")
    same = len({tuple(r[k] for k in keys) for pair in results.values() for r in pair}) == 1
    a, b = results[WORKER_COUNTS[0]]
    print(f"  same work in both: {a['epoch_samples']:,} samples, {a['epoch_tokens']:,} tokens (image tokens "
          f"included), {a['epoch_images']:,} images per epoch" + ("" if same else
          f"  -- MISMATCH between the jobs: {[[r[k] for k in keys] for p in results.values() for r in p]}"))
    print("  samples/s: from the first batch to the end of the epoch; per proc: samples/s / loader processes "
          "(1 for workers=0, W for W workers); per CPU-s: samples / CPU seconds of the main process + workers "
          "in that window; CPU use: CPU seconds / wall seconds; 1st batch: start-up (imports, set-up, workers)")


def bench_train(paths: dict[str, Path], steps: int, workers: int = 2) -> None:
    print(f"\nTraining step: `datamix train --workers {workers} --max-steps {steps}` (tiny model, stage 2, "
          f"batch {BATCH}), figures over steps {SKIP_STEPS + 1}..{steps}", flush=True)
    with tempfile.TemporaryDirectory(prefix="datamix-train-bench-") as tmp:
        run = Path(tmp) / "run"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "datamix", "train", str(paths["mix"]), "--out", str(run),
                        "--workers", str(workers), "--max-steps", str(steps)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    kept = rows[SKIP_STEPS:]
    step_s = sum(r["step_s"] for r in kept)
    wait = sum(r["data_wait"] * r["step_s"] for r in kept)
    waits = sorted(r["data_wait"] for r in kept)
    print(f"  {len(rows)} steps in {wall:.1f} s wall (process incl. start-up and saving)")
    print(f"  mean step {step_s / len(kept) * 1000:.0f} ms, {BATCH * len(kept) / step_s:,.0f} samples/s, "
          f"{sum(r['tokens_per_s'] * r['step_s'] for r in kept) / step_s:,.0f} tokens/s")
    print(f"  data_wait share of step time: {wait / step_s:.1%} (time-weighted), mean of steps "
          f"{sum(waits) / len(waits):.1%}, median {waits[len(waits) // 2]:.1%}, max {waits[-1]:.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("bench_out"))
    parser.add_argument("--steps", type=int, default=80, help="training steps of the data_wait measurement")
    parser.add_argument("--reps", type=int, default=3, help="runs of each loader job (the median is shown)")
    parser.add_argument("--only", choices=("loader", "train", "all"), default="all")
    parser.add_argument("--job", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        return {"setup": job_setup, "loader": job_loader, "profile": job_profile}[args.job[0]](*args.job[1:])
    paths = inputs(args.work)
    if args.only in ("loader", "all"):
        bench_loader(paths, args.reps)
    if args.only in ("train", "all"):
        bench_train(paths, args.steps)


if __name__ == "__main__":
    main()
