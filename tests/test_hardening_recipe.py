"""Promise: no recipe crashes the loader, runs code, or expands without bound; every problem is a clear message.

Hand-written hostile cases, then property-based ones: hypothesis generates recipes with values of every
type at every key and byte-level damage to a valid recipe, and the loader must answer with a Recipe or
one RecipeError, never another exception; the CLI must exit 0 or 1 without a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from datamix.cli import app
from datamix.errors import RecipeError
from datamix.recipe import MAX_RECIPE_NODES, load_recipe

runner = CliRunner()

VALID = """\
name: hostile
seed: 1
description: a recipe under attack
sources:
  - name: chat
    converter: sharegpt
    inputs: [chat.json]
    ratio: 0.5
"""


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "chat.json").write_text('[{"id": "a", "conversations": [{"from": "human", "value": "hi"}, '
                                        '{"from": "gpt", "value": "hello"}]}]')
    return tmp_path


def load(folder: Path, text: str | bytes):
    path = folder / "r.yaml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return load_recipe(path)


def test_the_valid_recipe_loads(folder):
    assert load(folder, VALID).sources[0].name == "chat"


def test_an_alias_bomb_is_refused_small(folder):
    levels = ["l0: &l0 [" + ", ".join(["lol"] * 10) + "]"]
    levels += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 7)]
    bomb = "\n".join(levels) + "\n"
    assert len(bomb) < 800  # 10**7 values once expanded
    with pytest.raises(RecipeError, match=f"expands to more than {MAX_RECIPE_NODES:,} values"):
        load(folder, VALID.replace("description: a recipe under attack", "description: *l6") .replace(
            "name: hostile", bomb + "name: hostile"))


@pytest.mark.parametrize("edit, message", [
    (("seed: 1", "seed: 1\nseed: 2"), "key 'seed' is given twice"),
    (("    ratio: 0.5", "    ratio: 0.5\n    ratio: 0.7"), "key 'ratio' is given twice"),
    (("description: a recipe under attack", "description: !!binary aGVsbG8="), "not valid YAML"),
    (("description: a recipe under attack", "description: !!set {a: null}"), "not valid YAML"),
    (("description: a recipe under attack", "description: !!python/object/apply:os.system [touch pwned]"),
     "not valid YAML"),
    (("description: a recipe under attack", "description: [not, text]"), "'description' must be text"),
    (("description: a recipe under attack", "description: " + "x" * 20_000), "at most 10,000"),
    (("    ratio: 0.5", "    repeat: .inf"), "repeat must be a finite number"),
    (("    ratio: 0.5", "    repeat: .nan"), "repeat must be a finite number"),
    (("    ratio: 0.5", "    repeat: 1.0e+12"), "repeat must be at most 1000"),
    (("    ratio: 0.5", "    ratio: .nan"), "ratio must be a finite number"),
    (("    ratio: 0.5", "    repeat: 1e12"), "repeat must be a finite number, got .1e12."),
    (("    ratio: 0.5", "    count: 1.0e+12"), "count must be a positive integer"),
    (("seed: 1", "seed: -1"), "seed: must be an integer from 0"),
    (("seed: 1", "seed: 99999999999999999999999"), "seed: must be an integer from 0"),
    (("    ratio: 0.5", "    ratio: 0.5\n    planned: \"no\""), "planned must be true or false"),
    (("    ratio: 0.5", "    ratio: 0.5\n    note: {a: 1}"), "'note' must be text"),
    (("sources:", "shards: {max_bytes: 1.2.3MB}\nsources:"), "max_bytes must be a size"),
    (("sources:", "shards: {max_bytes: 99999999999999999999TB}\nsources:"), "max_bytes must be a size"),
    (("sources:", "max_image_pixels: true\nsources:"), "max_image_pixels: must be a positive integer"),
])
def test_hostile_values_get_their_own_message(folder, edit, message):
    with pytest.raises(RecipeError, match=message):
        load(folder, VALID.replace(*edit))
    assert not (folder / "pwned").exists()


def test_a_recipe_that_is_not_utf8_or_too_big_is_refused(folder):
    with pytest.raises(RecipeError, match=r"not UTF-8 text \(byte 38\)"):
        load(folder, VALID.encode().replace(b"a recipe", b"a r\xe9cipe"))
    with pytest.raises(RecipeError, match="a recipe is at most"):
        load(folder, VALID + "#" * (1 << 20))
    assert load(folder, b"\xef\xbb\xbf" + VALID.encode()).name == "hostile"  # a UTF-8 BOM is fine


def test_a_parquet_source_that_is_not_parquet_is_refused_at_load(folder):
    (folder / "fake.parquet").write_text('{"not": "parquet"}')
    text = VALID.replace("    converter: sharegpt\n    inputs: [chat.json]\n", "    parquet: fake.parquet\n")
    with pytest.raises(RecipeError, match="fake.parquet is not a Parquet file"):
        load(folder, text)


# --- property-based -----------------------------------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
                    st.sampled_from(["chat.json", "sharegpt", "first_turn", "1GB", "${NOPE}", "../x", "/etc"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=8)
SOURCE_KEYS = ["name", "converter", "parquet", "inputs", "image_root", "ratio", "count", "repeat",
               "format_prompt", "options", "max_reject_ratio", "planned", "note", "bogus"]


@st.composite
def recipes(draw):
    source = {"name": "chat", "converter": "sharegpt", "inputs": ["chat.json"], "ratio": 0.5}
    for key in draw(st.lists(st.sampled_from(SOURCE_KEYS), max_size=3)):
        source[key] = draw(values)
    top = {"name": "hostile", "seed": 1, "sources": [source]}
    for key in draw(st.lists(st.sampled_from(["name", "seed", "description", "shards", "max_reject_ratio",
                                              "max_image_pixels", "sources", "extra"]), max_size=2)):
        top[key] = draw(values)
    return yaml.safe_dump(top, allow_unicode=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=recipes())
def test_any_recipe_loads_or_is_one_recipe_error(folder, text):
    try:
        load(folder, text)
    except RecipeError as exc:  # one problem: one line naming the file; several: a count, then a line each
        assert str(folder / "r.yaml") in str(exc).splitlines()[-1]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=len(VALID)), junk=st.binary(max_size=8),
       flip=st.integers(min_value=0, max_value=len(VALID) - 1))
def test_damaged_bytes_load_or_are_one_recipe_error(folder, cut, junk, flip):
    data = bytearray(VALID.encode())
    data[flip] ^= 0x55
    try:
        load(folder, bytes(data[:cut]) + junk + bytes(data[cut:]))
    except RecipeError:
        pass


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=recipes())
def test_the_cli_answers_any_recipe_with_exit_0_or_1_and_no_traceback(folder, text):
    (folder / "r.yaml").write_text(text)
    result = runner.invoke(app, ["build", str(folder / "r.yaml"), "--dry-run"])
    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.output and "unexpected" not in result.output, result.output
    if result.exit_code == 1:
        assert result.output.startswith("error: ")
