"""LLaVA-1.5-HD input pipeline (datamix/train/hd.py) against transformers' LLaVA-NeXT processor and model: grids,
token counts, pixels, the global view, label masking and the length limit at HD."""

from __future__ import annotations

import io

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

from PIL import Image

from datamix.train.hd import HDEncoder, HDGeometry, HDPrep, hd_grids, hd_image_processor, hd_processor, select_grid
from datamix.train.setup import tiny_processor
from datamix.train.template import IGNORE_INDEX, encode, supervised_spans
from datamix.train.tokenizer import train_tokenizer

HD = HDGeometry.of(224, 14)  # the paper's CLIP-ViT-L/14 at 224
ATOL = 1e-6

# (height, width): the worked table of the spec, COCO shapes, transformers' reported unpadding bugs (950x1256,
# 768x767), 1x6 strips both ways, extreme strips and tiny images, plus a sweep below.
SIZES = [(480, 640), (427, 640), (336, 336), (1000, 1000), (1600, 400), (200, 200), (950, 1256), (768, 767),
         (224, 1344), (1344, 224), (100, 1000), (1000, 100), (1, 2000), (2000, 1), (1, 1), (10, 10), (224, 224),
         (100, 300), (150, 440), (225, 225), (640, 480), (333, 500), (500, 333), (448, 672), (672, 448), (50, 2100)]
SWEEP = [(h, w) for h in range(17, 2200, 173) for w in range(23, 2200, 191)]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(["a chat between a user and an assistant", "what is this? a red square"], vocab_size=300)


