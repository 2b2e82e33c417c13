"""Training configuration: one dataclass, with LLaVA-1.5's recipe (paper App. A.3 / Tab. 9, LLaVA scripts/v1_5) and a tiny CPU model.

Field names carry their subsystem as a prefix (`vit_`, `lm_`, `proj_`), as in nanoVLM's config. Values that
differ from the paper say why in a comment. `TrainConfig.for_stage` picks the stage's defaults: the §8.1
figures when real models are given (`--vision`, `--llm`), smaller batches and a larger learning rate for the
tiny random model, whose LLM has to learn the language from scratch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from datamix.errors import DatamixError

STAGES = ("pretrain", "finetune")
RESOLUTIONS = ("base", "hd")


class TrainError(DatamixError):
    """A training run cannot start or continue: bad options, a mix that does not fit, a missing checkpoint."""


@dataclass
class TinyModelConfig:
    """The offline default: a randomly initialised CLIP tower and Llama LM small enough for a laptop CPU."""

    vit_image_size: int = 48  # demo images: 96 px, one shape per cell of a 3x3 grid; at 48 px a cell = a patch
    vit_patch_size: int = 16  # -> 3x3 = 9 image tokens (the real model has 576)
    vit_hidden: int = 64
    vit_layers: int = 3  # features come from layer -2, so at least 2
    vit_heads: int = 4
    lm_hidden: int = 128
    lm_layers: int = 3
    lm_heads: int = 4
    lm_vocab_size: int = 1024  # BPE merges trained on the mix's text (tokenizer.py)
    lm_max_positions: int = 512


@dataclass
class TrainConfig:
    """Everything a run needs; saved as run.json next to the model so `--resume` and `predict` reuse it."""

    stage: str = "finetune"
    vision: str | None = None  # local HF folder of a CLIP vision model; None = tiny random one
    llm: str | None = None  # local HF folder of a causal LM (Vicuna-7B-v1.5); None = tiny random one
    projector: str = "mlp2x_gelu"  # "linear" = LLaVA-1 ablation, "mlpNx_gelu" for N >= 1
    projector_from: str | None = None  # stage-1 run folder whose projector initialises this run
    vision_init: str | None = None  # tiny model: a `datamix pretrain-vision` folder for its (frozen) tower
    template: str = ""  # "" = the stage's: plain (stage 1) or vicuna_v1 (stage 2)
    image_aspect: str = ""  # "" = the stage's: square (stage 1, crop), pad (stage 2, expand-to-square), anyres (HD)
    resolution: str = "base"  # "hd" = LLaVA-1.5-HD tiles + global view (stage 2 only, hd.py)
    model_max_length: int = 2048  # counts the image tokens, as LLaVA truncates after the splice (§4.5)
    global_batch: int = 0  # 0 = the stage's default (§8.1: 256 / 128)
    micro_batch: int = 0  # per process and step; 0 = min(global, 16)
    lr: float = 0.0  # 0 = the stage's default (§8.1: 1e-3 / 2e-5)
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    clip_grad: float = 0.0  # 0 = no clipping, as the original runs (§8.1, inferred)
    epochs: int = 1
    max_steps: int = 0  # 0 = as many as the epochs give
    save_every: int = 0  # optimizer steps between checkpoints; 0 = only at the end
    keep_checkpoints: int = 2
    seed: int = 0
    workers: int = 2  # DataLoader workers per process
    shuffle_buffer: int = 256
    group_by_modality: bool = False  # §9; default on in stage 2 (set in for_stage)
    precision: str = "auto"  # auto = bf16 autocast where the device supports it, else fp32
    verify_shards: bool = True  # sha256 of every shard against the manifest before the first step
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)

    @property
    def uses_tiny_model(self) -> bool:
        return self.vision is None and self.llm is None

    def for_stage(self) -> TrainConfig:
        """Fill every 0/"" default from the stage and the model size; validate the combination."""
        if self.stage not in STAGES:
            raise TrainError(f"--stage must be one of {', '.join(STAGES)}, got {self.stage!r}")
        if (self.vision is None) != (self.llm is None):
            raise TrainError("give both --vision and --llm (real models) or neither (the tiny offline model)")
        stage1 = self.stage == "pretrain"
        tiny = self.uses_tiny_model
        real_batch, real_lr = (256, 1e-3) if stage1 else (128, 2e-5)
        # The tiny LM starts from random weights, so stage 2 needs a pre-training sized learning rate.
        tiny_batch, tiny_lr = (16, 2e-3) if stage1 else (16, 1e-3)
        filled = dataclasses.replace(
            self,
            template=self.template or ("plain" if stage1 else "vicuna_v1"),
            image_aspect=self.image_aspect or ("square" if stage1 else "anyres" if self.resolution == "hd" else "pad"),
            global_batch=self.global_batch or (tiny_batch if tiny else real_batch),
            lr=self.lr or (tiny_lr if tiny else real_lr),
        )
        filled.micro_batch = self.micro_batch or min(filled.global_batch, 16)
        filled.validate()
        return filled

    def validate(self) -> None:
        if self.template not in ("plain", "vicuna_v1"):
            raise TrainError(f"--template must be plain or vicuna_v1, got {self.template!r}")
        if self.resolution not in RESOLUTIONS:
            raise TrainError(f"--resolution must be base or hd, got {self.resolution!r}")
        if self.resolution == "hd" and self.stage != "finetune":
            raise TrainError("--resolution hd is for stage 2 (finetune): LLaVA-1.5-HD pretrains the projector at "
                             "the base resolution (paper App. A.1); train stage 1 without it and pass it as "
                             "--projector-from")
        if (self.image_aspect == "anyres") != (self.resolution == "hd"):
            raise TrainError(f"image aspect {self.image_aspect!r} does not go with --resolution {self.resolution}: "
                             f"anyres (tiles) is what hd uses, pad or square the base resolution")
        if self.image_aspect not in ("pad", "square", "anyres"):
            raise TrainError(f"image aspect must be pad, square or anyres, got {self.image_aspect!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise TrainError(f"--precision must be auto, fp32 or bf16, got {self.precision!r}")
        if self.global_batch < 1 or self.micro_batch < 1 or self.epochs < 1:
            raise TrainError("batch sizes and --epochs must be positive")

    def grad_accum(self, world_size: int) -> int:
        """Micro-batches per optimizer step; the global batch must split evenly over processes."""
        per_step = self.micro_batch * world_size
        if self.global_batch % per_step:
            raise TrainError(f"global batch {self.global_batch} is not a multiple of micro batch {self.micro_batch}"
                             f" x {world_size} process(es); change --global-batch or --micro-batch")
        return self.global_batch // per_step

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        data = dict(data)
        tiny = TinyModelConfig(**data.pop("tiny", {}))
        return cls(**data, tiny=tiny)
