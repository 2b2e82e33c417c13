"""GQA: dict-keyed questions, string ids, train_all shards, test splits without answers."""

from __future__ import annotations

import pytest

from datamix.errors import ConverterError
from datamix.schema import validate

PROMPT = "Answer the question using a single word or phrase."


def test_questions_merge_per_image_with_string_ids_kept(convert, fixtures_path):
    samples, _, _ = convert("gqa", fixtures_path / "gqa/balanced")
    s = samples["gqa/2354786"]
    assert s.images == ["images/2354786.jpg"]
    assert s.conversations == [
        {"from": "human", "value": f"<image>\nIs the sky dark?\n{PROMPT}"},
        {"from": "gpt", "value": "yes"},
        {"from": "human", "value": "Is the sky bright?"},
        {"from": "gpt", "value": "no"},
    ]
    assert s.meta["question_ids"] == ["02930152", "02930160"]  # zero padding kept, numeric order
    assert s.meta["full_answers"] == ["Yes, the sky is dark.", "No, the sky is dark."]
    assert s.meta["types"][0] == {"detailed": "verifyAttr", "semantic": "attr", "structural": "verify"}
    assert s.meta["image_id"] == "2354786"
    assert all(validate(x) is None for x in samples.values())


def test_n_prefixed_image_ids_and_unbalanced_records(convert, fixtures_path):
    samples, _, _ = convert("gqa", fixtures_path / "gqa/balanced")
    s = samples["gqa/n250821"]
    assert s.images == ["images/n250821.jpg"]
    assert s.meta["is_balanced"] == [False]


def test_bad_records_are_rejected_with_reasons(convert, fixtures_path):
    samples, rejects, ledger = convert("gqa", fixtures_path / "gqa/balanced")
    assert {r["id"]: r["reason"] for r in rejects} == {"00124": "missing_image_id", "00125": "empty_answer"}
    assert ledger.records_in == 6 and ledger.records_out == 4
    assert set(samples) == {"gqa/2354786", "gqa/n250821", "gqa/2417997"}


def test_train_all_folder_of_ten_shards(convert, fixtures_path):
    samples, rejects, ledger = convert("gqa", fixtures_path / "gqa/train_all_questions")
    assert len(samples) == 10  # one image per shard
    assert ledger.records_in == 32
    reasons = {r["id"]: r["reason"].split(":")[0] for r in rejects}
    assert reasons == {"00000001": "duplicate_question_id", "07999999": "malformed_record"}
    assert [t["value"] for t in samples["gqa/n41112"].conversations[1::2]] == ["no", "yes", "no"]


def test_test_split_without_answers_is_rejected(convert, fixtures_path):
    samples, _, ledger = convert("gqa", fixtures_path / "gqa/test")
    assert samples == {} and ledger.by_reason() == {"no_answer": 2}


def test_a_list_file_is_refused_with_the_file_named(convert, fixtures_path, tmp_path):
    bad = tmp_path / "questions.json"
    bad.write_text('[{"question": "x"}]')
    with pytest.raises(ConverterError, match="questions.json: not a GQA questions file"):
        convert("gqa", bad)
