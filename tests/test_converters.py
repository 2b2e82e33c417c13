"""The registry and the demo data end to end: every converter on its own official-format files."""

from __future__ import annotations

import json

import pytest

from datamix.converters import CONVERTERS, get_converter
from datamix.errors import ConverterError


def test_every_registered_converter_has_quirk_fixtures(fixtures_path):
    for converter_id in CONVERTERS:
        folder = fixtures_path / converter_id
        assert folder.is_dir() and any(folder.rglob("*.json*")), f"no fixtures for {converter_id}"


def test_unknown_converter_lists_the_known_ones():
    with pytest.raises(ConverterError, match="unknown converter 'nosuch'; known converters: .*gqa, llava, .*vqav2"):
        get_converter("nosuch")


@pytest.mark.slow
def test_demo_data_converts_with_every_broken_record_in_the_ledger(tmp_path, convert):
    from datamix.demo import write_demo_data

    raw = tmp_path / "raw"
    summary = write_demo_data(raw, seed=3, n_images=48)
    broken = {b["kind"] for b in summary["broken"]}
    vqa, vqa_rejects, vqa_ledger = convert("vqav2", raw / "vqav2")
    gqa, _, gqa_ledger = convert("gqa", raw / "gqa")
    chats, _, chat_ledger = convert("sharegpt", raw / "sharegpt")
    llava, _, llava_ledger = convert("llava", raw / "llava")
    assert {"question_without_annotation", "empty_multiple_choice_answer"} <= broken
    assert vqa_ledger.by_reason() == {"no_answer": summary["counts"]["vqav2_test_questions"] + 1, "empty_answer": 1}
    assert gqa_ledger.by_reason() == {"missing_image_id": 1}
    assert chat_ledger.by_reason() == {"no_usable_exchange": 1}
    assert llava_ledger.by_reason() == {"image_token_mismatch": 1}
    # answers come from the images: every converted VQAv2 answer matches the scene the image was drawn from
    scenes = json.loads((raw / "scenes.demo.json").read_text())
    assert len(vqa) == summary["counts"]["coco_train2017_images"] and len(gqa) > 0
    assert len(chats) == summary["counts"]["sharegpt_records"] - 1
    assert len(llava) == summary["counts"]["llava_records"] - 1
    checked = 0
    for sample in vqa.values():
        shapes = scenes["coco/" + sample.images[0]]
        pairs = zip(sample.conversations[0::2], sample.conversations[1::2])
        for human, gpt in pairs:
            if "How many squares" in human["value"]:
                assert gpt["value"] == str(sum(s["shape"] == "square" for s in shapes))
                checked += 1
            if "What color is the circle" in human["value"]:
                assert gpt["value"] == next(s["color"] for s in shapes if s["shape"] == "circle")
                checked += 1
    assert checked > len(vqa)
