"""`datamix audit`: the classifier, the per-source figures, the count check, --image-root, --against a build,
--json, --report, and one clear line for a malformed file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datamix.audit import DEFAULT_REFERENCE, audit
from datamix.audit.classes import IMAGE_PREFIX, classify, class_of_source, expected_counts
from datamix.audit.read import read_released
from datamix.cli import app
from datamix.converters import llava
from datamix.stats.load import load_reference

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = FIXTURES / "audit" / "llava_v1_5_mix665k_sample.json"
SHORT = "Answer the question using a single word or phrase."
runner = CliRunner()


def run(*args):
    return runner.invoke(app, ["audit", *map(str, args)])


def write(path: Path, records) -> Path:
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def qa(image: str | None, *pairs: tuple[str, str], rid="1") -> dict:
    turns = []
    for k, (h, g) in enumerate(pairs):
        turns += [{"from": "human", "value": ("<image>\n" + h) if image and k == 0 else h},
                  {"from": "gpt", "value": g}]
    return {"id": rid, **({"image": image} if image else {}), "conversations": turns}


# --- the classifier -------------------------------------------------------------------------------------------

EXPECTED_CLASSES = {  # fixture record id -> class (LLAVA-1.5 mix rules: folder first, then the prompts)
    "000000033471": "llava_instruct", "000000052846": "llava_instruct", "000000334872": "llava_instruct",
    "wgByO4Y_0": "sharegpt", "i6IyJda_12": "sharegpt", "000000393224": "vqav2_okvqa",
    "000000290896": "vqav2_okvqa", "2354786": "gqa", "140031996X": "ocrvqa", "000000299207": "aokvqa",
    "011e7e629fb9ae7b": "textcaps", "000000314530": "refcoco", "4": "vg", "51": "vg",
}


def _classes(path: Path) -> list[str]:
    released = read_released(path)
    return classify(released.records, released.turns).to_list()


def test_every_fixture_record_gets_its_source():
    released = read_released(SAMPLE)
    got = dict(zip(released.records["id"], classify(released.records, released.turns)))
    assert got == EXPECTED_CLASSES


@pytest.mark.parametrize("record, expected", [
    (qa(None, ("Hi", "Hello")), "sharegpt"),  # no image key
    (qa("gqa/images/1.jpg", ("Q?", "A")), "gqa"),  # folder alone, whatever the prompt
    (qa("ocr_vqa/images/1.jpg", ("Q?", "A")), "ocrvqa"),
    (qa("textvqa/train_images/a.jpg", ("Q?", "A")), "textcaps"),
    (qa("vg/VG_100K_2/1.jpg", ("Q?", "A")), "vg"),
    (qa("coco/train2017/1.jpg",
        ("Q?\nA. x\nB. y\nAnswer with the option's letter from the given choices directly.", "A")), "aokvqa"),
    (qa("coco/train2017/1.jpg", ("Please provide a short description for this region: [0.1, 0.2, 0.3, 0.4].", "Cat.")),
     "refcoco"),
    # the region prompt on a later turn still counts ("any human turn")
    (qa("coco/train2017/1.jpg", ("What is it?", "A cat."),
        ("Please provide the bounding box coordinate of the region this sentence describes: cat.",
         "[0.1, 0.2, 0.3, 0.4]")),
     "refcoco"),
    (qa("coco/train2017/1.jpg", ("Q?\n" + SHORT, "Yes")), "vqav2_okvqa"),
    (qa("coco/train2017/1.jpg", ("What is in the picture?", "A cat on a desk.")), "llava_instruct"),
    # A-OKVQA's letter prompt wins over the short-answer one (first rule first)
    (qa("coco/train2017/1.jpg", ("Q?\n" + SHORT, "Yes"), ("Q?\nAnswer with the option's letter from the given "
                                                          "choices directly.", "B")), "aokvqa"),
    (qa("somewhere/else.jpg", ("Q?", "A")), "other"),
])
def test_each_rule(tmp_path, record, expected):
    assert _classes(write(tmp_path / "one.json", [record])) == [expected]


@pytest.mark.parametrize("path", [SAMPLE, *sorted((FIXTURES / "llava").glob("*.json"))], ids=lambda p: p.name)
def test_vectorised_rules_agree_with_the_llava_converter(tmp_path, path):
    """The audit evaluates llava.RULES over columns; llava.classify evaluates them per record: same answer."""
    records = json.loads(path.read_text(encoding="utf-8"))
    ok = [r for r in records if isinstance(r, dict) and isinstance(r.get("conversations"), list)
          and all(isinstance(t, dict) and isinstance(t.get("value"), str) for t in r["conversations"])
          and (r.get("image") is None or isinstance(r["image"], (str, list)))]
    expected = [llava.classify(llava.as_images(r.get("image")), r["conversations"])[0] for r in ok]
    assert ok
    assert _classes(write(tmp_path / "ok.json", ok)) == expected


# --- the figures ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sample():
    return audit(SAMPLE, load_reference(DEFAULT_REFERENCE))


def test_records_shares_and_questions(sample):
    c = sample["classes"]
    assert sample["records"] == 17 and sample["total"]["records"] == 17
    assert {k: v["records"] for k, v in c.items()} == {
        "llava_instruct": 3, "sharegpt": 2, "vqav2_okvqa": 2, "gqa": 1, "ocrvqa": 1, "aokvqa": 4, "textcaps": 1,
        "refcoco": 1, "vg": 2}
    assert list(c)[:3] == ["llava_instruct", "sharegpt", "vqav2_okvqa"]  # the published table's order
    assert c["aokvqa"]["share"] == round(4 / 17, 6)
    assert (c["ocrvqa"]["questions_mean"], c["vg"]["questions_mean"], c["vg"]["questions_median"]) == (5.0, 5.5, 5.5)
    assert c["sharegpt"]["text_only"] == 2 and c["sharegpt"]["images"] == 0


def test_prompt_placement(sample):
    c = sample["classes"]
    assert c["gqa"]["placement"]["first_turn"] == 1 and c["ocrvqa"]["placement"]["first_turn"] == 1
    assert c["aokvqa"]["placement"]["single_turn"] == 4 and c["aokvqa"]["prompts"] == {"mcq": 4}
    assert c["vqav2_okvqa"]["placement"] | {} == {"none": 0, "single_turn": 1, "first_turn": 1, "every_turn": 0,
                                                   "mixed": 0}
    assert c["textcaps"]["prompts"] == {"caption": 1}
    assert c["llava_instruct"]["placement"]["none"] == 3 and c["llava_instruct"]["prompts"] == {}
    assert sample["total"]["placement"]["every_turn"] == 0


def test_every_turn_and_mixed_placement(tmp_path):
    records = [qa("gqa/images/1.jpg", ("A?\n" + SHORT, "Yes"), ("B?\n" + SHORT, "No")),
               qa("gqa/images/2.jpg", ("A?", "Yes"), ("B?\n" + SHORT, "No")),
               # a suffix <image> does not hide the prompt: the trainer moves the token anyway
               {"id": "3", "image": "gqa/images/3.jpg", "conversations": [
                   {"from": "human", "value": "A?\n" + SHORT + "\n<image>"}, {"from": "gpt", "value": "yes"}]}]
    gqa = audit(write(tmp_path / "p.json", records))["classes"]["gqa"]
    assert gqa["placement"] == {"none": 0, "single_turn": 1, "first_turn": 0, "every_turn": 1, "mixed": 1}
    assert gqa["answers"]["uppercase"] == 4 and gqa["answers"]["lowercase"] == 1
    assert gqa["answers"]["uppercase_share"] == 0.8


def test_answer_casing(sample):
    c = sample["classes"]
    assert c["gqa"]["answers"]["uppercase_share"] == 1.0  # "Yes", "No", "Pipe"
    assert c["vqav2_okvqa"]["answers"]["answers"] == 4  # "2" is not cased: not in the share
    assert c["vqav2_okvqa"]["answers"]["uppercase"] + c["vqav2_okvqa"]["answers"]["lowercase"] == 3
    assert c["llava_instruct"]["answers"]["period_share"] == 1.0


def test_box_formats(sample):
    refcoco, vg = sample["classes"]["refcoco"]["boxes"], sample["classes"]["vg"]["boxes"]
    assert (refcoco["boxes"], refcoco["in_human"], refcoco["in_gpt"]) == (3, 1, 2)
    assert refcoco["round_2dp_like_share"] == 1.0 and refcoco["outside_unit"] == 0
    # [0.61, 0.36, 0.92, 0.83] has exactly two decimals; [0.1, 0.2, 0.5, 0.8] and [0.0, 0.45, 0.27, 1.0] do not
    assert refcoco["formats"]["fixed_2dp"] == 1 and refcoco["formats"]["round_2dp"] == 2
    assert vg["boxes"] == 11 and vg["in_human"] == 5
    assert sample["classes"]["gqa"]["boxes"] is None


def test_box_quirks_are_counted(tmp_path):
    reg = "Please provide a short description for this region: "
    records = [qa("vg/VG_100K/1.jpg", (reg + "[0.80, 0.10, 0.90, 0.20].", "A."),  # %.2f printing, trailing zeros
                  (reg + "[12, 30, 240, 310].", "B."),  # pixels
                  (reg + "[0.5, 0.6, 0.4, 1.02].", "C."),  # round(v, 2) printing, but inverted and outside [0, 1]
                  (reg + "[0.123, 0.2, 0.3, 0.4].", "D."),
                  (reg + "[0, 0.5, 1, 0.8].", "E."))]  # round(0, 2) prints 0.0, not 0
    vg = audit(write(tmp_path / "b.json", records))["classes"]["vg"]["boxes"]
    assert vg["formats"] == {"round_2dp": 1, "fixed_2dp": 1, "integer": 1, "more_dp": 1, "other": 1}
    assert vg["round_2dp_like"] == 1  # 0.80 is not how round(0.8, 2) prints
    assert (vg["outside_unit"], vg["inverted"]) == (2, 1)  # the pixel box too


def test_problems_are_counted(tmp_path):
    records = [qa("gqa/images/1.jpg", ("Q?", "A")),
               {"id": "2", "image": "gqa/images/2.jpg", "conversations": [{"from": "human", "value": "no token"},
                                                                          {"from": "gpt", "value": None}]},
               {"id": "3", "image": "gqa/images/3.jpg"}]
    problems = audit(write(tmp_path / "p.json", records))["classes"]["gqa"]["problems"]
    assert problems == {"no_conversations": 1, "null_turns": 1, "image_token_mismatch": 2}


# --- the count check -----------------------------------------------------------------------------------------

def _published_file(path: Path, drop: str | None = None) -> Path:
    """A released-format file with the exact published counts: one small record per class, repeated."""
    reference = load_reference(DEFAULT_REFERENCE)
    templates = {
        "llava_instruct": qa("coco/train2017/1.jpg", ("What is this?", "A cat.")),
        "sharegpt": qa(None, ("Hi", "Hello")),
        "vqav2_okvqa": qa("coco/train2017/1.jpg", ("Q?\n" + SHORT, "Yes")),
        "gqa": qa("gqa/images/1.jpg", ("Q?\n" + SHORT, "Yes")),
        "ocrvqa": qa("ocr_vqa/images/1.jpg", ("Q?\n" + SHORT, "Yes")),
        "aokvqa": qa("coco/train2017/1.jpg", ("Q?\nA. x\nAnswer with the option's letter from the given choices "
                                              "directly.", "A")),
        "textcaps": qa("textvqa/train_images/1.jpg", ("Provide a one-sentence caption for the provided image.", "A.")),
        "refcoco": qa("coco/train2017/1.jpg", ("Please provide a short description for this region: "
                                               "[0.1, 0.2, 0.3, 0.4].", "Cat.")),
        "vg": qa("vg/VG_100K/1.jpg", ("Q?", "A.")),
    }
    parts = []
    for cls, n in expected_counts(reference).items():
        parts += [json.dumps(templates[cls]).encode()] * (n - (cls == drop))
    path.write_bytes(b"[" + b",".join(parts) + b"]")
    return path


@pytest.mark.slow
def test_the_published_counts_pass_and_a_missing_record_names_its_source(tmp_path):
    exact = run(_published_file(tmp_path / "exact.json"), "--json", tmp_path / "exact.audit.json")
    assert exact.exit_code == 0, exact.output
    counts = json.loads((tmp_path / "exact.audit.json").read_text())["counts"]
    assert counts["ok"] and counts["total"] == {"found": 665_298, "expected": 665_298, "diff": 0}
    assert counts["classes"]["vqav2_okvqa"] == {"found": 91_781, "expected": 82_783 + 8_998, "diff": 0}
    assert "OK: counts match llava_v1_5_mix665k (published)" in exact.output

    short = run(_published_file(tmp_path / "short.json", drop="gqa"))
    assert short.exit_code == 1
    assert "counts differ from llava_v1_5_mix665k (published): gqa 72,139 (expected 72,140, -1)" in short.output
    assert "vqav2_okvqa" not in short.output.splitlines()[-1]


def test_counts_against_another_reference_and_unexpected_classes(tmp_path):
    ref = write(tmp_path / "ref.json", {"name": "tiny", "sources": {"gqa": {"samples": 1}, "vqav2": {"samples": 1},
                                                                   "okvqa": {"samples": 1}}})
    records = [qa("gqa/images/1.jpg", ("Q?", "A")), qa("coco/train2017/1.jpg", ("Q?\n" + SHORT, "A")),
               qa("coco/train2017/2.jpg", ("Q?\n" + SHORT, "A")), qa(None, ("Hi", "Hello"))]
    result = run(write(tmp_path / "r.json", records), "--expect", ref, "--json", tmp_path / "o.json")
    assert result.exit_code == 1
    assert "sharegpt 1 (not in the reference)" in result.output
    counts = json.loads((tmp_path / "o.json").read_text())["counts"]
    assert counts["classes"]["vqav2_okvqa"] == {"found": 2, "expected": 2, "diff": 0}
    assert counts["classes"]["sharegpt"] == {"found": 1, "expected": None, "diff": None}
    assert run(tmp_path / "r.json", "--no-counts").exit_code == 0


def test_expected_counts_come_from_the_one_manifest():
    expected = expected_counts(load_reference(DEFAULT_REFERENCE))
    assert sum(expected.values()) == 665_298 and expected["vqav2_okvqa"] == 91_781 and expected["refcoco"] == 48_447
    assert class_of_source("okvqa") == class_of_source("vqav2") == "vqav2_okvqa" and class_of_source("gqa") == "gqa"


# --- --image-root ----------------------------------------------------------------------------------------------

def test_missing_images_and_paths_that_leave_the_root(tmp_path):
    root = tmp_path / "data"
    (root / "gqa" / "images").mkdir(parents=True)
    (root / "gqa" / "images" / "1.jpg").write_bytes(b"x")
    (tmp_path / "secret.jpg").write_bytes(b"outside the root")
    (root / "gqa" / "images" / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    records = [qa("gqa/images/1.jpg", ("Q?", "A")), qa("gqa/images/2.jpg", ("Q?", "A")),
               qa("gqa/images/1.jpg", ("Other?", "B")),  # the same image twice is checked once
               qa("gqa/../../secret.jpg", ("Q?", "A")), qa(str(tmp_path / "secret.jpg"), ("Q?", "A")),
               qa("gqa/images/link.jpg", ("Q?", "A")), qa(None, ("Hi", "Hello"))]
    result = run(write(tmp_path / "r.json", records), "--no-counts", "--image-root", root,
                 "--json", tmp_path / "o.json")
    assert result.exit_code == 1
    assert "1 image(s) missing under" in result.output and "3 image path(s) outside the image root" in result.output
    images = json.loads((tmp_path / "o.json").read_text())["images"]
    assert images["total"]["images"] == 5 and images["total"]["missing"] == 1 and images["total"]["unsafe"] == 3
    assert images["classes"]["gqa"]["examples_missing"] == ["gqa/images/2.jpg"]
    assert images["classes"]["gqa"]["examples_unsafe"] == ["gqa/../../secret.jpg", "gqa/images/link.jpg"]
    assert images["classes"]["other"]["examples_unsafe"] == [str(tmp_path / "secret.jpg")]


def test_every_image_present_passes(tmp_path):
    root = tmp_path / "data"
    (root / "coco" / "train2017").mkdir(parents=True)
    (root / "coco" / "train2017" / "1.jpg").write_bytes(b"x")
    result = run(write(tmp_path / "r.json", [qa("coco/train2017/1.jpg", ("Q?", "A"))]), "--no-counts",
                 "--image-root", root)
    assert result.exit_code == 0, result.output
    assert "all 1 images present" in result.output
    assert "not a folder" in run(tmp_path / "r.json", "--no-counts", "--image-root", tmp_path / "nope").output


# --- --against a build -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_build(tmp_path_factory):
    from datamix.builder import build
    from datamix.demo import write_demo_data

    root = tmp_path_factory.mktemp("audit-demo")
    write_demo_data(root / "raw", seed=0)
    os.environ["DATAMIX_DATA"] = str(root / "raw")
    try:
        build(Path(__file__).parent.parent / "recipes" / "demo.yaml", root / "mix")
    finally:
        del os.environ["DATAMIX_DATA"]
    return root / "mix"


def _released_from_build(mix: Path) -> list[dict]:
    """The build written back in the released file's form (paths under playground/data, bare ids)."""
    import polars as pl

    out = []
    for row in pl.read_parquet(mix / "index.parquet").iter_rows(named=True):
        cls = json.loads(row["meta"]).get("origin") or class_of_source(row["source"])
        record = {"id": row["id"].split("/", 1)[1], "conversations": row["conversations"]}
        if row["images"]:
            record["image"] = IMAGE_PREFIX[cls] + row["images"][0]
        out.append(record)
    return out


