"""LLaVA-1.5-HD (paper §3.4, App. A.1, Fig. 2) through transformers' LLaVA-NeXT classes: tiles, counts, model.

The paper splits an image into 224 px tiles on the best of a fixed set of grids (up to 6 tiles), encodes each
tile, stitches the features, drops the ones that cover only padding, ends every feature row with a learned token
and concatenates the features of a global 224 px view. It released no code (LLaVA #1833). transformers'
`LlavaNextForConditionalGeneration` / `LlavaNextImageProcessor` / `LlavaNextProcessor` implement the same family
(`select_best_resolution`, aspect-preserving resize, centred zero padding, row-major tiles, `unpad_image`, one
`image_newline` per row, base view first), so an HD run is saved as a LLaVA-NeXT checkpoint that
`LlavaNextForConditionalGeneration.from_pretrained` and `AutoProcessor.from_pretrained` load.

Choices, each pinned by a test (tests/test_train_hd.py):
- Grids: every r x c grid of tiles with r*c <= 6, i.e. 1x1, 1x2..1x6, 2x2, 2x3 and the transposes (14 grids).
  The paper lists the 1x4..1x6 strips explicitly; its "672x448 at most" is the largest two-dimensional grid. Listed
  by rows then columns: `select_best_resolution` keeps the first of equal candidates.
- Global view: squashed to the tile size (LLaVA-NeXT), not padded to a square first (the paper). The stock
  processor cannot pad it, and a checkpoint whose training pixels differ from what `AutoProcessor` gives at
  inference would be wrong in use; so training uses exactly the processor's pixels, squash included.
- Tile padding: black (zero) as the processor, not LLaVA-1.5's mean colour; the paper does not state a colour.
- Tile size = the vision tower's image size (224 for the paper's CLIP-ViT-L/14-224; the tiny model's own size).

`HDPrep` computes the processor's pixels (tested equal) without its per-tile array/PIL round trips and float64
rescale: one PIL resize for the grid, one for the global view, a numpy pad and tiling, one table look-up per
channel for rescale + normalize (data.ImagePrep's table).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from datamix.train.config import TrainError
from datamix.train.data import Encoder, _size, _table, collate
from datamix.train.hdgrid import HDGeometry, fitted_size, hd_grids, image_size, select_grid  # noqa: F401 (API)
from datamix.train.template import encode_many


@dataclass(frozen=True)
class HDPrep:
    """`LlavaNextImageProcessorPil`'s pixels for one image: (1 + tiles, 3, S, S) float32, global view first."""

    geometry: HDGeometry
    resample: int
    table: np.ndarray = field(repr=False)

    @classmethod
    def of(cls, processor, geometry: HDGeometry) -> HDPrep | None:
        """The fast path, or None for a processor configuration it does not reproduce (then the processor runs)."""
        p = processor
        if not (type(p).__name__ == "LlavaNextImageProcessorPil"
                and bool(p.do_resize and p.do_center_crop and p.do_rescale and p.do_normalize)
                and np.shape(p.image_mean) == np.shape(p.image_std) == (3,)
                and _size(p.size, "shortest_edge") == geometry.tile
                and (_size(p.crop_size, "height"), _size(p.crop_size, "width")) == (geometry.tile, geometry.tile)
                and [list(x) for x in p.image_grid_pinpoints] == [list(x) for x in geometry.pinpoints]):
            return None
        return cls(geometry, int(p.resample), _table(p))

    def tiles(self, image: Image.Image) -> np.ndarray:
        """(1 + tiles, S, S, 3) uint8: the squashed global view, then the padded grid cut row-major."""
        s, (w, h) = self.geometry.tile, image.size
        gh, gw = self.geometry.grid(h, w)
        nh, nw = fitted_size(h, w, (gh, gw))
        canvas = np.zeros((gh, gw, 3), dtype=np.uint8)
        top, left = (gh - nh) // 2, (gw - nw) // 2  # divmod: the odd pixel goes to the bottom / right
        canvas[top:top + nh, left:left + nw] = np.asarray(image.resize((nw, nh), resample=self.resample))
        out = np.empty((1 + (gh // s) * (gw // s), s, s, 3), dtype=np.uint8)
        out[0] = np.asarray(image.resize((s, s), resample=self.resample))
        out[1:] = canvas.reshape(gh // s, s, gw // s, s, 3).swapaxes(1, 2).reshape(-1, s, s, 3)
        return out

    def normalize(self, tiles: np.ndarray) -> torch.Tensor:
        n, h, w, _ = tiles.shape
        out = np.empty((n, 3, h, w), dtype=np.float32)
        for c in range(3):
            np.take(self.table[c], tiles[..., c], out=out[:, c])
        return torch.from_numpy(out)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.normalize(self.tiles(image))


def rgb(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    return image if image.mode == "RGB" else image.convert("RGB")


def pad_tiles(per_image: list[torch.Tensor]) -> torch.Tensor:
    """(images, max tiles, 3, S, S): zeros after each image's tiles, as the processor's `_pad_for_batching`; the
    model drops them again (it recomputes each image's tile count from `image_sizes`)."""
    most = max(t.shape[0] for t in per_image)
    out = torch.zeros((len(per_image), most, *per_image[0].shape[1:]), dtype=per_image[0].dtype)
    for i, t in enumerate(per_image):
        out[i, :t.shape[0]] = t
    return out


@dataclass
class HDEncoder(Encoder):
    """`Encoder` at HD: each `<image>` expands to its own image's token count; pixels are tiles + sizes."""

    geometry: HDGeometry | None = None

    @cached_property
    def hd_prep(self) -> HDPrep | None:
        return HDPrep.of(self.processor, self.geometry)

    def pixels(self, data: bytes) -> torch.Tensor:
        image = rgb(data)
        if self.hd_prep is not None:
            return self.hd_prep(image)
        return self.processor(images=image, return_tensors="pt")["pixel_values"][0]

    def _encode_hd(self, samples: list[dict]):
        """(encodings, images per sample, tiles per image, (height, width) per image). The token counts come from
        the image headers, so the ids are known before any pixel is decoded."""
        sizes = [[image_size(b) for b in s["_images"]] for s in samples]
        encoded = encode_many(self.tokenizer, [(s["conversations"], s.get("id", "?")) for s in samples],
                              template=self.template, image_seq_length=self.image_seq_length,
                              image_token_id=self.image_token_id, max_length=self.max_length,
                              cache=self.chunk_cache,
                              image_tokens=[[self.geometry.image_tokens(*hw) for hw in per] for per in sizes])
        used = [(b, hw) for s, e, per in zip(samples, encoded, sizes) for b, hw in zip(s["_images"][:e.n_images], per)]
        counts = [e.n_images for e in encoded]
        tiles = [self.pixels(b) for b, _ in used]
        return encoded, counts, tiles, [hw for _, hw in used]

    def items(self, samples: list[dict]) -> list[dict]:
        encoded, counts, tiles, sizes = self._encode_hd(samples)
        out, k = [], 0
        for e, n in zip(encoded, counts):
            out.append({"input_ids": e.input_ids, "labels": e.labels, "pixel_values": tiles[k:k + n],
                        "image_sizes": sizes[k:k + n]})
            k += n
        return out

    def batch(self, samples: list[dict]) -> dict:
        encoded, _, tiles, sizes = self._encode_hd(samples)
        out = collate([{"input_ids": e.input_ids, "labels": e.labels, "pixel_values": []} for e in encoded],
                      self.tokenizer.pad_token_id)
        out["pixel_values"] = pad_tiles(tiles) if tiles else None
        out["image_sizes"] = torch.tensor(sizes, dtype=torch.long) if sizes else None
        return out


# --- the model and the processor ----------------------------------------------------------------------------

def vision_geometry(cfg) -> HDGeometry:
    """Tile and patch size of the vision tower the run will use: a stage-1 run's, a local CLIP folder's (a
    CLIPVisionModel or a whole CLIPModel), or the tiny model's. Read through transformers' config classes:
    config.json leaves out values equal to the defaults (224 px is CLIP's default image size)."""
    from transformers import AutoConfig, CLIPVisionConfig

    if not (cfg.projector_from or cfg.vision):
        return HDGeometry.of(cfg.tiny.vit_image_size, cfg.tiny.vit_patch_size)
    folder = Path(cfg.projector_from or cfg.vision)
    if not (folder / "config.json").is_file():
        raise TrainError(f"{folder}: no config.json; HD needs the vision tower's image and patch size")
    vision = (AutoConfig.from_pretrained(str(folder)).vision_config if cfg.projector_from
              else CLIPVisionConfig.from_pretrained(str(folder)))
    return HDGeometry.of(vision.image_size, vision.patch_size)


def hd_image_processor(base, geometry: HDGeometry):
    """`LlavaNextImageProcessorPil` with the base processor's mean, std and filter, tiles of the tower's size."""
    from transformers import LlavaNextImageProcessorPil

    s = geometry.tile
    return LlavaNextImageProcessorPil(size={"shortest_edge": s}, crop_size={"height": s, "width": s},
                                      image_grid_pinpoints=[list(p) for p in geometry.pinpoints],
                                      image_mean=list(base.image_mean), image_std=list(base.image_std),
                                      resample=int(base.resample), do_pad=True)


def hd_processor(image_processor, tokenizer, geometry: HDGeometry):
    """`LlavaNextProcessor` whose token count is the trainer's: CLIP has a CLS token, dropped by the "default"
    strategy, hence `num_additional_image_tokens=1` (with the default 0 it would count one token too few)."""
    from transformers import LlavaNextProcessor

    return LlavaNextProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=geometry.patch,
                              vision_feature_select_strategy="default", num_additional_image_tokens=1)


def llava_next_config(config, geometry: HDGeometry):
    from transformers import LlavaNextConfig

    if getattr(config, "projector_type", "mlp2x_gelu") != "mlp2x_gelu":
        raise TrainError(f"--resolution hd needs the mlp2x_gelu projector (LLaVA-NeXT's only one), not "
                         f"{config.projector_type}")
    return LlavaNextConfig(vision_config=config.vision_config, text_config=config.text_config,
                           image_token_index=config.image_token_index, image_seq_length=geometry.side ** 2,
                           image_grid_pinpoints=[list(p) for p in geometry.pinpoints], vision_feature_layer=-2,
                           vision_feature_select_strategy="default", projector_hidden_act="gelu",
                           multimodal_projector_bias=True, tie_word_embeddings=False, loss_type="ForCausalLM")


def to_llava_next(model, *, seed: int):
    """The same weights (vision tower, projector, LLM, head) in a LLaVA-NeXT model; only `image_newline` is new
    (LLaVA-NeXT's init, seeded). Paper App. A.1: HD starts instruction tuning from the base-resolution projector."""
    from transformers import LlavaNextForConditionalGeneration

    geometry = HDGeometry.of(model.config.vision_config.image_size, model.config.vision_config.patch_size)
    config = llava_next_config(model.config, geometry)
    torch.manual_seed(seed)
    hd = LlavaNextForConditionalGeneration(config)
    missing, unexpected = hd.load_state_dict(model.state_dict(), strict=False)
    if missing != ["model.image_newline"] or unexpected:
        raise TrainError(f"the model does not map onto LLaVA-NeXT: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return hd.to(next(model.parameters()).dtype)


def hd_encoder(base: Encoder, config) -> HDEncoder:
    """The run's `Encoder` at HD, for the LLaVA-NeXT model `config`."""
    return HDEncoder(base.tokenizer, base.processor, base.template, base.aspect, base.image_seq_length,
                     base.image_token_id, base.max_length, geometry=HDGeometry.of_config(config))


def generation_inputs(model, tokenizer, processor, run_cfg: dict, conversation: list[dict], image: bytes) -> dict:
    """`generate` inputs for one question at HD, through the training code (template.encode + HDEncoder)."""
    from datamix.train.template import encode

    geometry = HDGeometry.of_config(model.config)
    enc = encode(tokenizer, conversation, template=run_cfg["template"],
                 image_seq_length=geometry.image_tokens(*image_size(image)),
                 image_token_id=model.config.image_token_id, max_length=run_cfg["model_max_length"], generation=True)
    encoder = HDEncoder(tokenizer, processor, run_cfg["template"], "anyres", 0, model.config.image_token_id,
                        run_cfg["model_max_length"], geometry=geometry)
    ids = torch.tensor([enc.input_ids])
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "pixel_values": encoder.pixels(image)[None],
            "image_sizes": torch.tensor([image_size(image)])}
