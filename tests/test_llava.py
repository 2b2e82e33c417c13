"""LLaVA converter, end to end on official-shaped files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datamix.converters.base import ConvertOptions
from datamix.converters.llava import FALLBACK, classify
from datamix.convert import rejects_path, run_conversion
from datamix.prompts import FORMAT_PROMPTS, PromptPolicy
from datamix.table import read_samples

FIXTURES = Path(__file__).parent / "fixtures" / "llava"
MIX = "llava_v1_5_mix665k.json"
INSTRUCT = "llava_instruct_150k.json"
LCS = "blip_laion_cc_sbu_558k.json"
QUIRKS = "llava_quirks.json"
SHORT = FORMAT_PROMPTS["vqa_short"]


def convert(tmp_path: Path, *names: str, policy: PromptPolicy = PromptPolicy.first_turn):
    out = tmp_path / "llava.parquet"
    paths = [FIXTURES / name for name in names] or [FIXTURES]
    ledger = run_conversion("llava", paths, out, ConvertOptions(format_prompt=policy))
    samples = {s.id: s for s in read_samples(out)}
    rejects = [json.loads(line) for line in rejects_path(out).read_text(encoding="utf-8").splitlines()]
    assert ledger.records_in == ledger.records_out + ledger.rejected
    return ledger, samples, rejects


def human_values(sample) -> list[str]:
    return [t["value"] for t in sample.conversations if t["from"] == "human"]


@pytest.fixture
def mix(tmp_path):
    return convert(tmp_path, MIX)


EXPECTED_MIX = {  # id -> (origin, task), one record per source of the paper's Table 7
    "llava/000000033471": ("llava_instruct", "conversation"),
    "llava/000000393224": ("vqav2_okvqa", "vqa_short"),
    "llava/000000299207": ("aokvqa", "mcq"),
    "llava/000000314530": ("refcoco", "grounding"),
    "llava/000000581857": ("refcoco", "grounding"),
    "llava/2354786": ("gqa", "vqa_short"),
    "llava/140031996X": ("ocrvqa", "vqa_short"),
    "llava/011e7e629fb9ae7b": ("textcaps", "caption"),
    "llava/51": ("vg", "grounding"),
    "llava/wgByO4Y_0": ("sharegpt", "text"),
}


def test_mix665k_origin_and_task_per_record(mix):
    ledger, samples, rejects = mix
    assert (ledger.records_in, ledger.records_out, rejects) == (10, 10, [])
    assert {sid: (s.meta["origin"], s.task) for sid, s in samples.items()} == EXPECTED_MIX
    assert all(s.meta["file"] == MIX and s.source == "llava" for s in samples.values())


def test_mix665k_paths_ids_and_text_only_record(mix):
    _, samples, _ = mix
    gqa = samples["llava/2354786"]  # int id in the file
    assert gqa.meta["original_id"] == "2354786" and gqa.images == ["gqa/images/2354786.jpg"]
    assert samples["llava/000000033471"].images == ["coco/train2017/000000033471.jpg"]
    text = samples["llava/wgByO4Y_0"]  # no `image` key, `"model": ""`
    assert text.images == [] and "model" not in text.meta
    assert [t["from"] for t in text.conversations] == ["human", "gpt"]
    assert text.conversations[0]["value"] == "What is a good name for a bakery?"


def test_first_turn_prompt_is_not_appended_twice(mix):
    _, samples, _ = mix
    gqa = samples["llava/2354786"]
    assert human_values(gqa) == [f"<image>\nIs the sky dark?\n{SHORT}", "What is on the white wall?"]
    assert gqa.meta["format_prompt"] == SHORT and gqa.meta["format_prompt_policy"] == "first_turn"
    mcq = samples["llava/000000299207"].conversations[0]["value"]
    assert mcq.count(FORMAT_PROMPTS["mcq"]) == 1 and mcq.endswith(FORMAT_PROMPTS["mcq"])
    caption = samples["llava/011e7e629fb9ae7b"].conversations[0]["value"]
    assert caption == "<image>\n" + FORMAT_PROMPTS["caption"]
    # Tasks without a format prompt are untouched.
    assert human_values(samples["llava/000000314530"])[1] == \
        "Please provide a short description for this region: [0.1, 0.2, 0.5, 0.8]."


def test_every_turn_prompt_added_once_to_later_turns(tmp_path):
    _, samples, _ = convert(tmp_path, MIX, policy=PromptPolicy.every_turn)
    assert human_values(samples["llava/2354786"]) == [
        f"<image>\nIs the sky dark?\n{SHORT}", f"What is on the white wall?\n{SHORT}"]
    assert human_values(samples["llava/140031996X"]) == [
        f"<image>\nWho is the author of this book?\n{SHORT}", f"What is the title of this book?\n{SHORT}"]
    llava_instruct = samples["llava/000000033471"]
    assert human_values(llava_instruct)[1] == "What feature can be seen on the back of the bus?"
    assert "format_prompt" not in llava_instruct.meta


def test_llava_instruct_bare_names_token_at_end_and_repeated_ids(tmp_path):
    ledger, samples, rejects = convert(tmp_path, INSTRUCT)
    assert (ledger.records_out, rejects) == (2, [])
    first, detail = samples["llava/000000379143"], samples["llava/000000379143#1"]
    assert first.conversations[0]["value"] == "<image>\nWhat is the position of the skateboard in the image?"
    assert detail.conversations[0]["value"] == "<image>\nDescribe the following image."
    for sample in (first, detail):
        assert sample.images == ["000000379143.jpg"]
        assert (sample.meta["origin"], sample.task) == ("llava_instruct", "conversation")
        assert sample.meta["original_id"] == "000000379143"


@pytest.mark.parametrize("policy", [PromptPolicy.first_turn, PromptPolicy.every_turn])
def test_lcs558k_caption_records_never_get_a_format_prompt(tmp_path, policy):
    # LLaVA's stage 1 never prompted them: the `plain` template discards the human turn anyway.
    ledger, samples, rejects = convert(tmp_path, LCS, policy=policy)
    assert (ledger.records_out, rejects) == (2, [])
    sample = samples["llava/004539375"]
    assert sample.images == ["00453/004539375.jpg"]
    assert (sample.meta["origin"], sample.task) == ("lcs558k", "caption")
    assert [(t["from"], t["value"]) for t in sample.conversations] == [
        ("human", "<image>\nRender a clear and concise summary of the photo."),
        ("gpt", "select luxury furniture 3 - inch gel memory foam mattress topper"),
    ]
    assert samples["llava/002239345"].meta["origin"] == "lcs558k"
    assert "format_prompt" not in sample.meta


@pytest.fixture
def quirks(tmp_path):
    return convert(tmp_path, QUIRKS)


def test_quirks_rejects(quirks):
    ledger, samples, rejects = quirks
    assert (ledger.records_in, ledger.records_out, ledger.rejected) == (7, 3, 4)
    by_id = {r["id"]: r["reason"] for r in rejects}
    assert by_id["no-token"] == "image_token_mismatch: 0 <image> tokens for 1 images"
    assert by_id["two-tokens"] == "image_token_mismatch: 2 <image> tokens for 1 images"
    assert by_id["#4"].startswith("malformed_record")  # `null` in the list
    assert by_id["abs-path"].startswith("bad_image_path")  # caught by schema.validate
    assert sorted(samples) == ["llava/1", "llava/2", "llava/two-images"]


def test_glued_tokens_image_list_and_roles(quirks):
    _, samples, _ = quirks
    glued_start = samples["llava/1"]  # image as a list, user/assistant roles, "<image>Who are they?"
    assert glued_start.images == ["coco/train2017/000000000139.jpg"]
    assert [t["from"] for t in glued_start.conversations] == ["human", "gpt", "human", "gpt"]
    assert glued_start.conversations[0]["value"] == "<image>\nWho are they?"
    glued_end = samples["llava/2"]  # leading gpt turn, then "What are they doing?<image>"
    assert [(t["from"], t["value"]) for t in glued_end.conversations] == [
        ("human", "<image>\nWhat are they doing?"), ("gpt", "They are playing frisbee in a park.")]
    assert glued_end.meta["dropped_turns"] == 1
    two = samples["llava/two-images"]
    assert two.images == ["coco/train2017/000000000785.jpg", "coco/train2017/000000000802.jpg"]
    assert two.conversations[0]["value"] == "<image>\n<image>\nWhich picture is brighter?"


def test_whole_folder_balances_and_ids_are_unique(tmp_path):
    ledger, samples, rejects = convert(tmp_path)
    assert ledger.records_in == 2 + 2 + 7 + 10
    assert ledger.records_out == ledger.samples_out == len(samples) == 17
    assert ledger.rejected == len(rejects) == 4
    assert all(s.conversations[0]["value"].startswith("<image>\n") for s in samples.values() if s.images)


def test_classifier_rules_need_every_condition():
    exchange = [{"from": "human", "value": "<image>\nHi"}, {"from": "gpt", "value": "Hello"}]
    assert classify(["00453/004539375.jpg"], exchange) == ("lcs558k", "caption")
    # The LCS-558K rule asks for exactly one exchange; an unknown layout falls back to a generic conversation.
    assert classify(["00453/004539375.jpg"], exchange * 2) == FALLBACK == ("other", "conversation")
    assert classify(["mllm_demo_data/1.jpg"], exchange) == FALLBACK
    # A prompt phrase only counts in a human turn.
    answer = [exchange[0], {"from": "gpt", "value": "Answer the question using a single word or phrase."}]
    assert classify(["coco/train2017/000000000139.jpg"], answer) == ("llava_instruct", "conversation")
