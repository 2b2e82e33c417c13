"""Response-format prompts: exact strings, policies, idempotence, the record in meta."""

from __future__ import annotations

from datamix.prompts import FORMAT_PROMPTS, apply_format_prompt
from datamix.schema import Sample


def qa(task: str, *questions: str) -> Sample:
    conversations = []
    for i, q in enumerate(questions):
        conversations += [{"from": "human", "value": ("<image>\n" if i == 0 else "") + q}, {"from": "gpt", "value": "x"}]
    return Sample(id="s/1", source="s", task=task, images=["a.jpg"], conversations=conversations)


def test_exact_strings_with_ascii_apostrophe():
    assert FORMAT_PROMPTS["vqa_short"] == "Answer the question using a single word or phrase."
    assert FORMAT_PROMPTS["mcq"] == "Answer with the option's letter from the given choices directly."
    assert FORMAT_PROMPTS["caption"] == "Provide a one-sentence caption for the provided image."
    assert all("\u2019" not in p for p in FORMAT_PROMPTS.values())


def test_first_turn_appends_once_with_a_newline_and_records_it():
    s = apply_format_prompt(qa("vqa_short", "Is it red?", "Is it big?"), "first_turn")
    assert s.conversations[0]["value"] == "<image>\nIs it red?\nAnswer the question using a single word or phrase."
    assert s.conversations[2]["value"] == "Is it big?"
    assert s.meta == {"format_prompt": FORMAT_PROMPTS["vqa_short"], "format_prompt_policy": "first_turn"}


def test_every_turn_and_idempotence():
    s = apply_format_prompt(qa("mcq", "Which?\nA. x\nB. y", "And now?"), "every_turn")
    once = [t["value"] for t in s.conversations]
    apply_format_prompt(s, "every_turn")
    apply_format_prompt(s, "first_turn")
    assert [t["value"] for t in s.conversations] == once
    assert all(v.endswith(FORMAT_PROMPTS["mcq"]) for v in once[0::2])


def test_a_source_that_already_carries_the_prompt_is_not_prompted_again():
    s = qa("vqa_short", "Is it red?\nAnswer the question using a single word or phrase.")
    apply_format_prompt(s, "first_turn")
    assert s.conversations[0]["value"].count("single word") == 1


def test_none_and_tasks_without_a_prompt_are_left_alone():
    assert apply_format_prompt(qa("vqa_short", "Is it red?"), "none").conversations[0]["value"] == "<image>\nIs it red?"
    s = apply_format_prompt(qa("conversation", "Describe it."), "every_turn")
    assert s.conversations[0]["value"] == "<image>\nDescribe it." and s.meta == {}
