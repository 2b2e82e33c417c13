"""RefCOCO/+/g: the refs pickle read without running anything, boxes via instances.json, splits, segments."""

from __future__ import annotations

import builtins
import os
import pickle
import random

import pytest

from datamix.convert import run_conversion
from datamix.converters import ConvertOptions
from datamix.converters.regions import REC_PROMPT, REG_PROMPT
from datamix.converters.refcoco import load_refs
from datamix.errors import ConverterError
from datamix.schema import validate
from tests.refcoco_fixtures import ROOT, fixture_files, plain, py2_pickle, refcoco_unc


def turns(sample):
    return list(zip(sample.conversations[0::2], sample.conversations[1::2]))


def box_of(human: dict, gpt: dict, kind: str) -> str:
    return gpt["value"] if kind == "rec" else human["value"].removeprefix("<image>\n").removeprefix(REG_PROMPT)[:-1]


def test_checked_in_fixtures_are_what_the_python2_pickler_writes():
    for name, data in fixture_files().items():
        assert (ROOT / name).read_bytes() == data, f"regenerate with `python tests/refcoco_fixtures.py`: {name}"
    assert (ROOT / "refcoco/refs(unc).p").read_bytes()[:2] == b"\x80\x02"  # protocol 2, SHORT_BINSTRING strs
    assert b"U\x08sent_ids" in (ROOT / "refcoco/refs(unc).p").read_bytes()


def test_python2_pickle_loads_with_byte_strings_as_text():
    refs = load_refs(ROOT / "refcoco/refs(unc).p")
    assert refs[0]["file_name"] == "COCO_train2014_000000581857_16.jpg"
    assert refs[0]["sentences"][0]["raw"] == "THE LADY WITH THE BLUE SHIRT"
    assert refs[1]["sentences"][0]["sent"] == "man in the caf\u00e9 chair"  # UTF-8 bytes in a Py2 str
    latin = load_refs(ROOT / "latin1/refs(unc).p")
    assert latin[0]["sentences"][0]["raw"] == "caf\u00e9 table"  # not UTF-8: Latin-1, string by string
    assert latin[0]["sentences"][0]["sent"] == "caf\u00e9 table"  # the valid UTF-8 ones stay UTF-8


def test_one_sentence_per_ref_as_reg_or_rec_turns(convert):
    samples, _, _ = convert("refcoco", ROOT / "refcoco")
    s = samples["refcoco/refcoco/581857_0"]
    assert s.source == "refcoco" and s.task == "grounding" and validate(s) is None
    assert s.images == ["train2017/000000581857.jpg"]  # the _16 annotation suffix is not part of the file
    assert s.meta["ref_ids"] == ["0", "1", "2"] and len(turns(s)) == 3
    assert s.conversations[0]["value"].startswith("<image>\nPlease provide ")
    assert sum("<image>" in t["value"] for t in s.conversations) == 1
    sentences = {"0": {"the lady with the blue shirt", "lady w back to us", "blue shirt"},
                 "1": {"man in the caf\u00e9 chair", "right guy"}, "2": {"edge of the table"}}
    for ref_id, kind, (human, gpt) in zip(s.meta["ref_ids"], s.meta["formats"], turns(s)):
        text = human["value"].removeprefix("<image>\n")
        if kind == "rec":
            assert text.startswith(REC_PROMPT) and text.removeprefix(REC_PROMPT)[:-1] in sentences[ref_id]
        else:
            assert text.startswith(REG_PROMPT)
            assert gpt["value"][:-1].lower() in sentences[ref_id] and gpt["value"][0].isupper()
    assert "edge of the table.." not in str(s.conversations)  # a sentence's own period is not doubled


