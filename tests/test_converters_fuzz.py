"""Property-based tests: malformed input never crashes `datamix convert` and never loses a record.

Two kinds of generated input:
- byte damage to the checked-in fixtures of every registered converter (so a converter added later with a
  fixture folder is covered too): truncation, inserted tokens (NaN, null, a lone surrogate escape, invalid
  UTF-8, deep nesting, a BOM, NUL), deleted or replaced bytes;
- records in each converter's real shape with keys dropped, wrong types, None, huge numbers, odd unicode
  (zero-width, surrogates), NaN, nesting, repeated ids, path-like ids, as a JSON list or JSON Lines.

Every run must end as `convert_outcome.run_convert` demands: exit 1 with one clear line, or exit 0 with
records in = used + rejected and a readable Parquet file; for the record-shaped inputs, `records in` must
also equal the number of records written.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from convert_outcome import run_convert
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from datamix.converters import CONVERTERS

FIXTURES = Path(__file__).parent / "fixtures"
SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])


def input_sets(converter_id: str) -> list[list[Path]]:
    """The fixture inputs of a converter: each folder's files together (VQAv2 pairs questions with
    annotations), and each top-level file alone."""
    root = FIXTURES / converter_id
    folders = [folder for folder in sorted(root.iterdir()) if folder.is_dir()]
    sets = [sorted(p for p in folder.rglob("*") if p.is_file()) for folder in folders]
    return sets + [[p] for p in sorted(root.iterdir()) if p.is_file()]


TOKENS = [b"null", b"NaN", b"-Infinity", b"1e400", b"\\ud800", b"\\udc00x", b"\xff", b"\xed\xa0\x80", b"\x00",
          b"\xef\xbb\xbf", b"[" * 3000, b"{" * 50, b"}", b"]", b",", b'"', b":", b"\n", b"\\", b"123456789" * 5,
          b'"../../etc/passwd"', "\u200b".encode()]


@st.composite
def damaged(draw, data: bytes) -> bytes:
    kind = draw(st.sampled_from(["truncate", "insert", "delete", "replace"]))
    at = draw(st.integers(0, len(data)))
    if kind == "truncate":
        return data[:at]
    if kind == "delete":
        return data[:at] + data[at + draw(st.integers(1, 64)):]
    token = draw(st.sampled_from(TOKENS) | st.binary(min_size=1, max_size=8))
    return data[:at] + token + data[at + (len(token) if kind == "replace" else 0):]


@pytest.mark.parametrize("converter_id", sorted(CONVERTERS))
@settings(max_examples=100, **SETTINGS)
@given(data=st.data())
def test_damaged_fixture_bytes_fail_cleanly_or_balance(converter_id, data, tmp_path_factory):
    files = data.draw(st.sampled_from(input_sets(converter_id)), label="inputs")
    target = data.draw(st.sampled_from(files), label="damaged file")
    work = tmp_path_factory.mktemp("damaged")
    copies = []
    for f in files:
        copy = work / f.name
        copy.write_bytes(data.draw(damaged(f.read_bytes())) if f == target else f.read_bytes())
        copies.append(copy)
    event(f"exit {run_convert(converter_id, copies, work / 'out' / 'o.parquet').exit_code}")


# -- records in each converter's real shape -----------------------------------------------------------------

ODD_TEXT = st.sampled_from(["", " ", "\u200b\u200d", "\ufeff", "<image>", "EmptyMarkdownContent", "a\x00b",
                            "../../etc/passwd", "C:\\x", "\\\\srv\\x", "\U0001f600", "\u202e", "x" * 300])
TEXT = st.text(max_size=12) | ODD_TEXT | st.text(st.characters(codec=None, categories=["Cs"]), min_size=1, max_size=2)
SCALAR = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
          | TEXT)
NESTED = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                      max_leaves=6)
DEEP = st.integers(1, 3000).map(lambda n: {"__deep__": n})  # replaced by n nested lists when written
DEEP_MARK = re.compile(r'\{"__deep__": (\d+)\}')


@st.composite
def mutated(draw, record: dict) -> object:
    """A real record with a few keys dropped, retyped or added; sometimes not an object at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(NESTED | DEEP)
    record = dict(record)
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(sorted(record)) | TEXT if record else TEXT)
        action = draw(st.sampled_from(["drop", "retype", "nest"]))
        if action == "drop":
            record.pop(key, None)
        else:
            record[key] = draw(SCALAR if action == "retype" else NESTED | DEEP)
    return record


def to_json(value: object, *, ensure_ascii: bool) -> bytes:
    """JSON text as a careless writer makes it: NaN allowed, lone surrogates escaped or written as raw bytes."""
    text = json.dumps(value, allow_nan=True, ensure_ascii=ensure_ascii)
    text = DEEP_MARK.sub(lambda m: "[" * int(m.group(1)) + "]" * int(m.group(1)), text)
    return text.encode("utf-8", "surrogatepass")


