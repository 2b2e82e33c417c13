"""The model: projector variants, vision features, frozen/trainable sets per stage, from_pretrained round trip."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from transformers import LlavaForConditionalGeneration

from datamix.train.config import TinyModelConfig, TrainError
from datamix.train.model import Projector, build_tiny, load_model, projector_depth, set_trainable
from datamix.train.tokenizer import train_tokenizer

TINY = TinyModelConfig(vit_image_size=32, vit_patch_size=8, vit_hidden=32, vit_layers=2, vit_heads=2, lm_hidden=32,
                       lm_layers=1, lm_heads=2, lm_max_positions=128)


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(["a red square and a blue circle", "yes no 1 2 3"] * 10, vocab_size=300)


def test_projector_parameter_counts_match_llava15():
    # LLaVA multimodal_projector/builder.py: 20,979,712 (7B, d=4096) and 31,467,520 (13B, d=5120) for mlp2x_gelu on ViT-L (1024).
    assert sum(p.numel() for p in Projector(1024, 4096, 2).parameters()) == 20_979_712
    assert sum(p.numel() for p in Projector(1024, 5120, 2).parameters()) == 31_467_520


def test_projector_names():
    assert [projector_depth(n) for n in ("linear", "mlp1x_gelu", "mlp2x_gelu", "mlp4x_gelu")] == [1, 1, 2, 4]
    for bad in ("mlp", "mlp0x_gelu", "mlp2x_relu", "identity"):
        with pytest.raises(TrainError, match="unknown projector"):
            projector_depth(bad)


def test_vision_features_are_layer_minus_2_without_cls(tok):
    model = build_tiny(TINY, tok, projector="mlp2x_gelu", seed=0).eval()
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        hidden = model.model.vision_tower(pixels, output_hidden_states=True).hidden_states[-2][:, 1:]
        expected = model.model.multi_modal_projector(hidden)
        got = torch.stack(model.model.get_image_features(pixels).pooler_output)
    assert model.config.image_seq_length == 16 and got.shape == (2, 16, TINY.lm_hidden)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("stage", ["pretrain", "finetune"])
def test_trainable_sets(tok, stage):
    model = build_tiny(TINY, tok, projector="mlp2x_gelu", seed=0)
    set_trainable(model, stage)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    projector = {n for n in trainable if n.startswith("model.multi_modal_projector.")}
    assert projector and not any("vision_tower" in n for n in trainable)
    if stage == "pretrain":
        assert trainable == projector
    else:
        llm = {n for n, _ in model.named_parameters() if n.startswith(("model.language_model.", "lm_head."))}
        assert trainable == projector | llm


def test_text_only_batch_runs_and_reaches_the_llm(tok):
    model = build_tiny(TINY, tok, projector="mlp2x_gelu", seed=0)
    set_trainable(model, "finetune")
    ids = torch.tensor([[tok.bos_token_id, 5, 6, 7, tok.eos_token_id]])
    model(input_ids=ids, labels=ids).loss.backward()
    assert model.lm_head.weight.grad is not None


@pytest.mark.parametrize("projector", ["mlp2x_gelu", "linear", "mlp3x_gelu"])
def test_save_and_load_with_from_pretrained(tok, tmp_path, projector):
    model = build_tiny(TINY, tok, projector=projector, seed=0)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    loaded = load_model(tmp_path)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    if projector == "mlp2x_gelu":  # the default needs nothing of ours to load
        plain = LlavaForConditionalGeneration.from_pretrained(tmp_path)
        assert torch.equal(plain.model.multi_modal_projector.linear_2.weight,
                           model.model.multi_modal_projector.linear_2.weight)
