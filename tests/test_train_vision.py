"""Stage 0 of the tiny model (contrastive vision pre-training), its frozen use in stage 1, and the image ablation."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from PIL import Image

from datamix.train.config import TinyModelConfig, TrainConfig, TrainError
from datamix.train.loop import train
from datamix.train.model import build_tiny, load_model
from datamix.train.vision_pretrain import caption, load_vision_init, pretrain_vision
from small_mix import build_demo_mix, tiny_config

TINY = tiny_config()


@pytest.fixture(scope="module")
def mix(tmp_path_factory) -> Path:
    return build_demo_mix(tmp_path_factory.mktemp("visionmix"), seed=0, n_images=40)


@pytest.fixture(scope="module")
def tower(mix, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tower") / "vision"
    pretrain_vision(mix, out, tiny=TINY, steps=40, batch=8, lr=2e-3, echo=lambda *_: None)
    return out


def test_caption_drops_the_image_token_and_format_prompts():
    conv = [{"from": "human", "value": "<image>\nWhat color is the circle?\nAnswer the question using a single "
                                       "word or phrase."}, {"from": "gpt", "value": "red"}]
    assert caption(conv) == "What color is the circle? red"


def test_contrastive_stage_learns_and_saves_a_vision_tower(tower):
    summary = json.loads((tower / "pretrain.json").read_text())
    assert summary["pairs"] > 30 and summary["steps"] == 40
    assert summary["loss_last"] < summary["loss_first"]  # 40 steps on ~50 pairs: it must at least fit them
    from transformers import CLIPVisionModel

    assert CLIPVisionModel.from_pretrained(str(tower)).config.hidden_size == TINY.vit_hidden
    with pytest.raises(TrainError, match="already holds"):
        pretrain_vision(tower.parent, tower, tiny=TINY, steps=1)


def test_stage1_uses_the_pretrained_tower_and_keeps_it_frozen(mix, tower, tmp_path):
    from transformers import CLIPVisionModel

    cfg = TrainConfig(stage="pretrain", tiny=TINY, global_batch=4, micro_batch=2, workers=0, max_steps=3,
                      shuffle_buffer=8, vision_init=str(tower)).for_stage()
    train(cfg, mix, tmp_path / "s1", echo=lambda *_: None)
    pretrained = CLIPVisionModel.from_pretrained(str(tower)).state_dict()
    trained = load_model(tmp_path / "s1").model.vision_tower.state_dict()
    assert pretrained.keys() == trained.keys()
    assert all(torch.equal(pretrained[k], trained[k]) for k in pretrained)


def test_a_tower_of_another_size_is_a_clear_error(tower):
    from datamix.train.tokenizer import train_tokenizer

    other = TinyModelConfig(vit_image_size=32, vit_patch_size=16, vit_hidden=64, vit_layers=2, vit_heads=2,
                            lm_hidden=32, lm_layers=1, lm_heads=2, lm_vocab_size=300, lm_max_positions=64)
    model = build_tiny(other, train_tokenizer(["a b c"], vocab_size=300), projector="mlp2x_gelu", seed=0)
    with pytest.raises(TrainError, match="does not fit the tiny model"):
        load_vision_init(model, tower)
    with pytest.raises(TrainError, match="no config.json"):
        load_vision_init(model, tower.parent)


def test_blank_image_has_the_size_and_the_mean_colour():
    from datamix.train.predict import blank_like
    from datamix.train.setup import tiny_processor

    buf = io.BytesIO()
    Image.new("RGB", (80, 120), (200, 10, 10)).save(buf, "JPEG")
    processor = tiny_processor(32)
    blank = np.asarray(Image.open(io.BytesIO(blank_like(buf.getvalue(), processor))))
    assert blank.shape == (120, 80, 3)
    assert (blank == [int(x * 255) for x in processor.image_mean]).all()
