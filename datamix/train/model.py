"""The LLaVA-1.5 model through transformers: CLIP vision tower + projector + causal LM (LLaVA clip_encoder.py, multimodal_projector/builder.py, llava_arch.py).

`LlavaForConditionalGeneration` already does what §6-§7 describe: features of `hidden_states[-2]`
(`vision_feature_layer=-2`), CLS dropped (`vision_feature_select_strategy="default"`), projected features written
over the image-token positions. The only addition is the projector family of §6.2: `mlp2x_gelu` is transformers'
own projector (same parameter names, so such a run loads with plain `LlavaForConditionalGeneration`); `linear` and
`mlpNx_gelu` are recorded in the config as `projector_type` and built by `DatamixLlava`, which loads with its own
`from_pretrained`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from torch import nn
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

from datamix.train.config import TinyModelConfig, TrainError
from datamix.train.template import IMAGE_TOKEN

PROJECTOR_PREFIX = "model.multi_modal_projector."


def projector_depth(projector_type: str) -> int:
    """`linear` -> 1, `mlpNx_gelu` -> N (builder.py's regex); anything else is an error naming the choices."""
    if projector_type == "linear":
        return 1
    match = re.fullmatch(r"mlp(\d+)x_gelu", projector_type)
    if not match or int(match.group(1)) < 1:
        raise TrainError(f"unknown projector {projector_type!r}; use linear, mlp2x_gelu or mlpNx_gelu with N >= 1")
    return int(match.group(1))


class Projector(nn.Module):
    """Linear(vision -> lm) then (GELU, Linear(lm -> lm)) x (depth - 1); named like transformers' projector."""

    def __init__(self, vision_hidden: int, lm_hidden: int, depth: int):
        super().__init__()
        self.depth = depth
        self.linear_1 = nn.Linear(vision_hidden, lm_hidden)
        self.act = nn.GELU()
        for k in range(2, depth + 1):
            setattr(self, f"linear_{k}", nn.Linear(lm_hidden, lm_hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear_1(x)
        for k in range(2, self.depth + 1):
            x = getattr(self, f"linear_{k}")(self.act(x))
        return x


class DatamixLlava(LlavaForConditionalGeneration):
    """Transformers' Llava with the projector chosen by `config.projector_type` (default mlp2x_gelu)."""

    def __init__(self, config: LlavaConfig):
        super().__init__(config)
        kind = getattr(config, "projector_type", "mlp2x_gelu")
        if kind != "mlp2x_gelu":
            self.model.multi_modal_projector = Projector(
                config.vision_config.hidden_size, config.text_config.hidden_size, projector_depth(kind))
            self.post_init()


def llava_config(vision_config, text_config, *, tokenizer, projector: str) -> LlavaConfig:
    projector_depth(projector)  # fail early on a bad name
    patches = (vision_config.image_size // vision_config.patch_size) ** 2
    return LlavaConfig(vision_config=vision_config, text_config=text_config,
                       image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN), image_seq_length=patches,
                       vision_feature_layer=-2, vision_feature_select_strategy="default",
                       projector_hidden_act="gelu", projector_type=projector, loss_type="ForCausalLM")


def build_tiny(tiny: TinyModelConfig, tokenizer, *, projector: str, seed: int) -> DatamixLlava:
    """A randomly initialised tiny LLaVA; the same seed gives the same weights on every process."""
    vision = CLIPVisionConfig(image_size=tiny.vit_image_size, patch_size=tiny.vit_patch_size,
                              hidden_size=tiny.vit_hidden, intermediate_size=4 * tiny.vit_hidden,
                              num_hidden_layers=tiny.vit_layers, num_attention_heads=tiny.vit_heads)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=tiny.lm_hidden, intermediate_size=4 * tiny.lm_hidden,
                       num_hidden_layers=tiny.lm_layers, num_attention_heads=tiny.lm_heads,
                       max_position_embeddings=tiny.lm_max_positions, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    return DatamixLlava(llava_config(vision, text, tokenizer=tokenizer, projector=projector))


def build_from_paths(vision_path: str, llm_path: str, tokenizer, *, projector: str) -> DatamixLlava:
    """Assemble LLaVA from a local CLIP folder and a local causal-LM folder (a user's ViT-L/14-336 and Vicuna)."""
    from transformers import AutoModelForCausalLM, CLIPVisionModel

    for path in (vision_path, llm_path):
        if not Path(path, "config.json").is_file():
            raise TrainError(f"{path}: not a Hugging Face model folder (no config.json)")
    vision = CLIPVisionModel.from_pretrained(vision_path)
    llm = AutoModelForCausalLM.from_pretrained(llm_path)
    llm.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=64)  # room for <image>, as llava-hf does
    model = DatamixLlava(llava_config(vision.config, llm.config, tokenizer=tokenizer, projector=projector))
    model.model.vision_tower.load_state_dict(vision.state_dict())
    model.model.language_model.load_state_dict(llm.model.state_dict())
    model.lm_head.load_state_dict(llm.lm_head.state_dict())
    return model


def load_model(path: str | Path) -> DatamixLlava:
    """A run folder or checkpoint (any projector type; an HD run is a LLaVA-NeXT model, hd.py); missing or
    damaged weights are a TrainError naming them."""
    import json

    config = Path(path, "config.json")
    if not config.is_file():
        raise TrainError(f"{path}: no model there (config.json missing); give a run folder or a checkpoint")
    problem = weights_problem(path)
    if problem:
        raise TrainError(f"{path}: cannot load the model: {problem}")
    if json.loads(config.read_text()).get("model_type") == "llava_next":
        from transformers import LlavaNextForConditionalGeneration

        return LlavaNextForConditionalGeneration.from_pretrained(str(path))
    return DatamixLlava.from_pretrained(str(path))


def weights_problem(path: str | Path) -> str | None:
    """What makes the safetensors weights in `path` unloadable (missing, truncated, not safetensors), or None.

    Cheap: each file's header and its size against the tensors the header lists (safetensors checks that the
    data exactly covers the file), not the tensor bytes themselves, which have no checksum to check against.
    """
    path = Path(path)
    index = path / "model.safetensors.index.json"  # weights sharded by save_pretrained (large models)
    if index.is_file():
        try:
            files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError):
            return f"{index} is damaged (no weight_map)"
    elif (path / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        return f"no weights in {path} (model.safetensors missing)"
    for name in files:
        problem = _safetensors_problem(path / name)
        if problem:
            return problem
    return None


def _safetensors_problem(file: Path) -> str | None:
    from safetensors import SafetensorError, safe_open

    if not file.is_file():
        return f"{file} is missing"
    try:
        with safe_open(str(file), framework="pt") as f:
            f.keys()
    except (SafetensorError, OSError) as exc:
        return f"{file} is damaged or truncated ({exc})"
    return None


def load_projector(model: DatamixLlava, run_dir: str | Path) -> None:
    """Initialise the projector from a stage-1 run, exactly (§6.2); a shape mismatch is a clear error (§12.10)."""
    from safetensors.torch import load_file

    files = sorted(Path(run_dir).glob("model*.safetensors"))
    if not files:
        raise TrainError(f"--projector-from {run_dir}: no model*.safetensors there; give a finished stage-1 run")
    problem = weights_problem(run_dir)
    if problem:
        raise TrainError(f"--projector-from {run_dir}: {problem}")
    weights = {}
    for f in files:
        weights.update({k[len(PROJECTOR_PREFIX):]: v for k, v in load_file(f).items() if k.startswith(PROJECTOR_PREFIX)})
    try:
        model.model.multi_modal_projector.load_state_dict(weights)
    except RuntimeError as exc:
        raise TrainError(f"--projector-from {run_dir}: projector does not fit this model (it must come from a run "
                         f"with the same vision tower, LLM and --projector): {str(exc).splitlines()[0]}") from None


def set_trainable(model: DatamixLlava, stage: str) -> list[nn.Parameter]:
    """Stage 1: projector only. Stage 2: projector + LLM (embeddings, layers, lm_head). Vision tower: never (§8.2).
    HD's row-end token (`image_newline`) is new and learnt with the projector."""
    model.requires_grad_(False)
    model.model.multi_modal_projector.requires_grad_(True)
    if getattr(model.model, "image_newline", None) is not None:
        model.model.image_newline.requires_grad_(True)
    if stage == "finetune":
        model.model.language_model.requires_grad_(True)
        model.lm_head.requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]
