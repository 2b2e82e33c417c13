"""`datamix train` and `datamix predict`: the bundled LLaVA-1.5 trainer (datamix/train), the only torch user."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from datamix.cli import app, fails_cleanly


@app.command()
@fails_cleanly
def train(
    mix_dir: Annotated[Path, typer.Argument(help="Mix folder written by `datamix build` (manifest.json + shards).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder: model, checkpoints, metrics.")],
    stage: Annotated[str, typer.Option(help="pretrain (stage 1: projector only) or finetune (stage 2: + LLM).")]
    = "finetune",
    vision: Annotated[str | None, typer.Option(help="Local HF folder of a CLIP vision model; default: tiny random.")]
    = None,
    llm: Annotated[str | None, typer.Option(help="Local HF folder of a causal LM (e.g. Vicuna-7B-v1.5); default: tiny.")]
    = None,
    projector: Annotated[str, typer.Option(help="mlp2x_gelu, linear (LLaVA-1) or mlpNx_gelu.")] = "mlp2x_gelu",
    projector_from: Annotated[str | None, typer.Option(help="Stage-1 run folder whose projector starts this run.")] = None,
    resolution: Annotated[str, typer.Option(help="base, or hd: LLaVA-1.5-HD tiles + global view, saved as a "
                                                 "LLaVA-NeXT checkpoint (stage 2 only).")] = "base",
    vision_init: Annotated[str | None, typer.Option(help="Tiny model: a `datamix pretrain-vision` folder whose "
                                                         "tower it uses (frozen).")] = None,
    max_steps: Annotated[int, typer.Option(help="Stop after this many optimizer steps (0: the epochs decide).")] = 0,
    epochs: Annotated[int, typer.Option(help="Passes over the mix.")] = 1,
    global_batch: Annotated[int, typer.Option(help="Samples per optimizer step over all processes "
                                                   "(0: 256 / 128 for real models as LLaVA-1.5, 16 for tiny).")] = 0,
    micro_batch: Annotated[int, typer.Option(help="Samples per process and forward pass (0: min(global, 16)).")]
    = 0,
    lr: Annotated[float, typer.Option(help="Peak learning rate (0: 1e-3 / 2e-5 as LLaVA-1.5; tiny: 2e-3 / 1e-3).")]
    = 0.0,
    clip_grad: Annotated[float, typer.Option(help="Clip the gradient norm to this (0: no clipping).")] = 0.0,
    model_max_length: Annotated[int, typer.Option(help="Token limit per sample, image tokens included.")] = 2048,
    save_every: Annotated[int, typer.Option(help="Checkpoint every N steps (0: only at the end).")] = 0,
    workers: Annotated[int, typer.Option(help="DataLoader workers per process.")] = 2,
    group_by_modality: Annotated[bool | None, typer.Option(
        help="Single-modality, length-grouped batches (LLaVA-1.5 stage 2).")] = None,
    precision: Annotated[str, typer.Option(help="auto (bf16 where supported), fp32 or bf16.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seeds the random model, the shard order and the shuffles.")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint.")]
    = False,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Skip hashing every shard against the manifest "
                                            "before training (sizes and sample counts are still checked).")] = False,
) -> None:
    """Train LLaVA-1.5 on a mix (works under `torchrun --nproc_per_node N`)."""
    from datamix.train.config import TrainConfig
    from datamix.train.loop import train as run_train

    if group_by_modality is None:
        group_by_modality = stage == "finetune"  # LLaVA-1.5 groups in stage 2 only (§1)
    cfg = TrainConfig(stage=stage, vision=vision, llm=llm, projector=projector, projector_from=projector_from,
                      resolution=resolution,
                      vision_init=vision_init,
                      max_steps=max_steps, epochs=epochs, global_batch=global_batch, micro_batch=micro_batch, lr=lr,
                      clip_grad=clip_grad, model_max_length=model_max_length, save_every=save_every, workers=workers,
                      group_by_modality=group_by_modality, precision=precision, seed=seed,
                      verify_shards=not no_verify)
    state = run_train(cfg.for_stage(), mix_dir, out, resume=resume, echo=typer.echo)
    typer.echo(f"done: {state['step']} steps")


@app.command()
@fails_cleanly
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A finished `datamix train` run folder, or one of its "
                                                   "checkpoints/step-N folders.")],
    mix_dir: Annotated[Path, typer.Argument(help="Mix whose short-answer questions are asked.")],
    n: Annotated[int, typer.Option("--n", help="Number of questions.")] = 50,
    max_new_tokens: Annotated[int, typer.Option(help="Longest answer generated.")] = 16,
    blank_images: Annotated[bool, typer.Option("--blank-images", help="Image ablation: replace every image by a "
                                               "blank one of the mean colour (what the model knows without it).")]
    = False,
) -> None:
    """Greedy answers with the run's template; prints VQA accuracy next to the majority-answer baselines."""
    from datamix.train.predict import predict as run_predict

    run_predict(run_dir, mix_dir, n=n, max_new_tokens=max_new_tokens, blank_images=blank_images, echo=typer.echo)


@app.command("pretrain-vision")
@fails_cleanly
def pretrain_vision(
    mix_dir: Annotated[Path, typer.Argument(help="Mix whose image samples (image + its text) are the pairs.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the pretrained tiny vision tower.")],
    steps: Annotated[int, typer.Option(help="Optimizer steps of the contrastive stage.")] = 400,
    batch: Annotated[int, typer.Option(help="Image-text pairs per step (the in-batch negatives).")] = 64,
    lr: Annotated[float, typer.Option(help="Peak learning rate (cosine schedule, 5% warm-up).")] = 5e-4,
    seed: Annotated[int, typer.Option(help="Seeds the random CLIP and the batch order.")] = 0,
) -> None:
    """Stage 0 of the tiny model: CLIP-style contrastive training of its vision tower (use with --vision-init)."""
    from datamix.train.vision_pretrain import pretrain_vision as run

    run(mix_dir, out, steps=steps, batch=batch, lr=lr, seed=seed, echo=typer.echo)
