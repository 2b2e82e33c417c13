"""Every registered converter is held to the same rules, and its options come from the converter itself.

Rules: a fixture folder `tests/fixtures/<id>/`; each fixture set (a folder holding files) converts with
records in = used + rejected; every declared option has a default it accepts and a one-line help. The
recipe loader and `datamix convert --option` check options against the converter's own declaration.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datamix.cli import app
from datamix.convert import run_conversion
from datamix.converters import CONVERTERS, ConvertOptions, get_converter
from datamix.errors import ConverterError, RecipeError
from datamix.recipe import load_recipe

FIXTURES = Path(__file__).parent / "fixtures"
runner = CliRunner()


def fixture_sets(converter_id: str) -> list[Path]:
    """Each folder under the converter's fixtures that holds files is one set of inputs, converted together."""
    root = FIXTURES / converter_id
    folders = [root, *sorted(p for p in root.rglob("*") if p.is_dir())]
    return [folder for folder in folders if any(p.is_file() for p in folder.iterdir())]


@pytest.mark.parametrize("converter_id", sorted(CONVERTERS))
def test_converter_has_a_fixture_folder_and_a_description(converter_id):
    cls = CONVERTERS[converter_id]
    assert cls.id == converter_id
    assert cls.description.strip()
    assert (FIXTURES / converter_id).is_dir(), f"tests/fixtures/{converter_id}/ is missing"
    assert fixture_sets(converter_id), f"tests/fixtures/{converter_id}/ holds no files"


@pytest.mark.parametrize("converter_id", sorted(CONVERTERS))
def test_converting_every_fixture_set_loses_nothing(converter_id, tmp_path):
    for i, folder in enumerate(fixture_sets(converter_id)):
        files = sorted(str(p) for p in folder.iterdir() if p.is_file())
        ledger = run_conversion(converter_id, files, tmp_path / f"{i}.parquet")
        assert ledger.records_in > 0, folder
        assert ledger.records_in == ledger.records_out + ledger.rejected, (folder, ledger.summary())


@pytest.mark.parametrize("converter_id", sorted(CONVERTERS))
def test_declared_options_have_accepted_defaults_and_help(converter_id):
    cls = CONVERTERS[converter_id]
    assert dataclasses.is_dataclass(cls.Options) and cls.Options.__dataclass_params__.frozen
    for field in dataclasses.fields(cls.Options):
        assert field.default is not dataclasses.MISSING, f"{converter_id}.{field.name} has no default"
    defaults = cls.Options()  # builds with no arguments
    for spec in cls.option_specs():
        assert spec.help.strip() and "\n" not in spec.help, f"{converter_id}.{spec.name} needs a one-line help"
        assert spec.parse(spec.default) == getattr(defaults, spec.name)
        assert spec.parse(str(spec.default)) == spec.default  # as it arrives from the command line


def test_vqav2_declares_its_answer_and_naming_options():
    specs = {s.name: s for s in CONVERTERS["vqav2"].option_specs()}
    assert specs["answer"].choices == ("consensus", "most_common") and specs["answer"].default == "consensus"
    assert specs["coco_naming"].choices == ("2017", "2014") and specs["coco_naming"].default == "2017"
    assert CONVERTERS["gqa"].option_specs() == ()  # gqa declares none; format_prompt is a per-source policy


def test_converter_options_are_validated_when_built():
    assert get_converter("vqav2", ConvertOptions(answer="most_common")).options.answer == "most_common"
    with pytest.raises(ConverterError, match=r"vqav2: option 'answer' must be one of consensus, most_common, got 'x'"):
        get_converter("vqav2", ConvertOptions(answer="x"))
    with pytest.raises(ConverterError, match=r"unknown option 'answr'; did you mean 'answer'\? its options: answer"):
        get_converter("vqav2", ConvertOptions(answr="consensus"))
    with pytest.raises(ConverterError, match="gqa: unknown option 'answer'; its options: none"):
        get_converter("gqa", ConvertOptions(answer="consensus"))


def _recipe(tmp_path: Path, options: str, converter: str = "vqav2") -> Path:
    path = tmp_path / "mix.yaml"
    path.write_text(f"""
name: m
seed: 0
sources:
  - name: vqa
    converter: {converter}
    inputs: [{FIXTURES / "vqav2/train"}]
    count: 2
    options: {options}
""")
    return path


def test_recipe_accepts_declared_options(tmp_path):
    recipe = load_recipe(_recipe(tmp_path, "{answer: most_common, coco_naming: 2014}"))
    assert dict(recipe.sources[0].options) == {"answer": "most_common", "coco_naming": "2014"}  # YAML int -> "2014"


@pytest.mark.parametrize("options, message", [
    ("{answers: consensus}", "source 'vqa' (#1) options: converter vqav2: unknown option 'answers'; "
                             "did you mean 'answer'? its options: answer, coco_naming"),
    ("{coco_naming: 2015}", "source 'vqa' (#1) options: converter vqav2: option 'coco_naming' must be one of "
                            "2017, 2014, got 2015"),
])
def test_recipe_option_errors_name_file_source_option_and_the_allowed_values(tmp_path, options, message):
    path = _recipe(tmp_path, options)
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    assert str(err.value) == f"{path}: {message}"


def test_recipe_rejects_options_for_a_converter_without_any(tmp_path):
    with pytest.raises(RecipeError, match="converter gqa: unknown option 'answer'; its options: none"):
        load_recipe(_recipe(tmp_path, "{answer: consensus}", converter="gqa"))


