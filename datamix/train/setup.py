"""Setting a run up: the tokenizer, the image processor and the model, from user paths, a stage-1 run, a resumed
run's own folder, or the tiny offline default (tokenizer trained on the mix's text, random weights).

Rank 0 writes the run folder (run.json, tokenizer, processor); the other ranks wait and read the same files, so
every process tokenizes identically. Random weights come from the seed, so they are identical too.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch.distributed as dist

from datamix.jsonio import load_json_file
from datamix.train.config import TrainConfig, TrainError
from datamix.train.data import mix_shard_counts, read_samples
from datamix.train.model import build_from_paths, build_tiny, load_model, load_projector, set_trainable
from datamix.train.tokenizer import conversation_texts, load_tokenizer, train_tokenizer


def tiny_processor(size: int):
    """CLIP's preprocessing (bicubic shortest-edge resize, center crop, CLIP mean/std) at the tiny image size."""
    try:
        from transformers import CLIPImageProcessorPil as Processor  # no torchvision needed
    except ImportError:
        from transformers import CLIPImageProcessor as Processor
    return Processor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


def load_processor(path: str | Path):
    from transformers import AutoImageProcessor

    try:
        return AutoImageProcessor.from_pretrained(str(path))
    except (OSError, ValueError) as exc:  # no preprocessor_config.json, or a damaged one
        raise TrainError(f"{path}: cannot load the image processor ({str(exc).splitlines()[0]})") from None


def stage1_config(run_dir: Path) -> dict:
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise TrainError(f"--projector-from {run_dir}: no run.json there; give the folder of a finished stage-1 run")
    return run_config(run_dir)


def run_config(run_dir: Path) -> dict:
    """The TrainConfig fields saved in a run's run.json; a damaged file is a TrainError naming it."""
    path = Path(run_dir) / "run.json"
    run = load_json_file(path, "; the run folder is damaged")
    if not isinstance(run, dict) or not isinstance(run.get("config"), dict):
        raise TrainError(f"{path}: not a datamix run (no config); the run folder is damaged")
    return run["config"]


def saved_config(run_dir: Path) -> TrainConfig:
    try:
        return TrainConfig.from_dict(run_config(run_dir))
    except TypeError as exc:  # a field this version does not know, or a missing one
        raise TrainError(f"{Path(run_dir) / 'run.json'}: not a config this version can resume ({exc})") from None


def _write_run(cfg, mix_dir, out_dir):
    """Rank 0: the tokenizer, processor and run.json of a new run."""
    if (out_dir / "run.json").exists():
        raise TrainError(f"{out_dir} already holds a run; use --resume to continue it or give a new --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.projector_from and cfg.uses_tiny_model:
        # A random LLM cannot be re-downloaded: stage 2 takes stage 1's tiny LLM, vision tower and tokenizer.
        tokenizer, processor = load_tokenizer(cfg.projector_from), load_processor(cfg.projector_from)
    elif cfg.uses_tiny_model:
        shards = mix_shard_counts(mix_dir)
        tokenizer = train_tokenizer(conversation_texts(read_samples(list(shards), shards)),
                                    vocab_size=cfg.tiny.lm_vocab_size)
        processor = tiny_processor(cfg.tiny.vit_image_size)
    else:
        tokenizer, processor = load_tokenizer(cfg.llm), load_processor(cfg.vision)
    tokenizer.model_max_length = cfg.model_max_length
    if cfg.resolution == "hd":
        from datamix.train.hd import hd_image_processor, hd_processor, vision_geometry

        geometry = vision_geometry(cfg)  # a LlavaNextProcessor, so that AutoProcessor loads the run
        processor = hd_processor(hd_image_processor(processor, geometry), tokenizer, geometry)
    tokenizer.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    run = {"config": cfg.to_dict(), "mix": str(Path(mix_dir).resolve())}
    (out_dir / "run.json").write_text(json.dumps(run, indent=1) + "\n")


def prepare_run(cfg: TrainConfig, mix_dir: Path, out_dir: Path, *, rank: int, world: int, resume: bool):
    """(config, tokenizer, processor); on --resume the config is the run's own run.json."""
    if resume:
        if not (out_dir / "run.json").is_file():
            raise TrainError(f"--resume: {out_dir} holds no run (run.json missing)")
        saved = saved_config(out_dir)
        cfg = dataclasses.replace(saved, max_steps=cfg.max_steps or saved.max_steps)
    else:
        if cfg.projector_from and cfg.uses_tiny_model and stage1_config(Path(cfg.projector_from))["vision"]:
            s1 = stage1_config(Path(cfg.projector_from))
            cfg = dataclasses.replace(cfg, vision=s1["vision"], llm=s1["llm"])  # stage 2 on stage 1's models
        if cfg.uses_tiny_model:
            # The tiny LM has learnt positions only up to lm_max_positions.
            cfg = dataclasses.replace(cfg, model_max_length=min(cfg.model_max_length, cfg.tiny.lm_max_positions))
        if rank == 0:
            _write_run(cfg, mix_dir, out_dir)
    if world > 1:
        dist.barrier()
    return cfg, load_tokenizer(out_dir), load_processor(out_dir)


def build_model(cfg: TrainConfig, tokenizer, *, resume_from: Path | None):
    """(model, trainable parameters) for the stage; a resumed run's from its checkpoint `resume_from`."""
    if resume_from is not None:
        model = load_model(resume_from)
    elif cfg.projector_from and cfg.uses_tiny_model:
        model = load_model(cfg.projector_from)
        if getattr(model.config, "projector_type", "mlp2x_gelu") != cfg.projector:
            raise TrainError(f"--projector-from {cfg.projector_from} has a {model.config.projector_type} projector, "
                             f"not {cfg.projector}")
    elif cfg.uses_tiny_model:
        model = build_tiny(cfg.tiny, tokenizer, projector=cfg.projector, seed=cfg.seed)
        if cfg.vision_init:
            from datamix.train.vision_pretrain import load_vision_init

            load_vision_init(model, cfg.vision_init)
    else:
        model = build_from_paths(cfg.vision, cfg.llm, tokenizer, projector=cfg.projector)
        if cfg.projector_from:
            load_projector(model, cfg.projector_from)
    if cfg.resolution == "hd" and resume_from is None:  # a resumed HD run is LLaVA-NeXT already
        from datamix.train.hd import to_llava_next

        model = to_llava_next(model, seed=cfg.seed)
    return model, set_trainable(model, cfg.stage)
