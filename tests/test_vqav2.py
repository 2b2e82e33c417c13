"""VQAv2: the join, the per-image merge, answer policies, image naming and every quirk fixture."""

from __future__ import annotations

import pytest

from datamix.converters import ConvertOptions
from datamix.prompts import PromptPolicy
from datamix.schema import validate

PROMPT = "Answer the question using a single word or phrase."


def test_questions_of_one_image_merge_into_one_conversation_in_question_id_order(convert, fixtures_path):
    samples, _, _ = convert("vqav2", fixtures_path / "vqav2/train")
    s = samples["vqav2/458752"]
    assert s.task == "vqa_short" and s.source == "vqav2"
    assert s.images == ["train2017/000000458752.jpg"]
    assert [t["from"] for t in s.conversations] == ["human", "gpt"] * 3
    assert s.conversations[0]["value"] == f"<image>\nWhat is this photo taken looking through?\n{PROMPT}"
    assert s.conversations[2]["value"] == "What position is this man playing?"  # first_turn: later turns bare
    assert [t["value"] for t in s.conversations[1::2]] == ["net", "pitcher", "orange"]
    # question ids out of file order (9001 listed before 9000) are sorted: 9000 is the first turn
    assert samples["vqav2/9"].conversations[0]["value"].startswith("<image>\nIs it sunny?")
    assert all(validate(x) is None for x in samples.values())


def test_meta_keeps_all_ten_answers_types_and_question_ids(convert, fixtures_path):
    samples, _, _ = convert("vqav2", fixtures_path / "vqav2/train")
    meta = samples["vqav2/458752"].meta
    assert meta["question_ids"] == ["458752000", "458752001", "458752002"]
    assert meta["answers"][0] == ["net", "net", "netting", "net", "net", "net", "mesh", "net", "net", "net"]
    assert meta["answer_types"] == ["other", "other", "other"]
    assert meta["question_types"][0] == "what is this"
    assert meta["image_id"] == "458752"  # ids are strings in every converter
    assert meta["format_prompt"] == PROMPT and meta["format_prompt_policy"] == "first_turn"
    assert meta["answer_policy"] == "multiple_choice_answer"


def test_yes_no_questions_with_other_answers_keep_the_consensus(convert, fixtures_path):
    samples, _, _ = convert("vqav2", fixtures_path / "vqav2/train")
    assert samples["vqav2/131074"].conversations[1]["value"] == "no"
    assert "no windows" in samples["vqav2/131074"].meta["answers"][0]
    assert "poorly" in samples["vqav2/393224"].meta["answers"][0]


def test_most_common_answer_breaks_ties_by_first_answer(convert, fixtures_path):
    consensus, _, _ = convert("vqav2", fixtures_path / "vqav2/train")
    common, _, _ = convert("vqav2", fixtures_path / "vqav2/train", options=ConvertOptions(answer="most_common"))
    # 5 x white, 5 x gray, white given first; the file's multiple_choice_answer is gray
    assert consensus["vqav2/262148"].conversations[1]["value"] == "gray"
    assert common["vqav2/262148"].conversations[1]["value"] == "white"
    assert common["vqav2/458752"].conversations[1]["value"] == "net"
    assert common["vqav2/262148"].meta["answer_policy"] == "most_common"


def test_every_record_is_in_the_output_or_rejected_with_its_reason(convert, fixtures_path):
    samples, rejects, ledger = convert("vqav2", fixtures_path / "vqav2/train")
    by_id = {r["id"]: r["reason"] for r in rejects}
    assert by_id["524291000"].startswith("no_answer")
    assert by_id["524292000"] == "empty_answer"
    assert by_id["999999000"].startswith("no_question")
    assert ledger.records_in == 11 and ledger.records_out == 8 and ledger.rejected == 3
    assert ledger.samples_out == len(samples) == 5
    assert all(r["source"] == "vqav2" and r["file"].endswith(".json") for r in rejects)


def test_test_split_questions_alone_are_rejected_for_training(convert, fixtures_path):
    samples, rejects, ledger = convert("vqav2", fixtures_path / "vqav2/test")
    assert samples == {}
    assert ledger.by_reason() == {"no_answer": 3}


def test_malformed_file_falls_back_and_rejects_only_the_bad_records(convert, fixtures_path):
    samples, rejects, ledger = convert("vqav2", fixtures_path / "vqav2/malformed")
    assert list(samples) == ["vqav2/262162"]  # string and int question ids both joined
    s = samples["vqav2/262162"]
    assert [t["value"] for t in s.conversations[1::2]] == ["no", "yes"]
    assert s.images == ["train2017/000000262162.jpg"]
    assert ledger.by_reason() == {"bad_image_id": 1, "empty_question": 1, "malformed_record": 1}


def test_2014_naming_uses_the_split_of_the_file(convert, fixtures_path):
    samples, _, _ = convert("vqav2", fixtures_path / "vqav2/train", fixtures_path / "vqav2/malformed",
                            options=ConvertOptions(coco_naming="2014"))
    assert samples["vqav2/458752"].images == ["train2014/COCO_train2014_000000458752.jpg"]
    assert samples["vqav2/262162"].images == ["val2014/COCO_val2014_000000262162.jpg"]


@pytest.mark.parametrize("policy", list(PromptPolicy))
def test_prompt_policies(convert, fixtures_path, policy):
    samples, _, _ = convert("vqav2", fixtures_path / "vqav2/train", options=ConvertOptions(format_prompt=policy))
    humans = [t["value"] for t in samples["vqav2/458752"].conversations[0::2]]
    expected = {"none": 0, "first_turn": 1, "every_turn": 3}[policy.value]
    assert sum(h.endswith("\n" + PROMPT) for h in humans) == expected
    assert all(h.count(PROMPT) <= 1 for h in humans)
    assert ("format_prompt" in samples["vqav2/458752"].meta) == (policy is not PromptPolicy.none)


def test_input_order_does_not_change_the_output(convert, fixtures_path, tmp_path):
    a, _, _ = convert("vqav2", fixtures_path / "vqav2/train/v2_mscoco_train2014_annotations.json",
                      fixtures_path / "vqav2/train/v2_OpenEnded_mscoco_train2014_questions.json")
    b, _, _ = convert("vqav2", fixtures_path / "vqav2/train")
    assert [s.to_dict() for s in a.values()] == [s.to_dict() for s in b.values()]


def test_a_file_of_another_source_stops_with_the_file_named(convert, fixtures_path):
    from datamix.errors import ConverterError

    with pytest.raises(ConverterError, match="train_balanced_questions.json: not a VQAv2 file"):
        convert("vqav2", fixtures_path / "gqa/balanced")
