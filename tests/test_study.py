"""`datamix study` end to end on a tiny demo mix: ladder, training per rung, per-task evaluation, outputs, resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from datamix.errors import InputError
from datamix.study import StudyConfig, letter_match, run_study, unigram_f1
from datamix.train.config import TinyModelConfig

REPO = Path(__file__).resolve().parents[1]
TINY = TinyModelConfig(vit_image_size=32, vit_patch_size=16, vit_hidden=32, vit_layers=2, vit_heads=2, lm_hidden=32,
                       lm_layers=1, lm_heads=2, lm_vocab_size=400, lm_max_positions=256)


def _mix(root: Path, seed: int) -> Path:
    from datamix.builder import build
    from datamix.demo import write_demo_data

    write_demo_data(root / "raw", seed=seed, n_images=40)
    recipe = (REPO / "recipes" / "demo.yaml").read_text()
    recipe = recipe.replace("${DATAMIX_DATA:-../demo_out/raw}", str(root / "raw"))
    recipe = recipe.replace("max_samples: 100", "max_samples: 12").replace("max_reject_ratio: 0.05",
                                                                          "max_reject_ratio: 0.5")
    (root / "recipe.yaml").write_text(recipe)
    build(root / "recipe.yaml", root / "mix", echo=lambda *a, **k: None)
    return root / "mix"


def _config(**kw) -> StudyConfig:
    train = {"tiny": TINY, "global_batch": 8, "micro_batch": 4, "workers": 0, "shuffle_buffer": 8}
    return StudyConfig(**{"ratios": [0.5, 1.0], "stage1_steps": 2, "eval_n": 3, "train": train, **kw})


@pytest.mark.slow
def test_study_end_to_end_and_resume(tmp_path):
    mix, held = _mix(tmp_path / "train", 0), _mix(tmp_path / "held", 1)
    lines = []
    study = run_study(mix, held, tmp_path / "study", _config(), echo=lines.append)
    rows = {(r["ratio"], r["seed"]): r for r in study["rows"]}
    assert set(rows) == {(0.5, 0), (1.0, 0)}
    half, full = rows[0.5, 0], rows[1.0, 0]
    assert 0 < half["samples"] < full["samples"]
    assert half["steps"] < full["steps"]  # epoch-matched: the half rung trains fewer steps
    assert {"vqa_short", "conversation"} <= set(full["metrics"])
    assert all(v == 1.0 for v in full["relative"].values() if v is not None)
    assert "epoch-matched" in study["protocol"]
    out = tmp_path / "study"
    assert json.loads((out / "study.json").read_text())["match"] == "epochs"
    with (out / "study.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [(float(r["ratio"]), int(r["steps"])) for r in table] == [(0.5, half["steps"]), (1.0, full["steps"])]
    assert (out / "study.png").read_bytes()[:4] == b"\x89PNG" and "study.png" in (out / "index.html").read_text()
    assert (out / "ladder" / "demo-mix-r0.5" / "manifest.json").is_file()

    # Resume: a finished run is reused, a killed one (no result.json) is trained again.
    (out / "runs" / "r0.5-s0" / "result.json").unlink()
    lines.clear()
    again = run_study(mix, held, out, _config(), echo=lines.append)
    assert any("r1 seed 0: done before, reused" in line for line in lines)
    assert any("ladder: reusing rungs 0.5" in line for line in lines)
    assert any("r0.5 seed 0: training" in line for line in lines)
    assert again["rows"][0]["steps"] == half["steps"]


def test_compute_matched_gives_every_rung_the_full_steps(tmp_path):
    from datamix.study import _stage2_steps

    mix = _mix(tmp_path / "train", 0)
    cfg = _config(match="steps")
    assert _stage2_steps(mix, cfg) > 0
    with pytest.raises(InputError, match="--match"):
        _config(match="tokens").check()
    with pytest.raises(InputError, match="--ratios"):
        _config(ratios=[0.0, 1]).check()


def test_text_metrics():
    assert letter_match("B.", "B") == 1.0 and letter_match("C", "B") == 0.0
    assert unigram_f1("a red circle", "the red circle") == 1.0
    assert unigram_f1("red square", "red circle") == pytest.approx(0.5)
    assert unigram_f1("", "red") == 0.0