def test_against_a_build(tmp_path, demo_build):
    records = _released_from_build(demo_build)
    vqa = next(i for i, r in enumerate(records) if r.get("image", "").startswith("coco/") and SHORT in
               r["conversations"][0]["value"])
    changed = records[vqa]
    built_answer = changed["conversations"][1]["value"]
    changed["conversations"][1]["value"] = "Changed answer"
    gone = next(i for i, r in enumerate(records) if r.get("image", "").startswith("gqa/"))
    gone_id = records.pop(gone)["id"]
    records.append(qa("gqa/images/released-only.jpg", ("Only here?\n" + SHORT, "Yes"), rid="released-only"))
    records.reverse()  # matched by content, not position
    result = run(write(tmp_path / "r.json", records), "--no-counts", "--against", demo_build,
                 "--json", tmp_path / "o.json")
    assert result.exit_code == 0, result.output
    against = json.loads((tmp_path / "o.json").read_text())["against"]
    gqa, vqav2 = against["classes"]["gqa"], against["classes"]["vqav2_okvqa"]
    assert (gqa["only_released"], gqa["only_build"]) == (1, 1)
    assert gqa["examples_only_released"][0]["id"] == "released-only"
    assert gqa["examples_only_build"][0]["id"] == f"gqa/{gone_id}"
    assert gqa["examples_only_build"][0]["image"].startswith("images/")  # source-relative form
    assert vqav2["differing"] == 1 and vqav2["only_released"] == vqav2["only_build"] == 0
    diff = vqav2["examples_differing"][0]
    assert (diff["turn"], diff["value_released"], diff["value_built"]) == (1, "Changed answer", built_answer)
    assert against["classes"]["llava_instruct"]["differing"] == 0  # the recipe's repeats pair up one to one
    assert against["classes"]["llava_instruct"]["only_build"] == 0
    assert against["total"]["only_released"] == 1 and against["total"]["differing"] == 1
    assert "first differences (released turn vs built turn)" in result.output
    assert "gpt: Changed answer" in result.output


