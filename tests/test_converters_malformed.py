"""What `datamix convert` promises on malformed input, one case per known way to break it.

- No crash: a file that cannot be read as its format ends as one line, `error: <file>: <what>, where; what to
  do`, exit code 1, never a traceback, a segfault or the generic "unexpected" handler.
- Nothing lost: every record is in the output or in the ledger with a reason, filed under its own id or its
  position; nothing un-encodable reaches the Parquet file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from convert_outcome import run_convert
from typer.testing import CliRunner

from datamix.cli import app
from datamix.schema import WHITESPACE, Sample, is_blank, validate

REPO = Path(__file__).parent.parent
CHAT = b'{"id": "a1", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}'
CHAT2 = CHAT.replace(b"a1", b"a2")
GQA = b'"1": {"question": "Is the sky dark?", "imageId": "2354786", "answer": "yes"}'
VQA_Q = b'{"data_subtype": "train2014", "questions": [{"image_id": 1, "question": "Is it?", "question_id": 1000}]}'
VQA_A = (b'{"data_subtype": "train2014", "annotations": [{"image_id": 1, "question_id": 1000, '
         b'"multiple_choice_answer": "yes", "answers": [{"answer": "yes"}]}]}')
DEEP = b"[" * 100_000 + b"]" * 100_000


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def vqav2(tmp_path: Path, questions: bytes, annotations: bytes = VQA_A):
    files = [write(tmp_path, "v2_q.json", questions), write(tmp_path, "v2_a.json", annotations)]
    return run_convert("vqav2", files, tmp_path / "out.parquet")


# -- no crash: whole-file documents that are not JSON stop with the file named, what and where ----------------

WHOLE_FILE_CASES = {
    "truncated": (b"[" + CHAT + b", " + CHAT2[:40], "ends in the middle of a value (truncated?) at line 1"),
    "nan": (b"[" + CHAT + b', {"id": NaN}]', "NaN or Infinity, which JSON does not allow at line 1"),
    "infinity": (b"[" + CHAT + b', {"id": -Infinity}]', "NaN or Infinity"),
    "invalid_utf8": (b"[" + CHAT.replace(b"Hello", b"Hel\xfflo") + b"]", "invalid UTF-8 byte 0xff at line 1"),
    "lone_surrogate": (b"[" + CHAT.replace(b"Hello", b"Hel\\ud800lo") + b"]", "a lone UTF-16 surrogate \\ud800"),
    "deep": (b"[" + CHAT + b", " + DEEP + b"]", "nested too deeply"),
    "empty": (b"", "the file is empty"),
}


@pytest.mark.parametrize("converter_id", ["sharegpt", "llava"])
@pytest.mark.parametrize("case", sorted(WHOLE_FILE_CASES))
def test_a_json_list_that_is_not_json_is_one_line_naming_the_file(tmp_path, converter_id, case):
    data, message = WHOLE_FILE_CASES[case]
    path = write(tmp_path, "records.json", data)
    error = run_convert(converter_id, [path], tmp_path / "out.parquet").error
    assert error.startswith(f"error: {path}: ") and message in error
    assert not (tmp_path / "out.parquet").exists()


@pytest.mark.parametrize("case, data, message", [
    ("truncated", b"{" + GQA + b', "2": {"question": "Is', "truncated?) at line 1, column 101 (byte 100)"),
    ("nan", b"{" + GQA + b', "2": {"question": "Q", "imageId": NaN}}', "NaN or Infinity"),
    ("invalid_utf8", b"{" + GQA.replace(b"dark", b"d\xc3rk") + b"}", "invalid UTF-8 byte 0xc3"),
    ("lone_surrogate", b"{" + GQA.replace(b"dark", b"\\udc00") + b"}", "a lone UTF-16 surrogate \\udc00"),
    ("deep", b"{" + GQA + b', "2": ' + DEEP + b"}", "nested too deeply"),
])
def test_a_gqa_file_that_is_not_json_is_one_line_naming_the_file(tmp_path, case, data, message):
    path = write(tmp_path, "train_balanced_questions.json", data)
    error = run_convert("gqa", [path], tmp_path / "out.parquet").error
    assert error.startswith(f"error: {path}: not valid JSON: ") and message in error
    assert error.endswith("repair the file or download it again")


def test_a_truncated_file_is_located_by_line_and_byte(tmp_path):
    data = b"[\n" + CHAT + b",\n" + CHAT2[:30]
    path = write(tmp_path, "records.json", data)
    error = run_convert("sharegpt", [path], tmp_path / "out.parquet").error
    assert f"at line 3, column 31 (byte {len(data)})" in error


@pytest.mark.parametrize("first", [b"null", b"  \n null", b"\xef\xbb\xbfnull", b"null {}"])
def test_vqav2_file_starting_with_null_is_an_error_not_a_segfault(tmp_path, first):
    # pyarrow's JSON reader crashes the process on such a file (apache/arrow#47409): a subprocess shows it.
    path = write(tmp_path, "v2_OpenEnded_mscoco_train2014_questions.json", first)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-m", "datamix.cli", "convert", "vqav2", str(path), "--out",
                             str(tmp_path / "out.parquet")], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert result.stderr.startswith(f"error: {path}: ") and "unexpected" not in result.stderr


@pytest.mark.parametrize("questions, message", [
    (VQA_Q.replace(b"Is it?", b"Is \xff it?"), "invalid UTF-8 byte 0xff"),  # Arrow's reader does not check
    (VQA_Q.replace(b"Is it?", b"Is \\ud800 it?"), "a lone UTF-16 surrogate"),
    (VQA_Q[:50], "the text ends in the middle of a value (truncated?)"),
    (VQA_Q.replace(b"1000", b"NaN"), "NaN or Infinity"),
    (b'{"questions": ' + DEEP + b"}", "nested too deeply"),
])
def test_vqav2_file_that_is_not_json_is_one_line_and_writes_nothing(tmp_path, questions, message):
    error = vqav2(tmp_path, questions).error
    assert f"v2_q.json: not valid JSON: {message}" in error
    assert not (tmp_path / "out.parquet").exists()


def test_vqav2_invalid_utf8_in_annotations_never_reaches_parquet(tmp_path):
    error = vqav2(tmp_path, VQA_Q, VQA_A.replace(b'"yes", "answers"', b'"y\xc3s", "answers"')).error
    assert "v2_a.json: not valid JSON: invalid UTF-8 byte 0xc3" in error


def test_an_output_that_is_a_folder_is_one_line(tmp_path):
    (tmp_path / "out.parquet").mkdir()
    path = write(tmp_path, "records.json", b"[" + CHAT + b"]")
    assert "out.parquet: is a folder" in run_convert("sharegpt", [path], tmp_path / "out.parquet").error


def test_an_output_under_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    path = write(tmp_path, "records.json", b"[" + CHAT + b"]")
    error = run_convert("sharegpt", [path], tmp_path / "file" / "o.parquet").error
    assert f"{tmp_path / 'file'}: cannot create the output folder" in error


def test_an_output_that_would_replace_an_input_is_refused(tmp_path):
    path = write(tmp_path, "records.json", b"[" + CHAT + b"]")
    assert "is one of the inputs" in run_convert("sharegpt", [path], path).error
    assert path.read_bytes() == b"[" + CHAT + b"]"


def test_ctrl_c_prints_interrupted_and_exits_130(tmp_path, monkeypatch):
    import datamix.cli.convert as command

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(command, "run_conversion", interrupted)
    result = CliRunner().invoke(app, ["convert", "sharegpt", str(tmp_path), "--out", str(tmp_path / "o.parquet")])
    assert result.exit_code == 130 and result.output.strip() == "interrupted"


def test_ctrl_c_in_a_real_process(tmp_path):
    # The process signals itself once the command runs, as a terminal's Ctrl-C would.
    code = ("import os, signal, time, datamix.cli.convert as c\n"
            "c.run_conversion = lambda *a, **k: (os.kill(os.getpid(), signal.SIGINT), time.sleep(30))\n"
            "from datamix.cli import main\nmain()\n")
    path = write(tmp_path, "records.json", b"[" + CHAT + b"]")
    result = subprocess.run([sys.executable, "-c", code, "convert", "sharegpt", str(path), "--out",
                             str(tmp_path / "o.parquet")], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
    assert result.returncode == 130 and result.stderr.strip() == "interrupted"


# -- nothing lost: a bad record is a rejection with a reason, under its id or position ------------------------

@pytest.mark.parametrize("converter_id", ["sharegpt", "llava"])
@pytest.mark.parametrize("bad_line, reason", [
    (b'{"id": "n", "conversations": NaN}', "invalid_json: line 2, column 30: NaN or Infinity"),
    (CHAT2.replace(b"Hello", b"Hel\xfflo"), "invalid_json: line 2, column 95: invalid UTF-8 byte 0xff"),
    (CHAT2.replace(b"Hello", b"Hel\\udc00lo"), "invalid_json: line 2, column 95: a lone UTF-16 surrogate"),
    (CHAT2[:40], "invalid_json: line 2, column 41: the text ends in the middle of a value"),
    (b'{"conversations": [], "x": ' + DEEP + b"}", "invalid_json: line 2: nested too deeply"),
])
def test_one_bad_json_lines_line_rejects_only_that_line(tmp_path, converter_id, bad_line, reason):
    path = write(tmp_path, "chats.jsonl", CHAT + b"\n" + bad_line + b"\n" + CHAT.replace(b"a1", b"a3") + b"\n")
    outcome = run_convert(converter_id, [path], tmp_path / "out.parquet")
    assert outcome.records_in == 3 and outcome.samples_out == 2
    assert [(r["id"], r["reason"][:len(reason)]) for r in outcome.rejects] == [("#1", reason)]


def test_lone_surrogates_never_reach_parquet(tmp_path):
    path = write(tmp_path, "chats.jsonl", CHAT + b"\n" + CHAT2.replace(b"Hello", b"\\ud83d") + b"\n")
    outcome = run_convert("sharegpt", [path], tmp_path / "out.parquet")
    table = pl.read_parquet(tmp_path / "out.parquet")
    assert table["id"].to_list() == ["sharegpt/a1"] and outcome.rejects[0]["reason"].startswith("invalid_json")


def test_malformed_records_are_filed_under_their_id_else_their_position(tmp_path):
    records = b"[" + CHAT + b', {"id": "xyz", "conversations": 5}, [1], null, {"id": 7, "conversations": {}}]'
    outcome = run_convert("llava", [write(tmp_path, "mix.json", records)], tmp_path / "out.parquet")
    assert [r["id"] for r in outcome.rejects] == ["xyz", "#2", "#3", "7"]
    assert all(r["reason"].startswith("malformed_record") for r in outcome.rejects)


def test_json_lines_records_are_filed_under_their_real_line(tmp_path):
    path = write(tmp_path, "chats.jsonl", CHAT + b"\n\n\n[1]\n" + b'{"id": 5, "conversations": 3}\n')
    outcome = run_convert("sharegpt", [path], tmp_path / "out.parquet")
    assert [(r["id"], r["reason"].split(":")[0:2]) for r in outcome.rejects] == [
        ("#3", ["malformed_record", " line 4"]), ("5", ["malformed_record", " line 5"])]


def test_gqa_question_id_given_twice_in_one_file_keeps_the_first_and_rejects_the_second(tmp_path):
    data = (b"{" + GQA + b', "2": {"question": "Q2?", "imageId": "7", "answer": "no"}, '
            b'"1": {"question": "Is it late?", "imageId": "2354786", "answer": "no"}}')
    outcome = run_convert("gqa", [write(tmp_path, "train_balanced_questions.json", data)], tmp_path / "o.parquet")
    assert outcome.records_in == 3 and outcome.used == 2
    assert [(r["id"], r["reason"].split(":")[0]) for r in outcome.rejects] == [("1", "duplicate_question_id")]
    conversation = pl.read_parquet(tmp_path / "o.parquet").filter(pl.col("id") == "gqa/2354786")["conversations"]
    assert "Is the sky dark?" in conversation[0][0]["value"]  # the first one, in file order


def test_gqa_id_given_twice_with_a_malformed_record_too(tmp_path):
    data = b"{" + GQA + b', "2": 7, ' + GQA.replace(b"dark", b"blue") + b"}"
    outcome = run_convert("gqa", [write(tmp_path, "q.json", data)], tmp_path / "o.parquet")
    assert outcome.records_in == 3
    assert sorted((r["id"], r["reason"].split(":")[0]) for r in outcome.rejects) == [
        ("1", "duplicate_question_id"), ("2", "malformed_record")]


def test_gqa_question_id_given_in_two_files_is_rejected_once(tmp_path):
    a = write(tmp_path, "train_all_questions_0.json", b"{" + GQA + b"}")
    b = write(tmp_path, "train_all_questions_1.json", b"{" + GQA.replace(b"dark", b"blue") + b"}")
    outcome = run_convert("gqa", [a, b], tmp_path / "o.parquet")
    assert [(r["id"], r["file"], r["reason"].split(":")[0]) for r in outcome.rejects] == [
        ("1", "train_all_questions_1.json", "duplicate_question_id")]


@pytest.mark.parametrize("image_id", ["../../etc/passwd", "a/../../b", "..\\\\..\\\\x", "x\\u0000y"])
def test_gqa_image_ids_that_escape_the_image_root_are_rejected(tmp_path, image_id):
    data = b"{" + GQA + b', "2": {"question": "Q?", "imageId": "' + image_id.encode() + b'", "answer": "no"}}'
    outcome = run_convert("gqa", [write(tmp_path, "q.json", data)], tmp_path / "o.parquet")
    assert [(r["id"], r["reason"].split(":")[0]) for r in outcome.rejects] == [("2", "bad_image_path")]
    images = pl.read_parquet(tmp_path / "o.parquet")["images"].to_list()
    assert images == [["images/2354786.jpg"]]


def test_vqav2_2014_paths_from_a_data_subtype_that_escapes_are_rejected(tmp_path):
    files = [write(tmp_path, "v2_q.json", VQA_Q.replace(b'"train2014"', b'"../../etc"')),
             write(tmp_path, "v2_a.json", VQA_A)]
    outcome = run_convert("vqav2", files, tmp_path / "o.parquet", "--option", "coco_naming=2014")
    assert [(r["id"], r["reason"].split(":")[0]) for r in outcome.rejects] == [("1000", "bad_image_path")]


def test_vqav2_questions_without_an_id_are_rejected_under_their_position(tmp_path):
    questions = VQA_Q.replace(b"]}", b', {"image_id": 1, "question": "Q?"}, {"image_id": 1, "question": "R?", '
                                     b'"question_id": " "}]}')
    outcome = vqav2(tmp_path, questions)
    assert [(r["id"], r["reason"]) for r in outcome.rejects] == [("#1", "missing_question_id"),
                                                                 ("#2", "missing_question_id")]
    assert outcome.records_in == 3 and outcome.used == 1


def test_vqav2_an_empty_list_on_the_slow_path_adds_no_record(tmp_path):
    outcome = vqav2(tmp_path, VQA_Q, b'{"data_subtype": false, "annotations": []}')
    assert outcome.records_in == 1 and [r["reason"].split(":")[0] for r in outcome.rejects] == ["no_answer"]


@pytest.mark.parametrize("blank", ["\u200b", "\u200b\u200d \ufeff", "\u2060\u3000"])
def test_zero_width_questions_and_answers_are_empty_in_every_converter(tmp_path, blank):
    text = blank.encode("unicode_escape")
    gqa = b'{"1": {"question": "' + text + b'", "imageId": "5", "answer": "yes"}}'
    assert run_convert("gqa", [write(tmp_path, "g.json", gqa)], tmp_path / "g.parquet").rejects[0]["reason"] == (
        "empty_question")
    outcome = vqav2(tmp_path, VQA_Q.replace(b"Is it?", text))
    assert outcome.rejects[0]["reason"] == "empty_question"
    answers = VQA_A.replace(b'"yes", "answers"', b'"' + text + b'", "answers"')
    assert vqav2(tmp_path, VQA_Q, answers).rejects[0]["reason"] == "empty_answer"


def test_schema_blank_is_python_whitespace_plus_zero_width():
    assert set(WHITESPACE) == {c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace()}
    assert is_blank("\u200b \u2060") and is_blank(None) and not is_blank("\u200ba")
    sample = Sample("s/1", "s", "text", [], [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "\u200b"}])
    assert validate(sample) == "empty_turn: turn 1"


@pytest.mark.parametrize("converter_id, data", [
    ("sharegpt", b"\xef\xbb\xbf[" + CHAT + b"]"),
    ("llava", b"\xef\xbb\xbf" + CHAT + b"\n" + CHAT2 + b"\n"),
    ("gqa", b"\xef\xbb\xbf{" + GQA + b"}"),
])
def test_a_utf8_bom_is_accepted_everywhere(tmp_path, converter_id, data):
    outcome = run_convert(converter_id, [write(tmp_path, "in.json", data)], tmp_path / "o.parquet")
    assert outcome.exit_code == 0 and outcome.rejects == [] and outcome.samples_out >= 1
