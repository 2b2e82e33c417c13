"""Visual Genome: both key spellings, the seeded region sample, dropped regions counted, images in the ledger."""

from __future__ import annotations

import json
import random
import re

import pytest

from datamix.converters import ConvertOptions
from datamix.converters.regions import REC_PROMPT, REG_PROMPT
from datamix.errors import ConverterError
from datamix.schema import validate

BOX = re.compile(r"^\[(0\.\d+|1\.0), (0\.\d+|1\.0), (0\.\d+|1\.0), (0\.\d+|1\.0)\]$")


def turns(sample):
    return list(zip(sample.conversations[0::2], sample.conversations[1::2]))


def described(sample) -> list[str]:
    """The expression of every turn (REC: in the question, REG: the answer), lower-cased, without the period."""
    out = []
    for human, gpt in turns(sample):
        text = human["value"].removeprefix("<image>\n")
        expr = text.removeprefix(REC_PROMPT) if text.startswith(REC_PROMPT) else gpt["value"]
        out.append(expr.rstrip(".").lower())
    return out


def test_ten_sampled_regions_per_image_as_reg_or_rec_turns(convert, fixtures_path):
    samples, _, ledger = convert("vg", fixtures_path / "vg/v1_2")
    s = samples["vg/1"]
    assert s.source == "vg" and s.task == "grounding" and s.images == ["VG_100K/1.jpg"]
    assert samples["vg/51"].images == ["VG_100K_2/51.jpg"]  # the folder comes from image_data's url
    assert len(turns(s)) == 10 and validate(s) is None
    assert s.conversations[0]["value"].startswith("<image>\nPlease provide ")
    assert sum("<image>" in t["value"] for t in s.conversations) == 1
    formats = s.meta["formats"]
    assert set(formats) == {"reg", "rec"}
    for (human, gpt), kind in zip(turns(s), formats):
        text = human["value"].removeprefix("<image>\n")
        if kind == "rec":
            assert text.startswith(REC_PROMPT) and text.endswith(".") and BOX.match(gpt["value"])
        else:
            assert text.startswith(REG_PROMPT) and BOX.match(text.removeprefix(REG_PROMPT)[:-1])
            assert gpt["value"][0].isupper() and gpt["value"].endswith(".")
    assert ledger.records_in == 7 and ledger.samples_out == 3


def test_exact_turns_of_one_image(convert, fixtures_path):
    samples, _, _ = convert("vg", fixtures_path / "vg/v1_2")
    s = samples["vg/51"]  # 500x800: padded to 800x800 with the image at x offset 150
    by_region = dict(zip(s.meta["region_ids"], turns(s)))
    human, gpt = by_region["4093"]  # the whole image
    if "rec" == s.meta["formats"][s.meta["region_ids"].index("4093")]:
        assert gpt["value"] == "[0.19, 0.0, 0.81, 1.0]" and human["value"].endswith("describes: the whole scene.")
    else:
        assert human["value"].endswith("region: [0.19, 0.0, 0.81, 1.0].") and gpt["value"] == "The whole scene."


def test_dropped_regions_are_counted_and_never_asked(convert, fixtures_path):
    samples, _, _ = convert("vg", fixtures_path / "vg/v1_2")
    s = samples["vg/1"]
    regions = s.meta["regions"]
    assert regions["in"] == 17
    assert {k: v for k, v in regions.items() if k.startswith("dropped_") and v} == {
        "dropped_empty_phrase": 1, "dropped_image_token_in_text": 1, "dropped_degenerate_box": 1,
        "dropped_box_outside_image": 1, "dropped_duplicate_phrase": 2}
    dropped = sum(v for k, v in regions.items() if k.startswith("dropped_"))
    assert regions["in"] == regions["sampled"] + regions["not_sampled"] + dropped  # nothing lost silently
    texts = described(s)
    assert texts.count("man is wearing sneakers") == 1  # 3 copies (one upper-cased) -> one kept
    assert not {"a zero-width box", "a box right of the image", "the <image> sign"} & set(texts)
    assert "shade is along the street" in texts or regions["not_sampled"]  # trailing space stripped
    assert all("  " not in t and "\t" not in t for t in texts)


def test_negative_x_is_clipped_to_the_image(convert, fixtures_path):
    samples, _, _ = convert("vg", fixtures_path / "vg/v1_2", options=ConvertOptions(regions_per_image=20))
    s = samples["vg/1"]
    i = s.meta["region_ids"].index("1387")  # x = -1
    human, gpt = turns(s)[i]
    box = gpt["value"] if s.meta["formats"][i] == "rec" else human["value"].removeprefix(REG_PROMPT)[:-1]
    assert box == "[0.0, 0.62, 0.07, 0.69]"
    assert s.meta["regions"]["clipped"] == 2  # x = -1 and the hydrant past the bottom-right corner


