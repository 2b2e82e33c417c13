"""The trainer's input pipeline fast paths (datamix/train/data.py) give what the slow, obvious code gives: the image
processor's pixels, the per-sample tokens and labels, webdataset's samples."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

from PIL import Image

from datamix.train.data import (
    Encoder,
    ImagePrep,
    collate,
    expand2square,
    mix_shards,
    preprocess_image,
    read_samples,
)
from datamix.train.setup import tiny_processor
from datamix.train.template import IGNORE_INDEX, encode
from datamix.train.tokenizer import train_tokenizer
from small_mix import build_demo_mix

ATOL = 1e-6  # the fast path reproduces the processor's arithmetic, so in practice the difference is exactly 0


@pytest.fixture(scope="module")
def mix(tmp_path_factory) -> Path:
    """The demo recipe on 24 generated images (real JPEGs), in shards of 10 samples."""
    return build_demo_mix(tmp_path_factory.mktemp("datamix"), seed=1, n_images=24, max_samples=10)


@pytest.fixture(scope="module")
def samples(mix) -> list[dict]:
    return list(read_samples(mix_shards(mix)[0]))


def _image_bytes(size: tuple[int, int], mode: str, fmt: str, seed: int) -> bytes:
    """A photo-like image: smooth gradients plus noise, so that the resize filter matters."""
    w, h = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 256], -1)
    rgb = np.clip(rgb + rng.integers(-40, 40, rgb.shape), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb).convert(mode).save(out, fmt)
    return out.getvalue()


GENERATED = [((97, 61), "RGB", "JPEG"), ((50, 121), "RGB", "JPEG"), ((48, 48), "RGB", "PNG"), ((300, 200), "L", "JPEG"),
             ((64, 80), "RGBA", "PNG"), ((33, 90), "P", "PNG")]


def _reference(data: bytes, processor, aspect: str) -> torch.Tensor:
    """The original code path: PIL open + convert, expand-to-square for `pad`, then the processor."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    if aspect == "pad":
        image = expand2square(image, tuple(int(x * 255) for x in processor.image_mean))
    return processor(images=image, return_tensors="pt")["pixel_values"][0]


PROCESSORS = {"tiny-48": (48, 48), "edge40-crop32": (40, 32), "clip-224": (224, 224)}  # (shortest edge, crop)


def _processor(name: str):
    edge, crop = PROCESSORS[name]
    return type(tiny_processor(edge))(size={"shortest_edge": edge}, crop_size={"height": crop, "width": crop})


@pytest.mark.parametrize("aspect", ["square", "pad"], ids=["stage1-crop", "stage2-pad"])
@pytest.mark.parametrize("name", list(PROCESSORS))
def test_fast_image_path_matches_the_processor(name, aspect, samples):
    processor = _processor(name)
    assert ImagePrep.of(processor) is not None  # the CLIP configuration takes the fast path
    images = [b for s in samples for b in s["_images"]][:4]
    images += [_image_bytes(size, mode, fmt, k) for k, (size, mode, fmt) in enumerate(GENERATED)]
    for data in images:
        want = _reference(data, processor, aspect)
        got = preprocess_image(data, processor, aspect)
        assert got.shape == want.shape and got.dtype == want.dtype
        assert np.allclose(got.numpy(), want.numpy(), atol=ATOL, rtol=0)


def test_other_processor_configurations_use_the_processor():
    processor = tiny_processor(32)
    processor.do_center_crop = False
    assert ImagePrep.of(processor) is None
    data = _image_bytes((70, 40), "RGB", "JPEG", 0)
    assert torch.equal(preprocess_image(data, processor, "square"), _reference(data, processor, "square"))


@pytest.fixture(scope="module")
def tokenizer(samples):
    texts = [t["value"] for s in samples for t in s["conversations"]]
    return train_tokenizer(texts * 3, vocab_size=400)


def _reference_batch(tok, processor, samples, template, aspect, seq, image_id):
    """The original per-sample code: encode() each sample, the processor per image, a tensor per row."""
    items = []
    for s in samples:
        e = encode(tok, s["conversations"], template=template, image_seq_length=seq, image_token_id=image_id,
                   max_length=256, sample_id=s.get("id", "?"))
        items.append((e.input_ids, e.labels, [_reference(b, processor, aspect) for b in s["_images"][:e.n_images]]))
    width = max(len(ids) for ids, _, _ in items)
    ids = torch.full((len(items), width), tok.pad_token_id, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for i, (x, y, _) in enumerate(items):
        ids[i, :len(x)], labels[i, :len(x)], mask[i, :len(x)] = torch.tensor(x), torch.tensor(y), 1
    pixels = [p for _, _, group in items for p in group]
    return {"input_ids": ids, "labels": labels, "attention_mask": mask,
            "pixel_values": torch.stack(pixels) if pixels else None}


@pytest.mark.parametrize("template,aspect", [("vicuna_v1", "pad"), ("plain", "square")])
def test_encoder_batch_matches_the_per_sample_code(template, aspect, samples, tokenizer):
    processor, image_id = tiny_processor(32), tokenizer.convert_tokens_to_ids("<image>")
    enc = Encoder(tokenizer, processor, template, aspect, 4, image_id, 256)
    pool = [s for s in samples if template != "plain" or s.get("image_members")]
    text_only = [s for s in pool if not s.get("image_members")][:3]
    for batch in [pool[:5], pool[5:12], text_only] if text_only else [pool[:5], pool[5:12]]:
        want = _reference_batch(tokenizer, processor, batch, template, aspect, 4, image_id)
        for got in (enc.batch(batch), collate(enc.items(batch), tokenizer.pad_token_id)):
            for key in ("input_ids", "labels", "attention_mask"):
                assert torch.equal(got[key], want[key]), key
            if want["pixel_values"] is None:
                assert got["pixel_values"] is None
            else:
                assert np.allclose(got["pixel_values"].numpy(), want["pixel_values"].numpy(), atol=ATOL, rtol=0)
    assert len(enc.chunk_cache) == (1 if template == "vicuna_v1" else 0)  # the system prompt, tokenized once