def test_boxes_from_instances_in_both_frames(convert):
    square, _, _ = convert("refcoco", ROOT / "refcoco")
    original, _, _ = convert("refcoco", ROOT / "refcoco", options=ConvertOptions(box_frame="original"))
    # image 581857 is 640x427: padded to 640x640 with the image at y offset (640 - 427) // 2 = 106
    # ann 1719310 bbox [103.93, 299.99, 134.22, 177.42]: y + h = 477.41 is past the bottom, clipped to 427
    for samples, expected in ((square, "[0.16, 0.63, 0.37, 0.83]"), (original, "[0.16, 0.7, 0.37, 1.0]")):
        s = samples["refcoco/refcoco/581857_0"]
        assert box_of(*turns(s)[0], s.meta["formats"][0]) == expected
    s = square["refcoco/refcoco/98304_0"]  # 424x640: x offset 108; bbox [10, 20, 200, 300]
    assert box_of(*turns(s)[0], s.meta["formats"][0]) == \
        f"[{round(118 / 640, 2)}, {round(20 / 640, 2)}, {round(318 / 640, 2)}, {round(320 / 640, 2)}]"


def test_rejections_name_every_ref_left_out(convert):
    samples, rejects, ledger = convert("refcoco", ROOT / "refcoco")
    reasons = {r["id"]: r["reason"].split(":")[0] for r in rejects}
    assert reasons == {"4": "degenerate_box", "5": "no_annotation", "6": "split_not_selected",
                       "7": "split_not_selected", "8": "split_not_selected", "9": "no_sentences",
                       "10": "malformed_record"}
    assert ledger.records_in == 23 and ledger.records_out == 16
    assert all(r["file"] == "refcoco/refs(unc).p" for r in rejects)


def test_segments_hold_fewer_than_ten_exchanges(convert):
    samples, _, _ = convert("refcoco", ROOT / "refcoco")
    first, second = samples["refcoco/refcoco/262161_0"], samples["refcoco/refcoco/262161_1"]
    assert len(turns(first)) == 9 and len(turns(second)) == 3
    assert first.meta["segment"] == 0 and second.meta["segment"] == 1
    assert first.meta["ref_ids"] + second.meta["ref_ids"] == [str(20 + k) for k in range(12)]  # ref_id order
    assert second.conversations[0]["value"].startswith("<image>\n")  # each segment is its own conversation
    four, _, _ = convert("refcoco", ROOT / "refcoco", options=ConvertOptions(max_turns=4))
    assert [len(turns(four[f"refcoco/refcoco/262161_{k}"])) for k in range(3)] == [4, 4, 4]


def test_all_sentences_and_chosen_splits(convert):
    samples, rejects, _ = convert("refcoco", ROOT / "refcoco",
                                  options=ConvertOptions(sentences="all", splits="train,val,testA"))
    s = samples["refcoco/refcoco/581857_0"]
    assert s.meta["ref_ids"] == ["0", "0", "0", "1", "1", "2"] and s.meta["sent_ids"] == ["0", "1", "2", "3", "4", "5"]
    assert "refcoco/refcoco/400000_0" in samples  # the val and testA refs now in
    assert {r["id"] for r in rejects if r["reason"].startswith("split_not_selected")} == {"8"}
    with pytest.raises(ConverterError, match="option 'splits' takes a comma-separated list"):
        run_conversion("refcoco", [ROOT / "refcoco"], "unused.parquet", ConvertOptions(splits="trian"))


def test_refs_in_two_split_schemes_are_used_once_and_never_leak_a_test_split(convert):
    samples, rejects, ledger = convert("refcoco", ROOT / "refcocog")
    by = {(r["file"], r["id"]): r["reason"] for r in rejects}
    assert by[("refcocog/refs(umd).p", "0")].startswith("duplicate_ref")
    assert by[("refcocog/refs(google).p", "1")] == (
        "split_not_selected: train, but a copy is in val (evaluation data unless chosen with the splits option)")
    assert by[("refcocog/refs(umd).p", "2")].startswith("split_not_selected: test")
    assert sorted(samples) == ["refcoco/refcocog/111111_0", "refcoco/refcocog/222222_0"]
    assert ledger.records_in == 6 and ledger.records_out == 2


def test_coco_naming_2014(convert):
    samples, _, _ = convert("refcoco", ROOT / "refcoco", options=ConvertOptions(coco_naming="2014"))
    assert samples["refcoco/refcoco/581857_0"].images == ["train2014/COCO_train2014_000000581857.jpg"]


