"""ShareGPT converter, end to end: official-shaped files -> Parquet + rejects ledger."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datamix.converters.base import content_hash
from datamix.convert import rejects_path, run_conversion
from datamix.table import read_samples

FIXTURES = Path(__file__).parent / "fixtures" / "sharegpt"
SG90K = "sg_90k_part1_html_cleaned.json"
V3 = "ShareGPT_V3_unfiltered_cleaned_split.json"
MEDICAL = "medicalgpt_sharegpt_zh.jsonl"
CHATHUB = "*This conversation is shared from [**ChatHub**](https://chathub.gg/)*"


def convert(tmp_path: Path, *names: str):
    out = tmp_path / "sharegpt.parquet"
    ledger = run_conversion("sharegpt", [FIXTURES / name for name in names], out)
    samples = {s.id: s for s in read_samples(out)}
    rejects = [json.loads(line) for line in rejects_path(out).read_text(encoding="utf-8").splitlines()]
    return ledger, samples, rejects


def turns(sample) -> list[tuple[str, str]]:
    return [(t["from"], t["value"]) for t in sample.conversations]


@pytest.fixture
def sg90k(tmp_path):
    return convert(tmp_path, SG90K)


def test_sg90k_counts_and_rejects(sg90k):
    ledger, samples, rejects = sg90k
    assert ledger.records_in == 10
    assert ledger.records_in == ledger.records_out + ledger.rejected
    assert ledger.records_out == ledger.samples_out == len(samples) == 6
    by_id = {r["id"]: r["reason"] for r in rejects}
    assert by_id["uNkn0wn"] == "unknown_role: 'observation'"
    assert by_id["n0Answr"].startswith("no_usable_exchange: ")
    # `null` and a bare string inside the list are malformed records, filed under their position.
    assert by_id["#8"].startswith("malformed_record")
    assert by_id["#9"].startswith("malformed_record")
    assert all(r["file"] == SG90K and r["source"] == "sharegpt" for r in rejects)


def test_leading_blank_gpt_turns_dropped_and_text_kept_verbatim(sg90k):
    _, samples, _ = sg90k
    dutch = samples["sharegpt/5lXOVeW"]  # leading gpt "\u200b"; Dutch text is kept (no language filter)
    assert turns(dutch) == [("human", "Hoi, kun je mij helpen met een sollicitatiebrief?"),
                            ("gpt", "Natuurlijk! Voor welke functie solliciteer je?")]
    assert dutch.meta == {"original_id": "5lXOVeW", "file": SG90K, "dropped_turns": 1}
    assert dutch.task == "text" and dutch.images == [] and dutch.source == "sharegpt"
    placeholder = samples["sharegpt/JFizGxT"]  # leading gpt "EmptyMarkdownContent"
    assert turns(placeholder)[0] == ("human", "What is the capital of Australia?")
    assert placeholder.meta["dropped_turns"] == 1


def test_leading_system_turn_kept_and_roles_mapped(sg90k):
    _, samples, _ = sg90k
    chathub = samples["sharegpt/QOL3GJy"]  # system, user, bing
    assert turns(chathub) == [
        ("system", CHATHUB),
        ("human", "Write a haiku about autumn."),
        ("gpt", "Crisp leaves drift and fall\nGolden light on quiet paths\nThe year exhales slow"),
    ]
    assert "dropped_turns" not in chathub.meta and "merged_turns" not in chathub.meta
    # A gpt greeting before the system turn is dropped; the system turn still leads.
    greeted = samples["sharegpt/Zx8cHub"]
    assert turns(greeted) == [("system", CHATHUB), ("human", "Name a prime number."), ("gpt", "7")]
    assert greeted.meta["dropped_turns"] == 1


def test_consecutive_turns_merged_and_trailing_human_dropped(sg90k):
    _, samples, _ = sg90k
    sample = samples["sharegpt/IXmHCvM"]  # human, human, chatgpt, chatgpt, human
    assert turns(sample) == [
        ("human", "I have a question about Python.\n\nHow do I reverse a list?"),
        ("gpt", "Use `my_list[::-1]` for a reversed copy\n\nor `my_list.reverse()` to reverse it in place."),
    ]
    assert sample.meta["merged_turns"] == 2 and sample.meta["dropped_turns"] == 1


def test_whitespace_turn_and_mid_conversation_system_dropped(sg90k):
    _, samples, _ = sg90k
    sample = samples["sharegpt/wS3kP2a"]  # human, gpt "   \n\t", human, assistant, system, human, bard
    assert turns(sample) == [
        ("human", "Translate 'cat' to French.\n\nHello?"),
        ("gpt", "'Cat' in French is 'chat'."),
        ("human", "And in German?"),
        ("gpt", "'Katze'."),
    ]
    assert sample.meta["dropped_turns"] == 2 and sample.meta["merged_turns"] == 1


def test_v3_model_key_int_id_duplicates_and_html_verbatim(tmp_path):
    ledger, samples, rejects = convert(tmp_path, V3)
    assert (ledger.records_in, ledger.records_out, rejects) == (4, 4, [])
    assert sorted(samples) == ["sharegpt/91823", "sharegpt/QWJhYvA_0", "sharegpt/QWJhYvA_0#1", "sharegpt/QWJhYvA_2"]
    assert samples["sharegpt/QWJhYvA_0"].meta["model"] == "gpt4"
    assert "Hamlet" in samples["sharegpt/QWJhYvA_0"].conversations[0]["value"]
    assert "Macbeth" in samples["sharegpt/QWJhYvA_0#1"].conversations[0]["value"]
    assert samples["sharegpt/QWJhYvA_0#1"].meta["original_id"] == "QWJhYvA_0"
    assert "model" not in samples["sharegpt/QWJhYvA_2"].meta  # "" is no model
    assert samples["sharegpt/91823"].meta["original_id"] == "91823"
    html = samples["sharegpt/QWJhYvA_2"].conversations[1]["value"]
    assert html == '<div class="markdown prose w-full break-words dark:prose-invert light"><p>Yes.</p></div>'


def test_json_lines_without_ids_get_stable_content_hash(tmp_path):
    ledger, samples, rejects = convert(tmp_path, MEDICAL)
    assert ledger.records_in == 5 and ledger.records_out == 3
    assert ledger.records_in == ledger.records_out + ledger.rejected
    reasons = sorted(r["reason"].split(":")[0] for r in rejects)
    assert reasons == ["invalid_json", "malformed_record"]
    first = content_hash("小孩发烧怎么办？", "多喝水，注意休息，体温超过38.5℃可以服用退烧药。")
    # The last record repeats the first with `"id": ""`: same hash, so it gets `#1`.
    assert {f"sharegpt/{first}", f"sharegpt/{first}#1"} <= set(samples)
    second = content_hash("头痛", "", "头痛是什么原因？", "Головная боль: 可能是紧张、睡眠不足或感冒引起的。")
    assert turns(samples[f"sharegpt/{second}"]) == [
        ("human", "头痛\n\n头痛是什么原因？"),
        ("gpt", "Головная боль: 可能是紧张、睡眠不足或感冒引起的。"),
    ]
    # Same input, same ids on a second run.
    _, again, _ = convert(tmp_path / "again", MEDICAL)
    assert sorted(again) == sorted(samples)


def test_all_files_together_balance(tmp_path):
    ledger, samples, rejects = convert(tmp_path, SG90K, V3, MEDICAL)
    assert ledger.records_in == 19
    assert ledger.records_out == len(samples) == 13
    assert ledger.rejected == len(rejects) == 6
    assert ledger.balanced()
    assert all(s.conversations[-1]["from"] == "gpt" for s in samples.values())
