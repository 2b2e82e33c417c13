"""LLaVA-1.5-HD geometry, torch-free (so `datamix stats` can count HD tokens): the grids, the grid an image gets,
its aspect-preserving size on it and its number of visual tokens. hd.py has the pixels and the model; its
docstring has the provenance and the choices (grids, global view, padding).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

from PIL import Image

from datamix.train.config import TrainError

MAX_TILES = 6  # paper §3.4: "supporting up to 6 tiles"


def hd_grids(tile: int, max_tiles: int = MAX_TILES) -> list[list[int]]:
    """(height, width) in pixels of every grid of `tile` px tiles with at most `max_tiles` tiles."""
    return [[tile * r, tile * c] for r in range(1, max_tiles + 1) for c in range(1, max_tiles + 1)
            if r * c <= max_tiles]


def select_grid(height: int, width: int, pinpoints) -> tuple[int, int]:
    """transformers' `select_best_resolution`: the most effective pixels (never counting upscaled ones, so a small
    image stays on the smallest grid that holds it), then the least waste, then the first listed."""
    best, best_effective, best_waste = None, 0, math.inf
    for h, w in pinpoints:
        scale = min(w / width, h / height)
        effective = min(int(width * scale) * int(height * scale), width * height)
        waste = h * w - effective
        if effective > best_effective or (effective == best_effective and waste < best_waste):
            best, best_effective, best_waste = (h, w), effective, waste
    return best


def fitted_size(height: int, width: int, grid: tuple[int, int]) -> tuple[int, int]:
    """The aspect-preserving size inside `grid` (transformers' `get_patch_output_size`: ceil, capped)."""
    gh, gw = grid
    if gw / width < gh / height:
        return min(math.ceil(height * gw / width), gh), gw
    return gh, min(math.ceil(width * gh / height), gw)


@dataclass(frozen=True)
class HDGeometry:
    """Tile size, ViT patch size and grids: everything the token count and the tiling depend on."""

    tile: int
    patch: int
    pinpoints: tuple[tuple[int, int], ...]

    @classmethod
    def of(cls, tile: int, patch: int) -> HDGeometry:
        if tile % patch:
            raise TrainError(f"HD needs a tile size ({tile}) that is a multiple of the ViT patch size ({patch})")
        return cls(tile, patch, tuple(tuple(p) for p in hd_grids(tile)))

    @classmethod
    def of_config(cls, config) -> HDGeometry:
        """From a `LlavaNextConfig` (the model decides; its pinpoints are the processor's)."""
        v = config.vision_config
        return cls(v.image_size, v.patch_size, tuple(tuple(p) for p in config.image_grid_pinpoints))

    @property
    def side(self) -> int:
        """Features per side of one tile (16 for 224 / 14)."""
        return self.tile // self.patch

    def grid(self, height: int, width: int) -> tuple[int, int]:
        return select_grid(height, width, self.pinpoints)

    def n_tiles(self, height: int, width: int) -> int:
        """Tiles of the grid plus the global view."""
        gh, gw = self.grid(height, width)
        return (gh // self.tile) * (gw // self.tile) + 1

    def image_tokens(self, height: int, width: int) -> int:
        """Visual tokens of one image: the global view, the tile features left after unpadding, a row-end token per
        row. The same arithmetic as `LlavaNextProcessor._get_number_of_features` (CLS dropped) and the model's
        `pack_image_features` + `unpad_image`, `int(round(..., 7))` included."""
        gh, gw = self.grid(height, width)
        rows, cols = gh // self.tile * self.side, gw // self.tile * self.side
        if width / height > cols / rows:
            kept = int(round(height * (cols / width), 7))
            rows -= (rows - kept) // 2 * 2
        else:
            kept = int(round(width * (rows / height), 7))
            cols -= (cols - kept) // 2 * 2
        return self.side * self.side + rows * cols + rows


def image_size(data: bytes) -> tuple[int, int]:
    """(height, width) from the header alone; no pixel is decoded."""
    with Image.open(io.BytesIO(data)) as im:
        w, h = im.size
    return h, w
