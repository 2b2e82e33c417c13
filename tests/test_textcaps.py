"""TextCaps: caption records grouped into one conversation per image, the caption chosen by an option."""

from __future__ import annotations

import json

import pytest

from datamix.converters import ConvertOptions
from datamix.errors import ConverterError
from datamix.prompts import FORMAT_PROMPTS

CAPTION_PROMPT = "Provide a one-sentence caption for the provided image."
CAR = "textcaps/011e7e629fb9ae7b"


def test_one_conversation_per_image_from_non_adjacent_records(convert, fixtures_path):
    samples, _, ledger = convert("textcaps", fixtures_path / "textcaps/train")
    assert list(samples) == [CAR, "textcaps/0c3d3f4a1f8c9e27", "textcaps/3a9f1e0b7c2d4e55"]
    car = samples[CAR]
    assert FORMAT_PROMPTS["caption"] == CAPTION_PROMPT
    assert car.task == "caption" and car.images == ["train_images/011e7e629fb9ae7b.jpg"]
    assert car.conversations == [{"from": "human", "value": f"<image>\n{CAPTION_PROMPT}"},
                                 {"from": "gpt", "value": "A white car with the number 17 on its door."}]
    assert car.meta["caption_ids"] == [10000, 10003, 10006, 10008, 10010]  # 5 records, 3 apart in the file
    assert ledger.records_out == 12 and ledger.samples_out == 3


def test_all_references_and_image_fields_are_in_meta(convert, fixtures_path):
    samples, _, _ = convert("textcaps", fixtures_path / "textcaps/train")
    meta = samples[CAR].meta
    assert len(meta["references"]) == 5 and meta["references"][3] == "Car number 17 is parked on a track."
    assert meta["image_classes"] == ["Vehicle", "Car", "Land vehicle"]
    assert (meta["image_width"], meta["image_height"], meta["set_name"]) == (1024, 664, "train")
    assert meta["caption_policy"] == "first" and meta["caption_id"] == 10000
    assert meta["format_prompt"] == CAPTION_PROMPT  # recorded like every format prompt


def test_longest_caption_option(convert, fixtures_path):
    samples, _, _ = convert("textcaps", fixtures_path / "textcaps/train", options=ConvertOptions(caption="longest"))
    assert samples[CAR].conversations[1]["value"] == "The white car is sponsored by Castrol and has 17 on it."
    assert samples[CAR].meta["caption_id"] == 10006 and samples[CAR].meta["caption_policy"] == "longest"


def test_seeded_caption_is_the_same_every_run_and_moves_with_the_seed(convert, fixtures_path):
    def chosen(seed):
        samples, _, _ = convert("textcaps", fixtures_path / "textcaps/train",
                                options=ConvertOptions(caption="seeded", seed=str(seed)))
        return {k: s.meta["caption_id"] for k, s in samples.items()}, samples

    first, samples = chosen(1)
    assert chosen(1)[0] == first
    assert all(cid in samples[k].meta["caption_ids"] for k, cid in first.items())
    assert samples[CAR].meta["caption_seed"] == 1
    assert len({tuple(chosen(seed)[0].values()) for seed in range(6)}) > 1


def test_format_prompt_none_leaves_an_image_only_turn(convert, fixtures_path):
    samples, _, _ = convert("textcaps", fixtures_path / "textcaps/train", options=ConvertOptions(format_prompt="none"))
    assert samples[CAR].conversations[0] == {"from": "human", "value": "<image>"}
    assert "format_prompt" not in samples[CAR].meta


def test_empty_and_repeated_captions_are_rejected(convert, fixtures_path):
    _, rejects, _ = convert("textcaps", fixtures_path / "textcaps/train")
    assert {r["id"]: r["reason"].split(":")[0] for r in rejects} == {
        "20000": "empty_caption", "10001": "duplicate_caption_id"}


def test_test_split_without_captions_is_rejected(convert, fixtures_path):
    samples, rejects, _ = convert("textcaps", fixtures_path / "textcaps/test")
    assert samples == {} and [r["reason"].split(":")[0] for r in rejects] == ["no_caption", "no_caption"]


def test_malformed_records_and_unsafe_ids_are_rejected(convert, fixtures_path):
    samples, rejects, ledger = convert("textcaps", fixtures_path / "textcaps/malformed")
    assert list(samples) == ["textcaps/0054c91397f2fe05"]
    assert ledger.by_reason() == {"malformed_record": 2, "bad_image_id": 1, "image_token_in_text": 1}


def test_a_textvqa_file_is_a_clear_error(convert, tmp_path):
    path = tmp_path / "TextVQA_0.5.1_train.json"
    path.write_text(json.dumps({"dataset_type": "train", "dataset_name": "textvqa", "dataset_version": "0.5.1",
                                "data": [{"image_id": "011e7e629fb9ae7b", "question": "what number?",
                                          "question_id": 1, "answers": ["17"] * 10}]}))
    with pytest.raises(ConverterError, match="dataset_name is 'textvqa', not 'textcaps'"):
        convert("textcaps", path)
