"""`datamix stats --tokenizer T --resolution hd`: what HD does to a mix before training on it (LLaVA-1.5 §3.4, §4.5).

Per source, at LLaVA-1.5's base resolution (CLIP-ViT-L/14 at 336 px: 576 tokens for every image) and at
LLaVA-1.5-HD (224 px tiles on up to 6 tiles + a 224 px global view: 324 to 1,888 tokens, depending on the
image's size): the image tokens per image sample, and the share of samples whose full sequence (the vicuna_v1
prompt in T's tokens + the image tokens) exceeds the length limit, i.e. that the trainer truncates (§4.5: the
limit counts the image tokens). The counts are the trainer's own (template.encode_many, hdgrid.HDGeometry), so
they are what `datamix train --resolution hd` will see. Image sizes come from the shards' image headers; no pixel
is decoded.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from datamix.errors import InputError
from datamix.stats.tables import Table

BASE_TOKENS = 576  # (336 / 14)^2, LLaVA-1.5 (§6.1)
BATCH = 512


def resolution_stats(mix_dir: Path, tokenizer_path: Path, *, max_length: int = 2048, tile: int = 224,
                     patch: int = 14) -> dict:
    """{"max_length", "hd_tile", "sources": {source: figures}, "total": figures} (see `_figures`)."""
    from datamix.mixdir import iter_samples
    from datamix.stats.load import is_mix
    from datamix.train.hdgrid import HDGeometry, image_size

    if not Path(mix_dir).is_dir() or not is_mix(Path(mix_dir)):
        raise InputError(f"{mix_dir}: --resolution hd reads image sizes from a mix's shards; give a mix folder")
    geometry = HDGeometry.of(tile, patch)
    tokenizer = _hf_tokenizer(tokenizer_path)
    rows: dict[str, list] = defaultdict(list)  # source -> [(text tokens, base image tokens, hd image tokens)]
    pending: list[tuple[str, list, list]] = []
    for _, row, images in iter_samples(mix_dir):
        members = [images[s] for s in row.get("image_members", [])]
        pending.append((row["source"], row["conversations"], [image_size(b) for b in members]))
        if len(pending) >= BATCH:
            _count(pending, tokenizer, geometry, rows)
            pending = []
    _count(pending, tokenizer, geometry, rows)
    total = [r for source in rows.values() for r in source]
    return {"max_length": max_length, "base_tokens": BASE_TOKENS, "hd_tile": tile, "hd_patch": patch,
            "sources": {s: _figures(r, max_length) for s, r in rows.items()}, "total": _figures(total, max_length)}


def _hf_tokenizer(path: Path):
    """The stats tokenizer (lengths.load_tokenizer) as a transformers fast tokenizer, which template.py expects."""
    from transformers import PreTrainedTokenizerFast

    from datamix.stats.lengths import load_tokenizer

    backend = load_tokenizer(path)
    bos = next((t for t in ("<s>", "<|begin_of_text|>", "<bos>") if backend.token_to_id(t) is not None), None)
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=bos)


def _count(batch: list[tuple[str, list, list]], tokenizer, geometry, rows: dict) -> None:
    from datamix.train.template import encode_many

    if not batch:
        return
    # image_seq_length 0: the ids are the text alone (BOS included), the image tokens are added per image below.
    encoded = encode_many(tokenizer, [(conv, source) for source, conv, _ in batch], template="vicuna_v1",
                          image_seq_length=0, image_token_id=-1, max_length=1 << 30)
    for (source, _, sizes), e in zip(batch, encoded):
        used = sizes[:e.n_images]
        hd = sum(geometry.image_tokens(*hw) for hw in used)
        rows[source].append((len(e.input_ids), BASE_TOKENS * len(used), hd))


def _figures(rows: list[tuple[int, int, int]], max_length: int) -> dict:
    if not rows:
        return {"samples": 0}
    text, base, hd = (np.array(c, dtype=np.int64) for c in zip(*rows))
    images = base > 0
    per_image = lambda tokens: {"mean": round(float(tokens[images].mean()), 1), "p50": int(np.median(tokens[images])),
                                "max": int(tokens[images].max())} if images.any() else None
    return {"samples": len(rows), "image_samples": int(images.sum()),
            "image_tokens_base": per_image(base), "image_tokens_hd": per_image(hd),
            "truncated_base": round(float((text + base > max_length).mean()), 6),
            "truncated_hd": round(float((text + hd > max_length).mean()), 6)}


def resolution_table(result: dict) -> Table:
    headers = ["source", "samples", "img tok base", "img tok HD (p50/max)", "truncated base", "truncated HD"]
    rows = []
    for name, f in [*result["sources"].items(), ("total", result["total"])]:
        if not f["samples"]:
            continue
        b, h = f.get("image_tokens_base"), f.get("image_tokens_hd")
        rows.append([name, f"{f['samples']:,}", f"{b['mean']:,.0f}" if b else "-",
                     f"{h['mean']:,.0f} ({h['p50']:,}/{h['max']:,})" if h else "-",
                     f"{f['truncated_base']:.2%}", f"{f['truncated_hd']:.2%}"])
    note = (f"image tokens per image sample: base = LLaVA-1.5 at 336 px ({result['base_tokens']}), HD = "
            f"{result['hd_tile']} px tiles (up to 6) + global view; truncated = share of samples longer than "
            f"{result['max_length']} tokens (vicuna_v1 prompt + image tokens)")
    return Table(title="Resolution: image tokens and truncation, base vs HD", headers=headers, rows=rows, note=note)
