"""The command line: help on every command, the report, one-line errors with exit code 1, --debug."""

from __future__ import annotations

import polars as pl
import pytest
from typer.testing import CliRunner

from datamix.cli import app

runner = CliRunner()


def commands() -> list[str]:
    import typer.main

    return sorted(typer.main.get_command(app).commands)


@pytest.mark.parametrize("command", commands())
def test_every_command_has_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_convert_prints_counts_that_add_up(fixtures_path, tmp_path):
    out = tmp_path / "vqa.parquet"
    result = runner.invoke(app, ["convert", "vqav2", str(fixtures_path / "vqav2/train"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "11 records in -> 5 samples out (8 records used), 3 rejected" in result.output
    assert "no_answer" in result.output and "no_question" in result.output
    assert pl.read_parquet(out).height == 5
    assert (tmp_path / "vqa.rejects.jsonl").read_text().count("\n") == 3


def test_convert_accepts_globs(fixtures_path, tmp_path):
    out = tmp_path / "gqa.parquet"
    pattern = str(fixtures_path / "gqa/train_all_questions/train_all_questions_*.json")
    result = runner.invoke(app, ["convert", "gqa", pattern, "--out", str(out), "--format-prompt", "none"])
    assert result.exit_code == 0, result.output
    assert "32 records in" in result.output


@pytest.mark.parametrize("args, message", [
    (["convert", "nosuch", "x", "--out", "o.parquet"], "unknown converter 'nosuch'; known converters: "),
    (["convert", "vqav2", "missing.json", "--out", "o.parquet"], "missing.json: no such file or folder"),
    (["convert", "vqav2", "nomatch/*.json", "--out", "o.parquet"], "pattern matches no file"),
])
def test_errors_are_one_line_with_exit_code_1(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"error: {lines[0][len('error: '):]}"] and message in lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "o.parquet").exists()


def test_a_wrong_format_file_names_the_file_and_what_was_expected(fixtures_path, tmp_path):
    result = runner.invoke(app, ["convert", "vqav2", str(fixtures_path / "gqa/balanced"), "--out",
                                 str(tmp_path / "o.parquet")])
    assert result.exit_code == 1
    assert "train_balanced_questions.json: not a VQAv2 file: expected a top-level 'questions'" in result.output
    assert not list(tmp_path.iterdir())  # no partial output left behind


def test_debug_shows_the_traceback(tmp_path):
    result = runner.invoke(app, ["--debug", "convert", "vqav2", str(tmp_path / "missing.json"), "--out", "o.parquet"])
    assert result.exit_code == 1
    assert result.exception is not None and type(result.exception).__name__ == "InputError"


def test_converters_lists_every_registered_converter():
    from datamix.converters import CONVERTERS

    result = runner.invoke(app, ["converters"])
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.output.splitlines() if not line.startswith(" ")] == list(CONVERTERS)


def test_demo_data_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    result = runner.invoke(app, ["demo-data", str(tmp_path)])
    assert result.exit_code == 1 and "folder is not empty" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_a_closed_output_pipe_stops_quietly(tmp_path):
    """`datamix ... | head` closes the pipe early: no traceback and no 'unexpected' error. The exit code is 141
    (SIGPIPE's) from a datamix command, or 1 where click itself sees the closed pipe first."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "datamix.cli", "converters"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.read(10)
    proc.stdout.close()  # the reader goes away before the command has written everything
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) in (0, 1, 141)
    assert "Traceback" not in stderr and "unexpected" not in stderr, stderr