def test_images_without_data_or_usable_regions_are_rejected_with_reasons(convert, fixtures_path):
    _, rejects, ledger = convert("vg", fixtures_path / "vg/v1_2")
    by_id = {(r["id"], r["reason"].split(":")[0]) for r in rejects}
    assert by_id == {("4", "no_image_data"), ("7", "no_usable_regions"), ("8", "no_usable_regions"),
                     ("1", "duplicate_image")}
    seven = next(r["reason"] for r in rejects if r["id"] == "7")
    assert seven == "no_usable_regions: 2 regions (empty_phrase 1, degenerate_box 1)"
    assert ledger.balanced()


def test_v1_0_key_spelling_converts_like_v1_2(convert, fixtures_path, tmp_path):
    old, _, _ = convert("vg", fixtures_path / "vg/v1_0")
    entries = json.loads((fixtures_path / "vg/v1_0/region_descriptions.json").read_text())
    images = json.loads((fixtures_path / "vg/v1_0/image_data.json").read_text())
    for entry in entries:
        entry["regions"] = [{"region_id": r["id"], "image_id": r["image"],
                             **{k: r[k] for k in ("x", "y", "width", "height", "phrase")}} for r in entry["regions"]]
    for image in images:
        image["image_id"] = image.pop("id")
    (tmp_path / "v12").mkdir()
    (tmp_path / "v12/region_descriptions.json").write_text(json.dumps(entries))
    (tmp_path / "v12/image_data.json").write_text(json.dumps(images))
    new, _, _ = convert("vg", tmp_path / "v12")
    assert sorted(old) == ["vg/1", "vg/51"]
    assert {k: v.to_dict() for k, v in old.items()} == {k: v.to_dict() for k, v in new.items()}


def test_sample_does_not_depend_on_input_order_and_runs_are_byte_identical(convert, fixtures_path, tmp_path):
    from datamix.convert import run_conversion

    base, _, _ = convert("vg", fixtures_path / "vg/v1_2")
    entries = json.loads((fixtures_path / "vg/v1_2/region_descriptions.json").read_text())
    rng = random.Random(7)
    first_one = entries.pop(0)  # keep the first copy of image 1 first, as duplicates go by file order
    rng.shuffle(entries)
    for e in [first_one, *entries]:
        rng.shuffle(e["regions"])
    (tmp_path / "in").mkdir()
    (tmp_path / "in/region_descriptions.json").write_text(json.dumps([first_one, *entries]))
    (tmp_path / "in/image_data.json").write_bytes((fixtures_path / "vg/v1_2/image_data.json").read_bytes())
    shuffled, _, _ = convert("vg", tmp_path / "in")
    assert {k: v.to_dict() for k, v in base.items()} == {k: v.to_dict() for k, v in shuffled.items()}
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    run_conversion("vg", [fixtures_path / "vg/v1_2"], a)
    run_conversion("vg", [fixtures_path / "vg/v1_2"], b)
    assert a.read_bytes() == b.read_bytes()


def test_fewer_regions_per_image_is_a_prefix_and_the_seed_redraws(convert, fixtures_path):
    ten, _, _ = convert("vg", fixtures_path / "vg/v1_2")
    three, _, _ = convert("vg", fixtures_path / "vg/v1_2", options=ConvertOptions(regions_per_image=3))
    assert three["vg/1"].meta["region_ids"] == ten["vg/1"].meta["region_ids"][:3]
    assert three["vg/1"].conversations == ten["vg/1"].conversations[:6]
    assert three["vg/1"].meta["regions"]["not_sampled"] == 8
    other, _, _ = convert("vg", fixtures_path / "vg/v1_2", options=ConvertOptions(seed=5))
    assert other["vg/1"].meta["region_ids"] != ten["vg/1"].meta["region_ids"]
    assert other["vg/1"].meta["seed"] == 5 and ten["vg/1"].meta["seed"] == 0
    assert "mix64" in ten["vg/1"].meta["format_rule"] and "mix64" in ten["vg/1"].meta["sample_rule"]


def test_original_frame_option(convert, fixtures_path):
    samples, _, _ = convert("vg", fixtures_path / "vg/v1_2", options=ConvertOptions(box_frame="original"))
    s = samples["vg/51"]
    i = s.meta["region_ids"].index("4093")
    human, gpt = turns(s)[i]
    assert "[0.0, 0.0, 1.0, 1.0]" in gpt["value"] + human["value"]
    assert s.meta["box_frame"] == "original"


def test_a_region_arrow_cannot_type_rejects_only_its_image(convert, fixtures_path, tmp_path):
    entries = json.loads((fixtures_path / "vg/v1_2/region_descriptions.json").read_text())
    entries[1]["regions"][0]["x"] = "ten"  # image 51
    (tmp_path / "in").mkdir()
    (tmp_path / "in/region_descriptions.json").write_text(json.dumps(entries))
    (tmp_path / "in/image_data.json").write_bytes((fixtures_path / "vg/v1_2/image_data.json").read_bytes())
    samples, rejects, _ = convert("vg", tmp_path / "in")
    assert "vg/51" not in samples and "vg/1" in samples
    assert any(r["id"] == "51" and r["reason"].startswith("malformed_record") for r in rejects)


