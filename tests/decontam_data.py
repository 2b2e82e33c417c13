"""Generated training and evaluation data for the decontamination tests: real file shapes, Pillow images."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def photo(seed: int, size: tuple[int, int] = (256, 192)) -> Image.Image:
    """A picture with structure (coloured ellipses on a background): what a pHash is made for."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", size, tuple(int(x) for x in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(8):
        x0, y0 = int(rng.integers(0, size[0])), int(rng.integers(0, size[1]))
        draw.ellipse([x0, y0, x0 + int(rng.integers(20, 120)), y0 + int(rng.integers(20, 120))],
                     fill=tuple(int(x) for x in rng.integers(0, 255, 3)))
    return img


def encode(img: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **params)
    return out.getvalue()


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def conversation(question: str) -> list[dict]:
    return [{"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": "An answer."}]


# Training images (LLaVA 665K layout) and the evaluation image each should (or should not) be caught by.
TRAINING = {
    "coco/train2017/000000391895.jpg": ("ids", "pope"),  # POPE names it COCO_val2014_000000391895.jpg
    "coco/train2017/000000391896.jpg": (None, None),  # one id off: a near miss
    "vg/VG_100K/5.jpg": ("ids", "pope"),  # VG 5 is COCO 222 (image_data.json coco_id)
    "gqa/images/2354786.jpg": ("ids", "gqa"),
    "textvqa/train_images/011e7e629fb9ae7b.jpg": ("ids", "textvqa"),
    "other/renamed.jpg": ("bytes", "images"),  # the bytes of eval e1.jpg
    "other/lossless.webp": ("pixels", "images"),  # eval e2.png re-encoded as lossless WebP
    "other/resized.jpg": ("phash", "images"),  # eval e3.jpg resized and recompressed
    "other/different.jpg": (None, None),  # another picture: far above the threshold
}


CAUGHT = {"llava/s0": ("ids", "pope", "COCO_val2014_000000391895.jpg"),
          "llava/s2": ("ids", "pope", "COCO_val2014_000000000222.jpg"),
          "llava/s3": ("ids", "gqa", "2354786"),
          "llava/s4": ("ids", "textvqa", "011e7e629fb9ae7b"),
          "llava/s5": ("bytes", "images", "e1.jpg"),
          "llava/s6": ("pixels", "images", "e2.png"),
          "llava/s7": ("phash", "images", "e3.jpg")}
KEPT = {"llava/s1", "llava/s8", "llava/text"}  # a COCO id one off, another picture, a text-only sample


def rejects(mix: Path, stage: str = "decontaminate") -> list[dict]:
    rows = [json.loads(line) for line in (mix / "rejects.jsonl").read_text().splitlines()]
    return [r for r in rows if r["stage"] == stage]


def written_ids(mix: Path) -> set[str]:
    import pyarrow.parquet as pq

    return set(pq.read_table(mix / "index.parquet", columns=["id"]).column("id").to_pylist())


def write_world(root: Path) -> dict[str, Path]:
    """Training images + a LLaVA-format file, and evaluation files of four kinds; returns the paths."""
    train, evals = root / "train", root / "eval"
    for n, rel in enumerate(TRAINING):
        write(train / rel, encode(photo(100 + n), "JPEG", quality=90))
    e1 = encode(photo(1), "JPEG", quality=90)
    e2 = photo(2)
    e3 = photo(3)
    write(evals / "images" / "e1.jpg", e1)
    write(evals / "images" / "e2.png", encode(e2, "PNG"))
    write(evals / "images" / "e3.jpg", encode(e3, "JPEG", quality=95))
    write(train / "other/renamed.jpg", e1)
    write(train / "other/lossless.webp", encode(e2, "WEBP", lossless=True))
    write(train / "other/resized.jpg", encode(e3.resize((200, 150)), "JPEG", quality=60))
    records = [{"id": f"s{n}", "image": rel, "conversations": conversation(f"What is in picture {n}?")}
               for n, rel in enumerate(TRAINING)]
    records.append({"id": "text", "conversations": [{"from": "human", "value": "Hello?"},
                                                    {"from": "gpt", "value": "Hi."}]})
    write(root / "llava.json", json.dumps(records))
    write(root / "image_data.json", json.dumps([
        {"width": 256, "url": "https://cs.stanford.edu/people/rak248/VG_100K/5.jpg", "height": 192, "image_id": 5,
         "coco_id": 222, "flickr_id": None},
        {"width": 256, "url": "https://cs.stanford.edu/people/rak248/VG_100K/6.jpg", "height": 192, "image_id": 6,
         "coco_id": None, "flickr_id": None}]))
    pope = [{"question_id": 1, "image": "COCO_val2014_000000391895.jpg", "text": "Is there a cat?", "label": "no"},
            {"question_id": 2, "image": "COCO_val2014_000000000222.jpg", "text": "Is there a dog?", "label": "yes"}]
    write(evals / "coco_pope_random.json", "".join(json.dumps(r) + "\n" for r in pope))
    write(evals / "testdev_balanced_questions.json", json.dumps(
        {"20968379": {"imageId": "2354786", "question": "Is the sky blue?", "answer": "yes"},
         "20968380": {"imageId": "n161313", "question": "What is it?", "answer": "a cup"}}))
    write(evals / "TextVQA_0.5.1_val.json", json.dumps({"dataset_type": "val", "data": [
        {"question": "what brand?", "image_id": "011e7e629fb9ae7b", "question_id": 1, "answers": ["x"] * 10}]}))
    write(evals / "images.txt", "# held-out pictures\r\ne1.jpg\r\ne2.png\r\n\r\ne3.jpg\r\n")
    return {"train": train, "evals": evals, "llava": root / "llava.json", "links": root / "image_data.json"}


EXCLUDE = """exclude:
  links: [ROOT/image_data.json]
  tiers: {ids: true, bytes: true, pixels: true, phash: 4}
  sets:
    - {name: pope, kind: pope, path: ROOT/eval/coco_pope_random.json}
    - {name: gqa, kind: gqa, path: ROOT/eval/testdev_balanced_questions.json}
    - {name: textvqa, kind: textvqa, path: ROOT/eval/TextVQA_0.5.1_val.json}
    - {name: images, kind: list, path: ROOT/eval/images.txt, image_root: ROOT/eval/images}
"""


def recipe(root: Path, *, amount: str = "ratio: 1.0", extra: str = EXCLUDE, name: str = "r.yaml") -> Path:
    text = (f"name: clean\nseed: 3\nshards: {{max_samples: 4, max_bytes: 1MB}}\nsources:\n"
            f"  - name: llava\n    converter: llava\n    inputs: [ROOT/llava.json]\n    image_root: ROOT/train\n"
            f"    {amount}\n{extra}")
    return write(root / name, text.replace("ROOT", str(root)))
