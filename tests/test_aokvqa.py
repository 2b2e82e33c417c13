"""A-OKVQA: multiple choice with letter answers, k rotated copies per question, the test split rejected."""

from __future__ import annotations

import pytest

from datamix.converters import ConvertOptions
from datamix.prompts import FORMAT_PROMPTS, PromptPolicy

LETTER_PROMPT = "Answer with the option's letter from the given choices directly."


def test_layout_is_question_options_prompt_and_the_bare_letter(convert, fixtures_path):
    samples, _, _ = convert("aokvqa", fixtures_path / "aokvqa/train")
    s = samples["aokvqa/22MexNkBPpdZGX6sxbxVBH"]
    assert FORMAT_PROMPTS["mcq"] == LETTER_PROMPT  # ASCII apostrophe, as LLaVA's code
    assert s.task == "mcq" and s.source == "aokvqa"
    assert s.conversations == [
        {"from": "human", "value": "<image>\nWhat is the man by the bags awaiting?\nA. skateboarder\nB. train\n"
                                   f"C. delivery\nD. cab\n{LETTER_PROMPT}"},
        {"from": "gpt", "value": "D"}]
    assert s.images == ["train2017/000000299207.jpg"]
    assert s.meta["format_prompt"] == LETTER_PROMPT and s.meta["format_prompt_policy"] == "first_turn"


def test_each_question_is_augmented_once_per_choice_with_the_letter_moving(convert, fixtures_path):
    samples, _, ledger = convert("aokvqa", fixtures_path / "aokvqa/train")
    copies = [samples[f"aokvqa/22MexNkBPpdZGX6sxbxVBH{suffix}"] for suffix in ("", "#1", "#2", "#3")]
    assert [c.meta["rotation"] for c in copies] == [0, 1, 2, 3]
    assert [c.conversations[1]["value"] for c in copies] == ["D", "C", "B", "A"]  # every position once
    for j, copy in enumerate(copies):
        lines = copy.conversations[0]["value"].split("\n")[2:-1]
        choices = ["skateboarder", "train", "delivery", "cab"]
        assert lines == [f"{'ABCD'[i]}. {choices[(i + j) % 4]}" for i in range(4)]  # cyclic rotation by j
        letter = copy.conversations[1]["value"]
        assert lines["ABCD".index(letter)] == f"{letter}. cab"  # the letter always names the right answer
    assert ledger.samples_out == 3 * 4 and ledger.records_out == 3


def test_augment_none_writes_one_copy_in_file_order(convert, fixtures_path):
    samples, _, ledger = convert("aokvqa", fixtures_path / "aokvqa/train", options=ConvertOptions(augment="none"))
    assert sorted(samples) == ["aokvqa/22MexNkBPpdZGX6sxbxVBH", "aokvqa/2pF5HfZbTn7cdCgM2ptPX7",
                               "aokvqa/4ZkRzXpYfnxT9vqGpFiHbM"]
    horse = samples["aokvqa/4ZkRzXpYfnxT9vqGpFiHbM"]
    assert horse.conversations[0]["value"].split("\n")[1:6] == [
        "What animal is this?", "A. dog", "B. cat", "C. horse", "D. dog"]  # stripped, duplicates kept
    assert horse.conversations[1]["value"] == "C" and horse.meta["augment"] == "none"


def test_direct_answers_and_rationales_are_kept_in_meta(convert, fixtures_path):
    samples, _, _ = convert("aokvqa", fixtures_path / "aokvqa/train")
    meta = samples["aokvqa/22MexNkBPpdZGX6sxbxVBH#2"].meta
    assert meta["direct_answers"].count("cab") == 2 and "his ride" in meta["direct_answers"]  # they disagree
    assert len(meta["rationales"]) == 3 and meta["difficult_direct_answer"] is False
    assert meta["choices"] == ["skateboarder", "train", "delivery", "cab"] and meta["correct_choice_idx"] == 3
    assert meta["question_id"] == "22MexNkBPpdZGX6sxbxVBH" and meta["image_id"] == "299207"
    assert meta["split"] == "train"


def test_bad_records_are_rejected_with_reasons(convert, fixtures_path):
    _, rejects, ledger = convert("aokvqa", fixtures_path / "aokvqa/train")
    assert {r["id"]: r["reason"].split(":")[0] for r in rejects} == {
        "2pF5HfZbTn7cdCgM2ptPX7": "duplicate_question_id", "7sKxHQ4hJwS2ZyWb8jXLtE": "bad_correct_choice_idx",
        "9cQqYb3BTrV5Lm2NwKd8Hz": "empty_choice"}
    assert ledger.records_in == 6


def test_test_split_without_answers_is_rejected(convert, fixtures_path):
    samples, rejects, _ = convert("aokvqa", fixtures_path / "aokvqa/test")
    assert samples == {}
    assert [r["reason"] for r in rejects] == [
        "no_answer: record has no correct_choice_idx (the test split is private)"] * 2


def test_malformed_records_do_not_stop_the_file(convert, fixtures_path):
    samples, rejects, ledger = convert("aokvqa", fixtures_path / "aokvqa/malformed")
    assert ledger.by_reason() == {"malformed_record": 2, "image_token_in_text": 1}
    bowl = samples["aokvqa/2VzXP7kJYS9HCbY3nLNSnf#2"]  # three choices -> three copies
    assert "aokvqa/2VzXP7kJYS9HCbY3nLNSnf#3" not in samples
    assert bowl.images == ["val2017/000000000009.jpg"]
    assert bowl.conversations[0]["value"].split("\n")[2:5] == ["A. blue", "B. red", "C. green"]
    assert bowl.conversations[1]["value"] == "C"


@pytest.mark.parametrize("policy", list(PromptPolicy))
def test_format_prompt_policy_none_leaves_the_prompt_out(convert, fixtures_path, policy):
    samples, _, _ = convert("aokvqa", fixtures_path / "aokvqa/train", options=ConvertOptions(format_prompt=policy))
    human = samples["aokvqa/2pF5HfZbTn7cdCgM2ptPX7"].conversations[0]["value"]
    assert human.endswith(LETTER_PROMPT) == (policy is not PromptPolicy.none)
    assert human.count(LETTER_PROMPT) <= 1