@pytest.mark.parametrize("files, message", [
    (["image_data.json"], "no region_descriptions.json among the inputs"),
    (["region_descriptions.json"], "image_data.json is needed too"),
])
def test_missing_companion_file_is_one_clear_error(fixtures_path, tmp_path, files, message):
    from datamix.convert import run_conversion

    with pytest.raises(ConverterError, match=message):
        run_conversion("vg", [fixtures_path / "vg/v1_2" / f for f in files], tmp_path / "o.parquet")


def test_not_a_vg_file_and_bad_option(fixtures_path, tmp_path):
    from datamix.convert import run_conversion

    with pytest.raises(ConverterError, match="not a Visual Genome file"):
        run_conversion("vg", [fixtures_path / "gqa/balanced"], tmp_path / "o.parquet")
    with pytest.raises(ConverterError, match="regions_per_image' must be at least 1"):
        run_conversion("vg", [fixtures_path / "vg/v1_2"], tmp_path / "o.parquet", ConvertOptions(regions_per_image=0))


def test_entries_with_id_first_take_the_whole_file_reader_and_convert_the_same(convert, fixtures_path, tmp_path):
    base, _, _ = convert("vg", fixtures_path / "vg/v1_2")
    entries = json.loads((fixtures_path / "vg/v1_2/region_descriptions.json").read_text())
    (tmp_path / "in").mkdir()
    # no `}, {"regions": [` seam between entries: not readable as lines, so Arrow reads the list whole
    (tmp_path / "in/region_descriptions.json").write_text(
        json.dumps([{"id": e["id"], "regions": e["regions"]} for e in entries], indent=1))
    (tmp_path / "in/image_data.json").write_bytes((fixtures_path / "vg/v1_2/image_data.json").read_bytes())
    other, _, _ = convert("vg", tmp_path / "in")
    assert {k: v.to_dict() for k, v in base.items()} == {k: v.to_dict() for k, v in other.items()}


@pytest.mark.parametrize("chunk", [1, 5, 16, 17, 1 << 22])
def test_entries_stream_as_lines_whatever_the_chunk_size(fixtures_path, tmp_path, monkeypatch, chunk):
    from datamix.converters import vg

    text = "  \n" + json.dumps([{"regions": [{"phrase": 'a }, {"b'}], "id": i} for i in range(5)]) + " \n\n"
    path = tmp_path / "r.json"
    path.write_text(text)
    monkeypatch.setattr(vg._SeamsToLines, "CHUNK", chunk)
    monkeypatch.setattr(vg._SeamsToLines, "HOLD", 20)
    with vg._SeamsToLines(path, vg.ENTRY_SEAMS[0]) as stream:
        out = b"".join(iter(lambda: stream.read(7), b""))
    lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    assert [e["id"] for e in lines] == list(range(5)) and len(out) == len(text)


def test_demo_data_regions_convert_with_boxes_that_match_the_drawn_shapes(tmp_path, convert):
    from PIL import Image

    from datamix.demo import write_demo_data

    summary = write_demo_data(tmp_path / "raw", seed=2, n_images=48)
    scenes = json.loads((tmp_path / "raw/scenes.demo.json").read_text())
    vg, _, vg_ledger = convert("vg", tmp_path / "raw/vg", options=ConvertOptions(box_frame="original"))
    refs, _, ref_ledger = convert("refcoco", tmp_path / "raw/refcoco")
    assert vg_ledger.by_reason() == {"no_image_data": 1}
    assert {"no_annotation", "degenerate_box", "split_not_selected"} <= set(ref_ledger.by_reason())
    assert len(vg) == summary["counts"]["vg_images"] and refs
    matched = missed = 0
    for sample in vg.values():
        shapes = scenes["vg/" + sample.images[0]]
        width, height = Image.open(tmp_path / "raw/vg" / sample.images[0]).size  # the file, not image_data
        for (human, gpt), kind in zip(turns(sample), sample.meta["formats"]):
            text = human["value"].removeprefix("<image>\n")
            if kind != "rec" or "background" in text:
                continue
            color, shape = text.removeprefix(REC_PROMPT).removeprefix("the ").rstrip(".").split()[:2]
            boxes = {f"[{round(x0 / width, 2)}, {round(y0 / height, 2)}, {round(x1 / width, 2)}, "
                     f"{round(y1 / height, 2)}]" for (x0, y0, x1, y1), s in
                     ((s["box"], s) for s in shapes) if (s["color"], s["shape"]) == (color, shape)}
            matched += gpt["value"] in boxes
            missed += gpt["value"] not in boxes
    assert matched >= 5 and missed <= 1  # the one region moved to x = -1 on purpose no longer matches
