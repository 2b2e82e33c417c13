"""`datamix train --resolution hd` end to end on CPU: stage 1 at base resolution, stage 2 at HD from its projector,
a run folder that transformers' LLaVA-NeXT classes load and generate from, and the batches it trained on."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from PIL import Image

from datamix.train.config import TrainError
from datamix.train.hd import HDGeometry, image_size, to_llava_next
from datamix.train.loop import train
from datamix.train.model import load_model
from datamix.train.template import IGNORE_INDEX, encode, supervised_spans
from tests.test_train_loop import REPO, TINY, config

# The demo's images are 96 px squares; these shapes put samples on strips, 2-D grids and a single tile.
SHAPES = [(96, 96), (40, 192), (192, 30), (20, 20), (64, 130), (150, 100)]


@pytest.fixture(scope="module")
def mix(tmp_path_factory) -> Path:
    from datamix.builder import build
    from datamix.demo import write_demo_data

    root = tmp_path_factory.mktemp("hdmix")
    write_demo_data(root / "raw", seed=0, n_images=40)
    for k, path in enumerate(sorted((root / "raw").rglob("*.jpg"))):
        h, w = SHAPES[k % len(SHAPES)]
        try:
            image = Image.open(path).resize((w, h))
        except OSError:
            continue  # the demo's deliberately broken images stay broken (the build rejects them)
        image.save(path, "JPEG", quality=92)
    recipe = (REPO / "recipes" / "demo.yaml").read_text()
    recipe = recipe.replace("${DATAMIX_DATA:-../demo_out/raw}", str(root / "raw"))
    recipe = recipe.replace("max_samples: 100", "max_samples: 12")
    recipe = recipe.replace("max_reject_ratio: 0.05", "max_reject_ratio: 0.5")
    (root / "recipe.yaml").write_text(recipe)
    build(root / "recipe.yaml", root / "mix", echo=lambda *a, **k: None)
    return root / "mix"


@pytest.fixture(scope="module")
def runs(mix, tmp_path_factory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("hdruns")
    train(config("pretrain", max_steps=2), mix, out / "s1", echo=lambda *_: None)
    train(config("finetune", projector_from=str(out / "s1"), resolution="hd", max_steps=3, save_every=3), mix,
          out / "s2", echo=lambda *_: None)
    return out / "s1", out / "s2"


def test_stage_checks():
    with pytest.raises(TrainError, match="stage 2"):
        config("pretrain", resolution="hd")
    with pytest.raises(TrainError, match="base or hd"):
        config("finetune", resolution="4k")
    assert config("finetune", resolution="hd").image_aspect == "anyres"


def test_linear_projector_cannot_go_hd(tmp_path):
    from datamix.train.model import build_tiny
    from datamix.train.tokenizer import train_tokenizer

    tok = train_tokenizer(["hello there"], vocab_size=300)
    with pytest.raises(TrainError, match="mlp2x_gelu"):
        to_llava_next(build_tiny(TINY, tok, projector="linear", seed=0), seed=0)


def test_hd_model_starts_from_the_stage1_weights(runs):
    s1, s2 = runs
    base = load_model(s1)
    hd = to_llava_next(base, seed=0)
    assert type(hd).__name__ == "LlavaNextForConditionalGeneration"
    theirs, mine = base.state_dict(), hd.state_dict()
    assert set(mine) - set(theirs) == {"model.image_newline"}
    assert all(torch.equal(theirs[k], mine[k]) for k in theirs)
    trained = load_model(s2).state_dict()
    for name, tensor in trained.items():  # stage 2: all but the vision tower moved, image_newline included
        assert torch.equal(tensor, mine[name]) == ("vision_tower" in name), name


def test_run_folder_loads_with_llava_next_classes_and_generates(runs, mix):
    from transformers import AutoProcessor, LlavaNextForConditionalGeneration

    _, s2 = runs
    assert json.loads((s2 / "config.json").read_text())["model_type"] == "llava_next"
    model = LlavaNextForConditionalGeneration.from_pretrained(str(s2)).eval()
    processor = AutoProcessor.from_pretrained(str(s2))
    assert type(processor).__name__ == "LlavaNextProcessor"
    assert type(processor.image_processor).__name__ == "LlavaNextImageProcessorPil"
    run = json.loads((s2 / "run.json").read_text())["config"]
    assert run["resolution"] == "hd" and run["image_aspect"] == "anyres"

    from datamix.train.data import mix_shards, read_samples
    from datamix.train.hd import generation_inputs

    sample = next(s for s in read_samples(mix_shards(mix)[0]) if s["_images"] and image_size(s["_images"][0])[0] != 96)
    conv = [{"from": "human", "value": "<image>\nWhat shape is in the top left?"}]
    mine = generation_inputs(model, processor.tokenizer, processor.image_processor, run, conv, sample["_images"][0])
    prompt = encode(processor.tokenizer, conv, template="vicuna_v1", image_seq_length=1, image_token_id=-1,
                    max_length=4096, generation=True).text
    theirs = processor(images=Image.open(io.BytesIO(sample["_images"][0])), text=prompt, return_tensors="pt")
    # what AutoProcessor gives is what the trainer feeds: the same pixels, sizes and expanded token count
    torch.testing.assert_close(theirs["pixel_values"], mine["pixel_values"], atol=1e-6, rtol=0)
    assert theirs["image_sizes"].tolist() == mine["image_sizes"].tolist()
    image_id = model.config.image_token_id
    assert int((theirs["input_ids"] == image_id).sum()) == int((mine["input_ids"] == image_id).sum()) > 0
    assert theirs["input_ids"].tolist() == mine["input_ids"].tolist()  # BOS and text included
    out = model.generate(**theirs, max_new_tokens=5, do_sample=False, pad_token_id=processor.tokenizer.pad_token_id)
    assert out.shape[1] > theirs["input_ids"].shape[1]
    assert isinstance(processor.tokenizer.decode(out[0, theirs["input_ids"].shape[1]:]), str)


def test_predict_answers_from_an_hd_run(runs, mix):
    from datamix.train.predict import predict

    summary = predict(runs[1], mix, n=4, max_new_tokens=4, echo=lambda *_: None)
    assert summary["questions"] == 4


def test_checkpoint_of_an_hd_run_is_llava_next(runs):
    ckpt = runs[1] / "checkpoints" / "step-000003"
    assert load_model(ckpt).config.model_type == "llava_next"


def test_hd_batches_expand_each_image_and_mask_only_answers(runs, mix):
    from datamix.train.data import Encoder, mix_shards, read_samples
    from datamix.train.hd import hd_encoder
    from datamix.train.setup import load_processor
    from datamix.train.tokenizer import load_tokenizer

    _, s2 = runs
    model = load_model(s2)
    tok = load_tokenizer(s2)
    run = json.loads((s2 / "run.json").read_text())["config"]
    enc = hd_encoder(Encoder(tok, load_processor(s2), "vicuna_v1", "anyres", 0, model.config.image_token_id,
                             run["model_max_length"]), model.config)
    samples = list(read_samples(mix_shards(mix)[0]))[:12]
    batch = enc.batch(samples)
    geometry = HDGeometry.of_config(model.config)
    image_id = model.config.image_token_id
    k = 0
    grids = set()
    for row, labels, s in zip(batch["input_ids"], batch["labels"], samples):
        n = int((row == image_id).sum())
        if s["_images"]:
            hw = image_size(s["_images"][0])
            grids.add(geometry.grid(*hw))
            assert n == geometry.image_tokens(*hw) and batch["image_sizes"][k].tolist() == list(hw)
            k += 1
        else:
            assert n == 0
        assert bool((labels[row == image_id] == IGNORE_INDEX).all())
        answers = [t["value"] for t in s["conversations"] if t["from"] == "gpt"]
        spans = [tok.decode(x).strip() for x in supervised_spans(labels.tolist())]
        assert spans == [f"{a}</s>" for a in answers]
    assert k == batch["pixel_values"].shape[0] and len(grids) > 1
    with torch.no_grad():
        out = model(**{key: v for key, v in batch.items() if v is not None})
    assert torch.isfinite(out.loss)


@pytest.mark.slow
def test_hd_resume_continues_exactly(runs, mix, tmp_path):
    s1, _ = runs
    cfg = config("finetune", projector_from=str(s1), resolution="hd", max_steps=4, save_every=2)
    train(cfg, mix, tmp_path / "straight", echo=lambda *_: None)
    train(cfg, mix, tmp_path / "killed", stop_after=3, echo=lambda *_: None)
    train(cfg, mix, tmp_path / "killed", resume=True, echo=lambda *_: None)
    a, b = load_model(tmp_path / "straight").state_dict(), load_model(tmp_path / "killed").state_dict()
    assert "model.image_newline" in a
    for name in a:
        torch.testing.assert_close(a[name], b[name], msg=name)