TURNS = [{"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "A cat."},
         {"from": "human", "value": "And the colour?"}, {"from": "gpt", "value": "Grey."}]


@st.composite
def conversation_record(draw, with_image: bool) -> object:
    turns = [draw(mutated(t)) if draw(st.booleans()) else t for t in TURNS]
    record = {"id": draw(st.sampled_from(["a", "b", "0001"]) | SCALAR), "conversations": turns}
    if with_image:
        record["image"] = draw(st.sampled_from(["coco/train2017/000000000001.jpg", ["x.jpg"]]) | SCALAR)
    return draw(mutated(record)) if draw(st.booleans()) else record


@pytest.mark.parametrize("converter_id", ["sharegpt", "llava"])
@settings(max_examples=100, **SETTINGS)
@given(data=st.data())
def test_malformed_conversation_records_are_each_used_or_rejected(converter_id, data, tmp_path_factory):
    records = data.draw(st.lists(conversation_record(converter_id == "llava"), min_size=1, max_size=6))
    lines = data.draw(st.booleans(), label="JSON Lines")
    ascii_only = data.draw(st.booleans(), label="ensure_ascii")
    work = tmp_path_factory.mktemp(converter_id)
    path = work / ("records.jsonl" if lines else "records.json")
    if lines:
        records = [{"conversations": TURNS[:2]}, *records]  # the first line names the format
        path.write_bytes(b"\n".join(to_json(r, ensure_ascii=ascii_only) for r in records) + b"\n")
    else:
        path.write_bytes(to_json(records, ensure_ascii=ascii_only))
    outcome = run_convert(converter_id, [path], work / "o.parquet")
    event(f"exit {outcome.exit_code}")
    if outcome.exit_code == 0:
        assert outcome.records_in == len(records)


GQA_RECORD = {"semantic": [{"operation": "select", "dependencies": [], "argument": "sky (2486325)"}],
              "question": "Is the sky dark?", "imageId": "2354786", "isBalanced": True, "answer": "yes",
              "types": {"detailed": "verifyAttr", "semantic": "attr", "structural": "verify"},
              "fullAnswer": "Yes, the sky is dark."}


@settings(max_examples=100, **SETTINGS)
@given(data=st.data())
def test_malformed_gqa_records_are_each_used_or_rejected(data, tmp_path_factory):
    ids = st.sampled_from(["02930152", "02930160", "7"]) | TEXT  # a small pool, so ids repeat
    image_ids = st.sampled_from(["2354786", "n250821", "../../etc/passwd", "/abs", "a\x00"]) | SCALAR
    pairs = data.draw(st.lists(st.tuples(ids, mutated(GQA_RECORD), image_ids, st.booleans()), min_size=1, max_size=6))
    members = []
    for qid, record, image_id, set_image in pairs:
        if set_image and isinstance(record, dict):
            record["imageId"] = image_id
        value = to_json(record, ensure_ascii=data.draw(st.booleans()))
        members.append(to_json(qid, ensure_ascii=True) + b": " + value)
    work = tmp_path_factory.mktemp("gqa")
    path = work / "train_balanced_questions.json"
    path.write_bytes(b"{" + b", ".join(members) + b"}")
    outcome = run_convert("gqa", [path], work / "o.parquet")
    event(f"exit {outcome.exit_code}")
    if outcome.exit_code == 0:
        assert outcome.records_in == len(pairs)  # an id given twice is still two records


QUESTION = {"image_id": 458752, "question": "What is this photo taken looking through?", "question_id": 458752000}
ANNOTATION = {"question_type": "what is this", "multiple_choice_answer": "net", "image_id": 458752,
              "answers": [{"answer": "net", "answer_confidence": "maybe", "answer_id": 1}] * 3,
              "answer_type": "other", "question_id": 458752000}


@settings(max_examples=100, **SETTINGS)
@given(data=st.data())
def test_malformed_vqav2_records_fail_cleanly_or_balance(data, tmp_path_factory):
    qids = st.sampled_from([458752000, 458752001, "458752002"]) | SCALAR
    subtype = st.sampled_from(["train2014", "val2014", "../../etc"]) | SCALAR

    def records(base):
        pairs = data.draw(st.lists(st.tuples(mutated(base), qids), max_size=5))
        return [dict(r, question_id=q) if isinstance(r, dict) else r for r, q in pairs]

    work = tmp_path_factory.mktemp("vqav2")
    for name, key, base in (("questions", "questions", QUESTION), ("annotations", "annotations", ANNOTATION)):
        document = {"data_subtype": data.draw(subtype), key: records(base)}
        (work / f"v2_{name}.json").write_bytes(to_json(document, ensure_ascii=data.draw(st.booleans())))
    options = data.draw(st.sampled_from([[], ["--option", "coco_naming=2014"], ["--option", "answer=most_common"]]))
    event(f"exit {run_convert('vqav2', sorted(work.glob('*.json')), work / 'o.parquet', *options).exit_code}")


def test_every_registered_converter_is_fuzzed_on_its_fixtures():
    for converter_id in CONVERTERS:
        assert input_sets(converter_id), f"{converter_id}: no fixture files to damage"

