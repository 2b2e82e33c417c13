"""The small demo mixes the trainer tests build, and the tiny model they train: one definition for all of them."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def tiny_config():
    """A model small enough to train a few steps in a second on a CPU."""
    from datamix.train.config import TinyModelConfig

    return TinyModelConfig(vit_image_size=32, vit_patch_size=16, vit_hidden=32, vit_layers=2, vit_heads=2,
                           lm_hidden=32, lm_layers=1, lm_heads=2, lm_vocab_size=400, lm_max_positions=256)


def build_demo_mix(root: Path, *, seed: int = 0, n_images: int = 40, max_samples: int | None = None) -> Path:
    """The demo recipe on `n_images` generated images (shards of `max_samples`, else the recipe's), with the
    error budget raised: the demo data holds broken records on purpose. Returns the mix folder."""
    from datamix.builder import build
    from datamix.demo import write_demo_data

    write_demo_data(root / "raw", seed=seed, n_images=n_images)
    recipe = (REPO / "recipes" / "demo.yaml").read_text().replace("${DATAMIX_DATA:-../demo_out/raw}", str(root / "raw"))
    recipe = recipe.replace("max_reject_ratio: 0.05", "max_reject_ratio: 0.5")
    if max_samples is not None:
        recipe = recipe.replace("max_samples: 100", f"max_samples: {max_samples}")
    (root / "recipe.yaml").write_text(recipe)
    build(root / "recipe.yaml", root / "mix", echo=lambda *a, **k: None)
    return root / "mix"
