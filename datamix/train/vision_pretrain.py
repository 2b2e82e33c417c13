"""Stage 0 for the tiny offline model: a short CLIP-style contrastive pre-training of its vision tower.

LLaVA-1.5 starts from a pretrained CLIP ViT-L/14-336 and keeps it frozen in both stages (§8.2). The tiny
offline model has no such checkpoint, and a frozen *random* tower leaves the LLM to guess from the question
alone. So, before stage 1, the tiny tower is trained the way CLIP was: transformers' `CLIPModel` with its
symmetric InfoNCE loss (`return_loss=True`) on (image, text) pairs of the mix itself, the text being the
questions and answers of each image sample (format prompts and `<image>` removed). Only the vision tower is
kept; stages 1 and 2 load it with `--vision-init` and never update it, as LLaVA-1.5 does with CLIP.

The output folder is a plain `CLIPVisionModel` folder (config.json, model.safetensors) plus the image
processor and `pretrain.json` (loss and in-batch retrieval accuracy at the start and the end).
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np
import torch

from datamix.prompts import FORMAT_PROMPTS
from datamix.train.config import TinyModelConfig, TrainError
from datamix.train.data import ImagePrep, mix_shard_counts, open_image, read_samples
from datamix.train.template import IMAGE_TOKEN

MAX_TEXT_TOKENS = 64


def caption(conversations: list[dict]) -> str:
    """The text of an image sample as one caption: every turn, without `<image>` and format prompts."""
    parts = []
    for turn in conversations:
        text = turn["value"].replace(IMAGE_TOKEN, "")
        for prompt in FORMAT_PROMPTS.values():
            if prompt:
                text = text.replace(prompt, "")
        parts.append(" ".join(text.split()))
    return " ".join(p for p in parts if p)


def image_text_pairs(mix_dir: Path, limit: int = 20_000) -> list[tuple[bytes, str, str]]:
    """(first image's bytes, caption, where) of the mix's image samples, in mix order."""
    shards = mix_shard_counts(mix_dir)
    pairs = []
    for sample in read_samples(list(shards), shards):
        if sample["_images"]:
            where = f"{sample['_shard']}: sample {sample.get('id', '?')} image 0"
            pairs.append((sample["_images"][0], caption(sample["conversations"]), where))
            if len(pairs) >= limit:
                break
    if len(pairs) < 8:
        raise TrainError(f"{mix_dir}: {len(pairs)} image samples; contrastive pre-training needs at least 8")
    return pairs


def vision_config(tiny: TinyModelConfig):
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(image_size=tiny.vit_image_size, patch_size=tiny.vit_patch_size,
                            hidden_size=tiny.vit_hidden, intermediate_size=4 * tiny.vit_hidden,
                            num_hidden_layers=tiny.vit_layers, num_attention_heads=tiny.vit_heads)


def _clip_model(tiny: TinyModelConfig, vocab_size: int, pad_id: int):
    """A tiny CLIP whose text tower pools at an end-of-text id of its own, `vocab_size` (CLIP treats an
    `eos_token_id` of 2, ours, as a legacy config and pools at the largest id instead)."""
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig

    eos_id = vocab_size
    text = CLIPTextConfig(vocab_size=vocab_size + 1, hidden_size=tiny.vit_hidden,
                          intermediate_size=4 * tiny.vit_hidden,
                          num_hidden_layers=2, num_attention_heads=tiny.vit_heads,
                          max_position_embeddings=MAX_TEXT_TOKENS, eos_token_id=eos_id, pad_token_id=pad_id,
                          bos_token_id=eos_id)
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision_config(tiny).to_dict(),
                        projection_dim=tiny.vit_hidden)
    return CLIPModel(config)


def _texts(tokenizer, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids ending in the end-of-text id `len(tokenizer)` (see `_clip_model`) and the attention mask."""
    eos, pad = len(tokenizer), tokenizer.pad_token_id
    rows = [tokenizer(c, add_special_tokens=False)["input_ids"][:MAX_TEXT_TOKENS - 1] + [eos] for c in captions]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(r)] = 1
    return ids, mask


def _pixels(pairs, processor) -> torch.Tensor:
    """Every image through the tiny CLIP preprocessing (square crop, as stage 1), as one tensor."""
    prep = ImagePrep.of(processor)
    if prep is None:
        raise TrainError("contrastive pre-training needs the PIL CLIP image processor")
    return prep.normalize(np.stack([prep.crop(open_image(data, processor, "square", where))
                                    for data, _, where in pairs]))