def test_released_text_is_not_taken_for_markup(tmp_path, demo_build):
    records = _released_from_build(demo_build)
    target = next(r for r in records if r.get("image", "").startswith("gqa/"))
    target["conversations"][1]["value"] = "[a dog] [bold]"
    result = run(write(tmp_path / "r.json", records), "--no-counts", "--against", demo_build)
    assert "gpt: [a dog] [bold]" in result.output


def test_a_different_prompt_placement_still_matches_and_shows(tmp_path, demo_build):
    records = _released_from_build(demo_build)
    target = next(r for r in records if r.get("image", "").startswith("gqa/") and len(r["conversations"]) >= 4)
    target["conversations"][2]["value"] += "\n" + SHORT  # every_turn in the released file, first_turn in the build
    against = audit(write(tmp_path / "r.json", records), against=demo_build)["against"]
    gqa = against["classes"]["gqa"]
    assert (gqa["only_released"], gqa["only_build"], gqa["differing"]) == (0, 0, 1)
    assert gqa["examples_differing"][0]["turn"] == 2
    assert gqa["examples_differing"][0]["value_released"].endswith(SHORT)


def test_against_needs_a_mix_folder(tmp_path):
    result = run(SAMPLE, "--no-counts", "--against", tmp_path)
    assert result.exit_code == 1 and "no index.parquet here" in result.output


