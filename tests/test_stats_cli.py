"""`datamix stats` on the command line: the table, --json, two targets, --against, --tokenizer, errors."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from datamix.cli import app
from datamix.stats import compute_stats
from datamix.words import word_counts
from tests.test_stats import parquet, samples, write_mix  # noqa: F401 - the fixture and the builders

ROOT = Path(__file__).parent.parent
runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, ["stats", *map(str, args)])


def test_table_fits_100_columns_and_json_matches(tmp_path):
    mix = write_mix(tmp_path / "fixmix")
    result = run(mix, "--json", tmp_path / "s.json")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 100
    for expected in ("fixmix: mixture", "vqa", "chat", "total", "75.0%", "short answers and format prompts"):
        assert expected in result.output
    assert json.loads((tmp_path / "s.json").read_text()) == compute_stats(mix)


def test_two_mixes_side_by_side(tmp_path):
    rows = samples()
    parent = write_mix(tmp_path / "parent")
    child = write_mix(tmp_path / "child", rows=[rows[0], rows[3], rows[4]] + [rows[1] | {"id": "vqa/new"}])
    result = run(parent, child, "--json", tmp_path / "c.json")
    assert result.exit_code == 0, result.output
    cmp = json.loads((tmp_path / "c.json").read_text())["comparison"]
    vqa = cmp["sources"]["vqa"]
    assert vqa["samples"] == {"a": 3, "b": 2, "diff": -1}
    assert vqa["share"] == {"a": 0.6, "b": 0.5, "diff": -0.1}
    assert (vqa["ids"]["added"], vqa["ids"]["removed"]) == (1, 2)
    assert vqa["ids"]["examples_added"] == ["vqa/new"] and vqa["ids"]["examples_removed"] == ["vqa/2", "vqa/3"]
    assert cmp["sources"]["mc"]["ids"]["added"] == 0 and cmp["total"]["ids"] == {"added": 1, "removed": 2}
    assert "A = parent  vs  B = child" in result.output


def test_against_the_published_counts(tmp_path):
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps({"name": "paper", "sources": {"vqa": {"samples": 6}, "chat": {"samples": 2},
                                                             "okvqa": {"samples": 2}}}))
    result = run(write_mix(tmp_path / "m"), "--against", ref, "--json", tmp_path / "a.json")
    assert result.exit_code == 0, result.output
    against = json.loads((tmp_path / "a.json").read_text())["against"]
    assert (against["a"], against["b"]) == ("paper", "m")  # B-A: how the mix differs from the reference
    assert against["sources"]["vqa"]["samples"] == {"a": 6, "b": 3, "diff": -3}
    assert against["sources"]["vqa"]["share"] == {"a": 0.6, "b": 0.6, "diff": 0.0}
    assert against["sources"]["okvqa"]["samples"] == {"a": 2, "b": 0, "diff": -2}
    assert against["sources"]["mc"]["samples"] == {"a": 0, "b": 1, "diff": 1}


def test_published_manifest_matches_llava15_and_the_recipe():
    ref = json.loads((ROOT / "manifests" / "llava_v1_5_mix665k.json").read_text())
    counts = {k: v["samples"] for k, v in ref["sources"].items()}
    assert sum(counts.values()) == ref["samples"] == 665_298
    assert counts == {"llava_instruct": 157_712, "sharegpt": 40_688, "vqav2": 82_783, "gqa": 72_140, "okvqa": 8_998,
                      "ocrvqa": 80_000, "aokvqa": 66_160, "textcaps": 21_953, "refcoco": 48_447, "vg": 86_417}
    recipe = (ROOT / "recipes" / "llava_v1_5_mix665k.yaml").read_text()
    for name, n in counts.items():
        assert f"name: {name}" in recipe and f"count: {n}" in recipe


def test_tokenizer_lengths(parquet, tmp_path):  # noqa: F811
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()  # \w+ and punctuation runs: "phrase." is 2 tokens
    tok.save(str(tmp_path / "tokenizer.json"))
    s = compute_stats(parquet, tokenizer=tmp_path)
    vqa = s["sources"]["vqa"]
    # vqa/1: "Is it red ? Answer ... phrase ." 14, "Yes" 1, "Is it big ?" 4, "no ." 2; vqa/2, vqa/3: 14 + 1
    assert (s["length_unit"], vqa["length_total"]) == ("tokens", {"human": 46, "gpt": 5, "all": 51})
    assert vqa["length"]["conversation"]["max"] == 21 and vqa["supervised_share"] == round(5 / 51, 6)


def test_word_counts_match_python_split():
    rng = random.Random(0)
    alphabet = ["a", "b", " ", "\n", "\t", "<image>", "<im", "age>", "é", "中文", "x."]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 25))) for _ in range(3000)] + ["", None]
    expected = [len((t or "").replace("<image>", " ").split()) for t in texts]
    assert word_counts(pa.array(texts)).tolist() == expected
    assert word_counts(pa.array(texts, pa.large_string()).slice(7)).tolist() == expected[7:]


@pytest.mark.parametrize("args, message", [
    (["/nonexistent/mix"], "no such file or folder"),
    (["manifests/llava_v1_5_mix665k.json"], "reference manifest can only be the second target"),
    (["a", "b", "c"], "give one target, or two"),
])
def test_clean_errors(args, message):
    result = run(*args)
    assert result.exit_code == 1 and message in result.output


def test_not_a_mix(tmp_path):
    (tmp_path / "x.parquet").write_text("not parquet")
    result = run(tmp_path / "x.parquet")
    assert result.exit_code == 1 and "not readable as Parquet" in result.output