def test_output_does_not_depend_on_ref_order_and_a_python3_pickle_loads_too(convert, tmp_path):
    base, _, _ = convert("refcoco", ROOT / "refcoco")
    refs, _ = refcoco_unc()
    random.Random(3).shuffle(refs)
    (tmp_path / "refcoco").mkdir()
    with open(tmp_path / "refcoco/refs(unc).p", "wb") as f:
        pickle.dump(plain(refs), f, protocol=2)  # what the demo data writes: Python 3, plain containers
    (tmp_path / "refcoco/instances.json").write_bytes((ROOT / "refcoco/instances.json").read_bytes())
    shuffled, _, _ = convert("refcoco", tmp_path / "refcoco")
    assert {k: v.to_dict() for k, v in base.items()} == {k: v.to_dict() for k, v in shuffled.items()}
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    run_conversion("refcoco", [ROOT / "refcoco"], a)
    run_conversion("refcoco", [ROOT / "refcoco"], b)
    assert a.read_bytes() == b.read_bytes()


class RunsShell:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class Evaluates:
    def __init__(self, code: str):
        self.code = code

    def __reduce__(self):
        return builtins.eval, (self.code,)


class OpensFile:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return builtins.open, (self.path, "w")


@pytest.mark.parametrize("protocol", [0, 2, 4])
@pytest.mark.parametrize("make, name", [
    (lambda marker: RunsShell(f"touch {marker}"), "system"),
    (lambda marker: Evaluates(f"open({str(marker)!r}, 'w')"), "eval"),
    (lambda marker: OpensFile(str(marker)), "open"),
])
def test_a_pickle_asking_for_any_global_is_refused_and_nothing_runs(tmp_path, protocol, make, name):
    marker = tmp_path / "pwned"
    folder = tmp_path / "refcoco"
    folder.mkdir()
    refs = plain(refcoco_unc()[0])
    refs[1]["sentences"][0]["raw"] = make(marker)
    (folder / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=protocol))
    (folder / "instances.json").write_bytes((ROOT / "refcoco/instances.json").read_bytes())
    with pytest.raises(ConverterError) as err:
        run_conversion("refcoco", [folder], tmp_path / "out.parquet")
    message = str(err.value)
    assert "refused to unpickle" in message and name in message and "\n" not in message
    assert not marker.exists()
    assert not (tmp_path / "out.parquet").exists()


def test_bad_inputs_are_one_line_errors(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a/refs(unc).p").write_bytes(py2_pickle({"not": "a list"}))
    (tmp_path / "a/instances.json").write_bytes((ROOT / "refcoco/instances.json").read_bytes())
    with pytest.raises(ConverterError, match="expected a list of refs, got dict"):
        run_conversion("refcoco", [tmp_path / "a"], tmp_path / "o.parquet")
    (tmp_path / "b").mkdir()
    (tmp_path / "b/refs(unc).p").write_bytes(b"this is not a pickle")
    (tmp_path / "b/instances.json").write_bytes((ROOT / "refcoco/instances.json").read_bytes())
    with pytest.raises(ConverterError, match="not a RefCOCO refs pickle"):
        run_conversion("refcoco", [tmp_path / "b"], tmp_path / "o.parquet")
    with pytest.raises(ConverterError, match="no instances.json next to it"):
        run_conversion("refcoco", [ROOT / "refcoco/refs(unc).p"], tmp_path / "o.parquet")
    with pytest.raises(ConverterError, match="no refs"):
        run_conversion("refcoco", [ROOT / "refcoco/instances.json"], tmp_path / "o.parquet")
    with pytest.raises(ConverterError, match="max_turns' must be at least 1"):
        run_conversion("refcoco", [ROOT / "refcoco"], tmp_path / "o.parquet", ConvertOptions(max_turns=0))


def test_a_recipe_folder_input_brings_the_refs_pickle(tmp_path):
    from datamix.recipe import load_recipe

    recipe = tmp_path / "mix.yaml"
    recipe.write_text(f"name: m\nseed: 0\nsources:\n  - name: refs\n    converter: refcoco\n"
                      f"    inputs: [{ROOT / 'refcoco'}]\n    count: 2\n    options: {{box_frame: original}}\n")
    inputs = load_recipe(recipe).sources[0].inputs
    assert sorted(p.name for p in inputs) == ["instances.json", "refs(unc).p"]