# --- --json, --report, bad input ---------------------------------------------------------------------------------

def test_json_holds_every_figure_and_is_deterministic(tmp_path, sample):
    for name in ("a.json", "b.json"):
        assert run(SAMPLE, "--json", tmp_path / name).exit_code == 1  # a 17-record sample is not the 665K split
    data = json.loads((tmp_path / "a.json").read_text())
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert data == json.loads(json.dumps(sample))
    assert data["format"] == "datamix-audit/1" and data["file"] == SAMPLE.name
    for key in ("records", "share", "questions_mean", "questions_median", "placement", "prompts", "answers", "boxes",
                "problems"):
        assert key in data["classes"]["vg"]


def test_report_page(tmp_path):
    result = run(SAMPLE, "--no-counts", "--report", tmp_path / "rep")
    assert result.exit_code == 0, result.output
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "<h1>datamix audit: llava_v1_5_mix665k_sample.json</h1>" in page
    assert "boxes [x1, y1, x2, y2]" in page and "data:image/png;base64," in page
    assert json.loads((tmp_path / "rep" / "audit.json").read_text())["records"] == 17
    assert (tmp_path / "rep" / "shares.png").read_bytes()[:4] == b"\x89PNG"


def test_table_fits_100_columns():
    result = run(SAMPLE)
    assert "boxes [x1, y1, x2, y2]" in result.output
    lines = [line for line in result.output.splitlines() if not line.startswith("error: ")]  # one line, any length
    assert len(lines) > 30 and max(len(line) for line in lines) <= 100