def test_cli_option_flag_reaches_the_converter(tmp_path):
    out = tmp_path / "v.parquet"
    result = runner.invoke(app, ["convert", "vqav2", str(FIXTURES / "vqav2/train"), "-o", str(out),
                                 "--option", "answer=most_common", "--option", "coco_naming=2014"])
    assert result.exit_code == 0, result.output
    import polars as pl

    frame = pl.read_parquet(out)
    assert frame["images"].list.first().str.starts_with("train2014/COCO_train2014_").all()
    assert frame["meta"].str.contains('"answer_policy":"most_common"').all()


@pytest.mark.parametrize("flag, message", [
    ("answer=best", "vqav2: option 'answer' must be one of consensus, most_common, got 'best'"),
    ("nonsense", "--option 'nonsense' must be key=value"),
    ("colour=red", "vqav2: unknown option 'colour'"),
])
def test_cli_bad_option_is_one_line_and_writes_nothing(tmp_path, flag, message):
    out = tmp_path / "v.parquet"
    result = runner.invoke(app, ["convert", "vqav2", str(FIXTURES / "vqav2/train"), "-o", str(out), "-O", flag])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0]
    assert not out.exists()


def test_help_and_listing_show_every_declared_option():
    listing = runner.invoke(app, ["converters"]).output
    help_text = runner.invoke(app, ["convert", "--help"], terminal_width=200).output
    for cid, cls in CONVERTERS.items():
        assert cid in listing
        for spec in cls.option_specs():
            assert f"{spec.name}={spec.allowed}" in listing
            assert f"{cid}: {spec.name}={spec.allowed}" in help_text


def test_demo_data_of_the_academic_sources_builds_in_llavas_image_layout(tmp_path):
    """okvqa/aokvqa under coco/, ocrvqa under ocr_vqa/ (GIF and PNG covers named .jpg), textcaps under textvqa/."""
    import json

    from datamix.builder import build
    from datamix.demo import write_demo_data

    raw = tmp_path / "raw"
    summary = write_demo_data(raw, seed=2, n_images=48)
    (tmp_path / "r.yaml").write_text(f"""
name: academic
seed: 0
sources:
  - {{name: okvqa, converter: okvqa, inputs: [{raw}/okvqa], image_root: {raw}/coco, ratio: 1.0}}
  - {{name: aokvqa, converter: aokvqa, inputs: [{raw}/aokvqa], image_root: {raw}/coco, ratio: 1.0}}
  - {{name: ocrvqa, converter: ocrvqa, inputs: [{raw}/ocr_vqa/dataset.json], image_root: {raw}/ocr_vqa, ratio: 1.0}}
  - {{name: textcaps, converter: textcaps, inputs: [{raw}/textcaps], image_root: {raw}/textvqa, ratio: 1.0}}
max_reject_ratio: 0.5
""")
    manifest = build(tmp_path / "r.yaml", tmp_path / "mix", echo=lambda *a, **k: None)
    written = {name: s["written"] for name, s in manifest["sources"].items()}
    counts = summary["counts"]
    assert written["ocrvqa"] == counts["ocrvqa_books"]  # every cover, GIF and PNG content included
    assert written["textcaps"] == counts["textcaps_images"]
    assert 0 < written["okvqa"] and 0 < written["aokvqa"]  # a few demo COCO images are broken on purpose
    rejects = [json.loads(line) for line in (tmp_path / "mix" / "rejects.jsonl").read_text().splitlines()]
    image_rejects = {r["source"] for r in rejects if r["stage"] != "convert"}
    assert image_rejects and image_rejects <= {"okvqa", "aokvqa"}  # only where the broken COCO files are


def test_demo_data_of_the_academic_sources_rejects_only_what_is_broken_on_purpose(tmp_path, convert):
    import json

    from datamix.demo import CORNERS, write_demo_data

    raw = tmp_path / "raw"
    summary = write_demo_data(raw, seed=4, n_images=48)
    kinds = {b["kind"] for b in summary["broken"]}
    assert {"okvqa_question_without_annotation", "aokvqa_test_record", "ocrvqa_placeholder_author",
            "textcaps_record_without_caption"} <= kinds
    ok, _, ok_ledger = convert("okvqa", raw / "okvqa")
    aok, _, aok_ledger = convert("aokvqa", raw / "aokvqa")
    books, _, book_ledger = convert("ocrvqa", raw / "ocr_vqa")
    caps, _, cap_ledger = convert("textcaps", raw / "textcaps")
    assert ok_ledger.by_reason() == {"no_answer": 1} and aok_ledger.by_reason() == {"no_answer": 1}
    assert book_ledger.by_reason() == {"placeholder_answer": 1} and cap_ledger.by_reason() == {"no_caption": 1}
    counts = summary["counts"]
    assert len(aok) == 4 * counts["aokvqa_train_questions"]
    assert len(books) == counts["ocrvqa_books"] and len(caps) == counts["textcaps_images"]
    # OK-VQA answers come from the pictures: the corners of the named shape
    scenes = json.loads((raw / "scenes.demo.json").read_text())
    for sample in ok.values():
        shapes = scenes["coco/" + sample.images[0]]
        for human, gpt in zip(sample.conversations[0::2], sample.conversations[1::2]):
            if "corners does the" in human["value"]:
                color = human["value"].split("the ")[1].split(" shape")[0]
                assert gpt["value"] in {CORNERS[s["shape"]] for s in shapes if s["color"] == color}
