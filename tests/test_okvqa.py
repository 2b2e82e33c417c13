"""OK-VQA: VQA-format files with `image_id*10+k` ids, knowledge categories, raw vs processed answers."""

from __future__ import annotations

import pytest

from datamix.converters import ConvertOptions
from datamix.errors import ConverterError

PROMPT = "Answer the question using a single word or phrase."


def test_questions_of_one_image_become_one_conversation_in_question_id_order(convert, fixtures_path):
    samples, _, ledger = convert("okvqa", fixtures_path / "okvqa/train")
    assert sorted(samples) == ["okvqa/297147", "okvqa/51606", "okvqa/9"]
    s = samples["okvqa/51606"]
    assert s.source == "okvqa" and s.task == "vqa_short"
    assert s.images == ["train2017/000000051606.jpg"]  # LLaVA-1.5 reads OK-VQA from coco/train2017
    # 516061 before 516065 (question_id = image_id*10 + k), though the file lists 516065 first
    assert [t["value"] for t in s.conversations] == [
        f"<image>\nWhich country is this woman likely from?\n{PROMPT}", "usa",
        "What is the hairstyle of the blond called?", "pony tail"]
    assert s.meta["question_ids"] == ["516061", "516065"]
    assert ledger.samples_out == 3 and ledger.records_out == 4


def test_knowledge_categories_and_raw_answers_are_kept(convert, fixtures_path):
    samples, _, _ = convert("okvqa", fixtures_path / "okvqa/train")
    meta = samples["okvqa/51606"].meta
    assert meta["question_types"] == ["six", "three"]
    assert meta["knowledge_categories"] == ["Geography, History, Language and Culture",
                                            "Objects, Material and Clothing"]
    assert meta["raw_answers"][0] == ["Sweden", "usa", "U.S.A."]  # what the workers typed
    assert meta["answers"][0] == ["sweden", "usa", "usa"]  # processed
    assert len(meta["answers"][1]) == 10 and len(meta["answers"][0]) == 3  # the answer count varies
    assert meta["image_id"] == "51606" and meta["answer_policy"] == "most_common"


def test_answer_option_picks_processed_or_raw_majority(convert, fixtures_path):
    processed, _, _ = convert("okvqa", fixtures_path / "okvqa/train")
    raw, _, _ = convert("okvqa", fixtures_path / "okvqa/train", options=ConvertOptions(answer="most_common_raw"))
    assert processed["okvqa/9"].conversations[1]["value"] == "noodle"
    assert raw["okvqa/9"].conversations[1]["value"] == "noodles"  # 4x "noodles" among the raw answers
    # three distinct raw answers, one each: the tie goes to the first given
    assert raw["okvqa/51606"].conversations[1]["value"] == "Sweden"
    assert raw["okvqa/51606"].meta["answer_policy"] == "most_common_raw"


def test_unpaired_and_empty_records_are_rejected_with_reasons(convert, fixtures_path):
    _, rejects, ledger = convert("okvqa", fixtures_path / "okvqa/train")
    reasons = {r["id"]: r["reason"].split(":")[0] for r in rejects}
    assert reasons == {"12340": "no_answer", "7771": "no_question", "5755": "empty_answer"}
    assert ledger.records_in == 7  # 6 questions + the annotation without a question


def test_malformed_records_are_rejected_and_the_rest_converts(convert, fixtures_path):
    samples, rejects, ledger = convert("okvqa", fixtures_path / "okvqa/malformed")
    assert list(samples) == ["okvqa/393225"]
    assert ledger.by_reason() == {"bad_image_id": 1, "empty_question": 1, "malformed_record": 1}
    assert {r["id"] for r in rejects} == {"#1", "3932260", "3932251"}


def test_2014_naming_uses_the_files_split(convert, fixtures_path):
    samples, _, _ = convert("okvqa", fixtures_path / "okvqa/malformed", options=ConvertOptions(coco_naming="2014"))
    assert samples["okvqa/393225"].images == ["val2014/COCO_val2014_000000393225.jpg"]


def test_a_file_of_another_source_is_a_clear_error(convert, fixtures_path):
    with pytest.raises(ConverterError, match="not an OK-VQA file"):
        convert("okvqa", fixtures_path / "gqa/balanced")


def test_annotations_alone_are_an_error_naming_the_missing_file(convert, fixtures_path):
    with pytest.raises(ConverterError, match="no questions file"):
        convert("okvqa", fixtures_path / "okvqa/train/mscoco_train2014_annotations.json")
