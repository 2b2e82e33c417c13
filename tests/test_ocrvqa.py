"""OCR-VQA: dataset.json keyed by ASIN/ISBN strings, one conversation per book, split kept and selectable."""

from __future__ import annotations

import pytest

from datamix.converters import ConvertOptions
from datamix.errors import ConverterError

PROMPT = "Answer the question using a single word or phrase."


def test_all_questions_of_a_book_are_one_conversation_with_the_prompt_on_the_first(convert, fixtures_path):
    samples, _, ledger = convert("ocrvqa", fixtures_path / "ocrvqa/train")
    s = samples["ocrvqa/140031996X"]
    assert s.task == "vqa_short" and s.source == "ocrvqa"
    humans = [t["value"] for t in s.conversations[0::2]]
    assert humans[0] == f"<image>\nWho wrote this book?\n{PROMPT}"
    assert humans[1:] == ["What is the title of this book?", "What is the genre of this book?",
                          "Is this book related to Literature & Fiction?", "Is this book related to Travel?"]
    assert [t["value"] for t in s.conversations[1::2]] == [
        "Mark Twain", "The Adventures of Tom Sawyer", "Literature & Fiction", "Yes", "No"]
    assert ledger.samples_out == 4


def test_keys_stay_strings_and_images_are_jpg_whatever_the_url_says(convert, fixtures_path):
    samples, _, _ = convert("ocrvqa", fixtures_path / "ocrvqa/train")
    assert {"ocrvqa/140031996X", "ocrvqa/0316015849", "ocrvqa/761183272"} <= set(samples)  # X, leading zero
    gif = samples["ocrvqa/0316015849"]
    assert gif.images == ["images/0316015849.jpg"]  # LLaVA saved the GIF cover as .jpg
    assert gif.meta["image_url_ext"] == ".gif" and gif.meta["image_url"].endswith("41aQPTCmeVL.gif")
    assert samples["ocrvqa/761183272"].images == ["images/761183272.jpg"]  # a PNG URL
    assert gif.meta["book_id"] == "0316015849"


def test_book_metadata_and_split_are_in_meta(convert, fixtures_path):
    samples, _, _ = convert("ocrvqa", fixtures_path / "ocrvqa/train")
    meta = samples["ocrvqa/761183272"].meta
    assert meta["title"] == "Mary Engelbreit 2017 Deluxe Wall Calendar" and meta["author"] == "Mary Engelbreit"
    assert meta["genre"] == "Calendars" and meta["split"] == 2 and meta["split_name"] == "val"


@pytest.mark.parametrize("split, kept", [
    ("all", {"140031996X", "0316015849", "761183272", "B00KV7Z5IM"}),
    ("train", {"140031996X", "0316015849"}),
    ("val", {"761183272"}),
    ("test", {"B00KV7Z5IM"}),
])
def test_split_option_keeps_one_split_and_files_the_rest(convert, fixtures_path, split, kept):
    samples, rejects, ledger = convert("ocrvqa", fixtures_path / "ocrvqa/train", options=ConvertOptions(split=split))
    assert {s.removeprefix("ocrvqa/") for s in samples} == kept
    other = [r for r in rejects if r["reason"].startswith("other_split")]
    assert len(other) == {"all": 0, "train": 10, "val": 15, "test": 15}[split]
    assert ledger.records_in == 24


def test_broken_books_and_answers_are_rejected_per_question(convert, fixtures_path):
    samples, rejects, _ = convert("ocrvqa", fixtures_path / "ocrvqa/train")
    reasons = {r["id"]: r["reason"].split(":")[0] for r in rejects}
    assert reasons == {"0060935464#0": "qa_length_mismatch", "0060935464#1": "qa_length_mismatch",
                       "0060935464#2": "qa_length_mismatch", "1455586692": "no_questions",
                       "B00KV7Z5IM#0": "placeholder_answer", "B00KV7Z5IM#4": "empty_answer"}
    # the rest of the book stays; the first kept question carries the prompt
    kids = samples["ocrvqa/B00KV7Z5IM"]
    assert kids.conversations[0]["value"] == f"<image>\nWhat is the title of this book?\n{PROMPT}"
    assert len(kids.conversations) == 6


def test_malformed_entries_and_unsafe_keys_are_rejected(convert, fixtures_path):
    samples, rejects, ledger = convert("ocrvqa", fixtures_path / "ocrvqa/malformed")
    assert list(samples) == ["ocrvqa/0743273567"]
    assert ledger.by_reason() == {"malformed_record": 2, "bad_key": 1}
    assert {r["id"] for r in rejects} == {"0451524934", "0062315005", "../../etc/passwd#0"}


def test_a_list_file_is_a_clear_error(convert, fixtures_path):
    with pytest.raises(ConverterError, match="not an OCR-VQA dataset.json"):
        convert("ocrvqa", fixtures_path / "aokvqa/train")
    with pytest.raises(ConverterError, match="no entry has 'questions' or 'imageURL'"):
        convert("ocrvqa", fixtures_path / "gqa/balanced")