@torch.no_grad()
def retrieval_accuracy(model, pixels, ids, mask, batch: int) -> float:
    """Share of images whose own caption scores highest among the captions of their batch (chance: 1/batch)."""
    model.eval()
    hits = n = 0
    for start in range(0, len(pixels) - batch + 1, batch):
        sl = slice(start, start + batch)
        logits = model(input_ids=ids[sl], attention_mask=mask[sl], pixel_values=pixels[sl]).logits_per_image
        hits += int((logits.argmax(dim=1) == torch.arange(batch)).sum())
        n += batch
    model.train()
    return hits / max(n, 1)


def pretrain_vision(mix_dir: Path, out_dir: Path, *, tiny: TinyModelConfig | None = None, steps: int = 400,
                    batch: int = 64, lr: float = 5e-4, seed: int = 0, echo=print) -> dict:
    """Train a tiny CLIP on the mix's image samples; save its vision tower to `out_dir`; return the summary."""
    from transformers import CLIPVisionModel, get_cosine_schedule_with_warmup

    from datamix.train.setup import tiny_processor
    from datamix.train.tokenizer import train_tokenizer

    tiny = tiny or TinyModelConfig()
    out_dir = Path(out_dir)
    if (out_dir / "pretrain.json").exists():
        raise TrainError(f"{out_dir} already holds a pretrained vision tower; give a new --out")
    start = time.perf_counter()
    pairs = image_text_pairs(Path(mix_dir))
    captions = [c for _, c, _ in pairs]
    tokenizer = train_tokenizer(captions, vocab_size=tiny.lm_vocab_size)
    processor = tiny_processor(tiny.vit_image_size)
    pixels, (ids, mask) = _pixels(pairs, processor), _texts(tokenizer, captions)
    batch = min(batch, len(pairs))
    torch.manual_seed(seed)
    model = _clip_model(tiny, len(tokenizer), tokenizer.pad_token_id)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    scheduler = get_cosine_schedule_with_warmup(optimizer, max(1, steps // 20), steps)
    held = min(len(pairs) // 4, 512) // batch * batch  # the last images, never trained on, for the accuracy
    train_n = len(pairs) - held
    before = retrieval_accuracy(model, pixels[train_n:], ids[train_n:], mask[train_n:], batch) if held else None
    rng, order, losses = random.Random(seed), [], []
    model.train()
    for step in range(steps):
        if len(order) < batch:
            order += rng.sample(range(train_n), train_n)
        idx, order = torch.tensor(order[:batch]), order[batch:]
        loss = model(input_ids=ids[idx], attention_mask=mask[idx], pixel_values=pixels[idx], return_loss=True).loss
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    after = retrieval_accuracy(model, pixels[train_n:], ids[train_n:], mask[train_n:], batch) if held else None
    tower = CLIPVisionModel(model.config.vision_config)
    tower.load_state_dict(model.vision_model.state_dict())
    out_dir.mkdir(parents=True, exist_ok=True)
    tower.save_pretrained(out_dir, safe_serialization=True)
    processor.save_pretrained(out_dir)
    summary = {"pairs": len(pairs), "held_out": held, "steps": steps, "batch": batch, "lr": lr, "seed": seed,
               "loss_first": round(losses[0], 4), "loss_last": round(float(np.mean(losses[-10:])), 4),
               "retrieval_before": before, "retrieval_after": after, "chance": 1 / batch,
               "seconds": round(time.perf_counter() - start, 1)}
    (out_dir / "pretrain.json").write_text(json.dumps(summary, indent=1) + "\n")
    acc = "" if after is None else (f"; held-out in-batch retrieval {before:.0%} -> {after:.0%} "
                                    f"(chance {1 / batch:.0%})")
    echo(f"vision tower pretrained on {len(pairs):,} image-text pairs, {steps} steps x {batch}: contrastive loss "
         f"{summary['loss_first']:.2f} -> {summary['loss_last']:.2f}{acc} in {summary['seconds']:.0f} s -> {out_dir}")
    return summary


def load_vision_init(model, path: str | Path) -> None:
    """Copy a pretrained tower (a `pretrain-vision` folder) into the tiny model; it must have the same shape."""
    from transformers import CLIPVisionModel

    from datamix.train.model import weights_problem

    path = Path(path)
    if not (path / "config.json").is_file():
        raise TrainError(f"--vision-init {path}: no config.json there; give a `datamix pretrain-vision` folder")
    problem = weights_problem(path)
    if problem:
        raise TrainError(f"--vision-init {path}: {problem}")
    tower = CLIPVisionModel.from_pretrained(str(path))
    try:
        model.model.vision_tower.load_state_dict(tower.state_dict())
    except RuntimeError as exc:
        raise TrainError(f"--vision-init {path}: the tower does not fit the tiny model (pretrain it with the same "
                         f"tiny sizes): {str(exc).splitlines()[0]}") from None