@pytest.mark.parametrize("content, message", [
    (b'{"id": "1", "conversations": []}', "expected a JSON list of LLaVA records"),
    (b'[{"id": "1", "conversations": [}]', "not valid JSON"),
    (b'[{"id": "1", "conversations": [{"from": "human", "value": "Hi"}', "truncated"),
    (b"", "truncated"),
    (b"\xff\xfe[", "not valid JSON"),
])
def test_malformed_file_is_one_clear_line(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    result = run(path, "--no-counts")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
    assert "Traceback" not in result.output and "unexpected" not in result.output


def test_a_malformed_record_is_counted_not_fatal(tmp_path):
    records = [qa("gqa/images/1.jpg", ("Q?", "A")), {"id": "2", "conversations": "not a list"},
               {"id": "3", "image": 7, "conversations": []}]
    result = run(write(tmp_path / "r.json", records), "--no-counts", "--json", tmp_path / "o.json")
    assert result.exit_code == 1 and "2 malformed record(s)" in result.output
    data = json.loads((tmp_path / "o.json").read_text())
    assert data["records"] == 3 and data["total"]["records"] == 1
    assert [m["index"] for m in data["malformed"]["examples"]] == [1, 2]


def test_missing_file():
    result = run("no/such/file.json")
    assert result.exit_code == 1 and "no such file" in result.output