def test_grids_are_the_papers_fourteen():
    grids = {(h // 224, w // 224) for h, w in hd_grids(224)}
    strips = {(1, c) for c in range(1, 7)} | {(c, 1) for c in range(1, 7)}
    assert grids == strips | {(2, 2), (2, 3), (3, 2)}
    assert max(h * w for h, w in hd_grids(224) if min(h, w) > 224) == 672 * 448  # "672x448 at most" (2-D grids)


@pytest.mark.parametrize("hw", [(1, 1), (10, 10), (100, 224), (224, 224), (50, 120), (224, 100)])
def test_small_images_stay_on_one_tile(hw):
    assert select_grid(*hw, HD.pinpoints) == (224, 224)  # never 448x448 for a 224 px input (paper §3.4)
    assert HD.image_tokens(*hw) <= 256 + 16 * 16 + 16


def test_strips_get_strip_grids():
    assert select_grid(224, 1344, HD.pinpoints) == (224, 1344)
    assert select_grid(2000, 300, HD.pinpoints) == (1344, 224)
    assert select_grid(200, 440, HD.pinpoints) == (224, 448)  # fits 1x2 without scaling: not 2x2 or 1x3


def test_worked_counts():
    """The spec's worked table (derived independently from the formula): 224 px tiles, 14 grids."""
    expected = {(480, 640): 1632, (427, 640): 1824, (336, 336): 1312, (1000, 1000): 1312, (1600, 400): 1344,
                (200, 200): 528}
    assert {hw: HD.image_tokens(*hw) for hw in expected} == expected


def _next_processor(tok, geometry):
    return hd_processor(hd_image_processor(tiny_processor(geometry.tile), geometry), tok, geometry)


@pytest.mark.parametrize("geometry", [HD, HDGeometry.of(336, 14), HDGeometry.of(32, 16)], ids=str)
def test_token_count_equals_the_processors(tok, geometry):
    processor = _next_processor(tok, geometry)
    sizes = SIZES + SWEEP
    theirs = processor._get_num_multimodal_tokens(image_sizes=sizes)["num_image_tokens"]
    assert [geometry.image_tokens(h, w) for h, w in sizes] == theirs


def test_processor_expands_each_image_to_the_count(tok):
    processor = _next_processor(tok, HD)
    for hw in [(480, 640), (224, 1344), (30, 40)]:
        image = Image.new("RGB", hw[::-1], (10, 200, 30))
        ids = processor(images=image, text="<image>\nwhat?", return_tensors="pt")["input_ids"][0]
        assert int((ids == processor.image_token_id).sum()) == HD.image_tokens(*hw)


def test_token_count_equals_the_models_features(tok):
    """What decides: the model's own feature count (pack_image_features + unpad_image) for the tiles it is given."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaNextConfig, LlavaNextForConditionalGeneration

    g = HDGeometry.of(32, 8)
    vision = CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                              num_attention_heads=2)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                       num_attention_heads=2)
    model = LlavaNextForConditionalGeneration(LlavaNextConfig(
        vision_config=vision, text_config=text, image_grid_pinpoints=[list(p) for p in g.pinpoints],
        image_token_index=tok.convert_tokens_to_ids("<image>"))).eval()
    prep = HDPrep.of(hd_image_processor(tiny_processor(32), g), g)
    for h, w in [(48, 64), (32, 192), (192, 32), (10, 10), (95, 64), (64, 95), (1, 300), (77, 31), (100, 100)]:
        tiles = prep(Image.new("RGB", (w, h)))
        with torch.no_grad():
            feats = model.model.get_image_features(tiles[None], torch.tensor([[h, w]])).pooler_output
        assert feats[0].shape[0] == g.image_tokens(h, w), (h, w)


def _image(h: int, w: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 256], -1)
    rgb = np.clip(rgb + rng.integers(-40, 40, rgb.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(rgb).convert(mode)


@pytest.mark.parametrize("geometry", [HD, HDGeometry.of(48, 16)], ids=str)
def test_pixels_equal_the_processors(geometry):
    processor = hd_image_processor(tiny_processor(geometry.tile), geometry)
    prep = HDPrep.of(processor, geometry)
    assert prep is not None
    for k, (h, w) in enumerate([(480, 640), (427, 640), (224, 1344), (1344, 224), (50, 2000), (13, 17), (768, 767),
                                (301, 299), (geometry.tile, geometry.tile)]):
        image = _image(h, w, seed=k)
        theirs = processor(images=image, return_tensors="pt")["pixel_values"][0]
        mine = prep(image)
        assert mine.shape == theirs.shape and mine.shape[0] == geometry.n_tiles(h, w)
        torch.testing.assert_close(mine, theirs, atol=ATOL, rtol=0)


def test_encoder_pixels_for_grey_and_alpha_images_equal_the_processors():
    processor = hd_image_processor(tiny_processor(224), HD)
    enc = HDEncoder(None, processor, "vicuna_v1", "anyres", 256, 3, 4096, geometry=HD)
    for mode, fmt in [("L", "PNG"), ("RGBA", "PNG"), ("RGB", "JPEG"), ("P", "PNG")]:
        buf = io.BytesIO()
        _image(300, 500, mode).save(buf, fmt)
        theirs = processor(images=Image.open(io.BytesIO(buf.getvalue())).convert("RGB"),
                           return_tensors="pt")["pixel_values"][0]
        torch.testing.assert_close(enc.pixels(buf.getvalue()), theirs, atol=ATOL, rtol=0)


def test_global_view_is_squashed_not_padded():
    """The choice (hd.py docstring): LLaVA-NeXT's squash, so training pixels are what AutoProcessor gives."""
    prep = HDPrep.of(hd_image_processor(tiny_processor(224), HD), HD)
    image = _image(200, 600)
    tiles = prep.tiles(image)
    squashed = np.asarray(image.resize((224, 224), resample=Image.BICUBIC))
    assert np.array_equal(tiles[0], squashed)
    padded = Image.new("RGB", (600, 600), (0, 0, 0))
    padded.paste(image, (0, 200))
    assert not np.array_equal(tiles[0], np.asarray(padded.resize((224, 224), resample=Image.BICUBIC)))
    assert tiles[0, :20].mean() > 40  # image content reaches the top rows: no pad band


def test_other_processor_configurations_fall_back_to_the_processor():
    processor = hd_image_processor(tiny_processor(224), HD)
    processor.do_center_crop = False
    assert HDPrep.of(processor, HD) is None
    assert HDPrep.of(tiny_processor(224), HD) is None  # not a LLaVA-NeXT processor


def _conv(answer: str = "a red square"):
    return [{"from": "human", "value": "<image>\nWhat is this?"}, {"from": "gpt", "value": answer},
            {"from": "human", "value": "And the colour?"}, {"from": "gpt", "value": "red"}]


def test_hd_masking_supervises_only_answers_and_eos(tok):
    n = HD.image_tokens(480, 640)
    e = encode(tok, _conv(), template="vicuna_v1", image_seq_length=n, image_token_id=3, max_length=4096)
    assert e.input_ids.count(3) == n
    assert all(label == IGNORE_INDEX for i, label in zip(e.input_ids, e.labels) if i == 3)
    spans = [tok.decode(s) for s in supervised_spans(e.labels)]
    assert spans == [" a red square</s>", " red</s>"]


def test_length_limit_counts_the_hd_image_tokens(tok):
    from datamix.train.template import encode_many

    long = _conv("word " * 400)
    sizes = [(224, 224), (480, 640)]
    full = encode_many(tok, [(long, "a"), (long, "b")], template="vicuna_v1", image_seq_length=1, image_token_id=3,
                       max_length=100_000, image_tokens=[[HD.image_tokens(*hw)] for hw in sizes])
    limit = 2048
    cut = encode_many(tok, [(long, "a"), (long, "b")], template="vicuna_v1", image_seq_length=1, image_token_id=3,
                      max_length=limit, image_tokens=[[HD.image_tokens(*hw)] for hw in sizes])
    for f, c, hw in zip(full, cut, sizes):
        assert c.input_ids.count(3) == HD.image_tokens(*hw)
        text = len(f.input_ids) - HD.image_tokens(*hw)
        assert len(c.input_ids) == min(limit, text + HD.image_tokens(*hw))
        assert c.input_ids == f.input_ids[:limit]
    assert len(full[1].input_ids) > limit >= len(cut[1].input_ids)  # the larger image pushes text past the limit


def test_a_limit_inside_the_image_tokens_is_a_clear_error(tok):
    from datamix.train.config import TrainError

    with pytest.raises(TrainError, match="cuts into the image tokens"):
        encode(tok, _conv(), template="vicuna_v1", image_seq_length=HD.image_tokens(480, 640), image_token_id=3,
               max_length=1000)


def test_more_image_tokens_than_images_is_a_clear_error(tok):
    from datamix.train.config import TrainError
    from datamix.train.template import encode_many

    conv = [{"from": "human", "value": "<image>\nWhat is this?"}, {"from": "gpt", "value": "a square"}]
    with pytest.raises(TrainError, match="1 <image> token"):
        encode_many(tok, [(conv, "x")], template="vicuna_v1", image_seq_length=9, image_token_id=3, max_length=4096,
                    image_tokens=[[]])


def test_vision_geometry_of_local_folders(tmp_path, tok):
    """A 224 px tower: config.json omits the default image size, the geometry must still be 224 / 14."""
    from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig, CLIPVisionModel, LlamaConfig

    from datamix.train.config import TinyModelConfig, TrainConfig
    from datamix.train.hd import vision_geometry
    from datamix.train.model import DatamixLlava, llava_config

    vision = CLIPVisionConfig(image_size=224, patch_size=14, hidden_size=8, intermediate_size=16,
                              num_hidden_layers=2, num_attention_heads=2)
    CLIPVisionModel(vision).save_pretrained(tmp_path / "tower")
    CLIPModel(CLIPConfig(vision_config=vision.to_dict(), text_config={"hidden_size": 8, "intermediate_size": 16,
                         "num_hidden_layers": 1, "num_attention_heads": 2})).save_pretrained(tmp_path / "clip")
    text = LlamaConfig(vocab_size=len(tok), hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                       num_attention_heads=2)
    DatamixLlava(llava_config(vision, text, tokenizer=tok, projector="mlp2x_gelu")).save_pretrained(tmp_path / "s1")
    for kw in ({"vision": str(tmp_path / "tower")}, {"vision": str(tmp_path / "clip")},
               {"projector_from": str(tmp_path / "s1")}):
        assert vision_geometry(TrainConfig(**kw)) == HD, kw
    assert vision_geometry(TrainConfig(tiny=TinyModelConfig())) == HDGeometry.of(48, 16)
