"""Box normalisation and printing, the expand2square frame, seeded choices and the REG/REC sentences."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from datamix.converters.regions import (REC_PROMPT, REG_PROMPT, BoxFrame, box_strings, clean_text, grounding_turns,
                                        hundredths, mix64, normalize_boxes, sentence_case)

PAD = (122, 116, 104)  # LLaVA's expand2square fill: the CLIP image mean * 255


def boxes(rows: list[tuple], frame: BoxFrame = BoxFrame.square) -> pl.DataFrame:
    df = pl.DataFrame(rows, schema=["x", "y", "w", "h", "width", "height"], orient="row")
    return normalize_boxes(df.cast(pl.Float64), frame)


@given(st.floats(min_value=0.0, max_value=1.0, allow_nan=False))
@settings(max_examples=2000, deadline=None)
def test_hundredths_and_printing_match_python_round(v):
    assert hundredths(np.array([v]))[0] == round(round(v, 2) * 100)
    printed = repr(round(v, 2))
    assert box_strings(*(np.array([v]),) * 4)[0] == f"[{printed}, {printed}, {printed}, {printed}]"


@pytest.mark.parametrize("v, printed", [(0.125, "0.12"), (0.135, "0.14"), (0.285, "0.28"), (0.805, "0.81"),
                                        (0.8, "0.8"), (0.4, "0.4"), (0.0, "0.0"), (1.0, "1.0"), (0.999, "1.0"),
                                        (0.05, "0.05"), (0.004999, "0.0")])
def test_ties_and_trailing_zeros_print_like_round(v, printed):
    assert printed == repr(round(v, 2))  # the expectation is Python's own
    assert box_strings(np.array([v]), np.array([0.0]), np.array([1.0]), np.array([v]))[0] == \
        f"[{printed}, 0.0, 1.0, {printed}]"


def pixels_after_expand2square(width: int, height: int, box: tuple[int, int, int, int]) -> tuple[float, ...]:
    """Draw the box, pad the image as LLaVA's expand2square does, and read where the box ended up (normalised)."""
    image = Image.new("RGB", (width, height), (0, 0, 0))
    x, y, w, h = box
    image.paste((255, 255, 255), (x, y, x + w, y + h))
    side = max(width, height)
    square = Image.new("RGB", (side, side), PAD)
    square.paste(image, ((side - width) // 2, (side - height) // 2))
    mask = Image.eval(square.convert("L"), lambda v: 255 if v == 255 else 0)
    x1, y1, x2, y2 = mask.getbbox()
    return tuple(v / side for v in (x1, y1, x2, y2))


@pytest.mark.parametrize("width, height, box", [(800, 600, (421, 57, 82, 139)), (500, 800, (10, 20, 200, 300)),
                                                (641, 480, (600, 400, 41, 80)), (300, 300, (0, 0, 150, 300)),
                                                (427, 640, (100, 500, 327, 140))])
def test_square_frame_is_where_the_box_lands_on_the_padded_image(width, height, box):
    out = boxes([(*box, width, height)])
    expected = pixels_after_expand2square(width, height, box)
    printed = [float(v) for v in out["box"][0].strip("[]").split(", ")]
    assert printed == [round(v, 2) for v in expected]
    assert out["box_status"][0] is None and not out["clipped"][0]


def test_original_frame_divides_by_the_image_size():
    out = boxes([(421, 57, 82, 139, 800, 600)], BoxFrame.original)
    assert out["box"][0] == (f"[{round(421 / 800, 2)}, {round(57 / 600, 2)}, "
                             f"{round(503 / 800, 2)}, {round(196 / 600, 2)}]")


def test_boxes_sticking_out_are_clipped_and_degenerate_ones_flagged():
    out = boxes([(-1, 400, 60, 50, 800, 600),  # VG's negative x
                 (700, 500, 120, 120, 800, 600),  # past the bottom-right corner
                 (200, 200, 0, 40, 800, 600),  # zero width
                 (900, 100, 50, 50, 800, 600),  # entirely to the right of the image
                 (None, 1, 2, 3, 800, 600),  # a missing coordinate
                 (1, 1, 2, 2, 0, 600)])  # an image without a size
    assert out["clipped"].to_list()[:2] == [True, True]
    assert out["box"][0] == "[0.0, 0.62, 0.07, 0.69]"
    assert out["box"][1] == "[0.88, 0.75, 1.0, 0.88]"
    assert [s and s.split(":")[0] for s in out["box_status"]] == [
        None, None, "degenerate_box", "box_outside_image", "degenerate_box", "bad_image_size"]


@given(st.lists(st.tuples(st.floats(-50, 900), st.floats(-50, 900), st.floats(-10, 900), st.floats(-10, 900),
                          st.integers(1, 800), st.integers(1, 800)), min_size=1, max_size=20),
       st.sampled_from(list(BoxFrame)))
@settings(max_examples=200, deadline=None)
def test_every_usable_box_is_inside_unit_square_and_ordered(rows, frame):
    out = boxes(rows, frame).filter(pl.col("box_status").is_null())
    for text in out["box"]:
        x1, y1, x2, y2 = (float(v) for v in text.strip("[]").split(", "))
        assert 0.0 <= x1 <= x2 <= 1.0 and 0.0 <= y1 <= y2 <= 1.0


def test_mix64_is_pinned_deterministic_and_balanced():
    keys = np.arange(20_000)
    a, b = mix64(keys, 0, 1), mix64(keys, 0, 1)
    assert (a == b).all()
    assert int(mix64(np.array([0]), 0, 0)[0]) == 0  # SplitMix64's finaliser maps 0 to 0
    assert int(mix64(np.array([1382]), 0, 1)[0]) == int(mix64(np.array([1382, 7]), 0, 1)[0])  # per key, not per batch
    assert not (mix64(keys, 1, 1) == a).all() and not (mix64(keys, 0, 2) == a).all()  # seed and salt matter
    assert 0.48 < float((a & np.uint64(1)).mean()) < 0.52


def test_texts_are_cleaned_and_sentence_cased():
    df = pl.DataFrame({"t": ["  shade is along the street ", "white  building\twith windows", "A sunny day.",
                             "is it?", "man..."]})
    cleaned = df.select(clean_text(pl.col("t")))["t"].to_list()
    assert cleaned == ["shade is along the street", "white building with windows", "A sunny day", "is it?", "man"]
    cased = pl.DataFrame({"t": cleaned}).select(sentence_case(pl.col("t")))["t"].to_list()
    assert cased == ["Shade is along the street.", "White building with windows.", "A sunny day.", "Is it?", "Man."]


def test_grounding_turns_use_llava_sentences():
    rows = pl.DataFrame({"text": ["red jacket"] * 64, "box": ["[0.61, 0.36, 0.92, 0.83]"] * 64,
                         "format_key": list(range(64))})
    out = grounding_turns(rows, seed=0)
    rec = out.filter(pl.col("format") == "rec").row(0, named=True)
    reg = out.filter(pl.col("format") == "reg").row(0, named=True)
    assert rec["question"] == ("Please provide the bounding box coordinate of the region this sentence describes: "
                               "red jacket.") == REC_PROMPT + "red jacket."
    assert rec["answer"] == "[0.61, 0.36, 0.92, 0.83]"
    assert reg["question"] == "Please provide a short description for this region: [0.61, 0.36, 0.92, 0.83]."
    assert reg["question"].startswith(REG_PROMPT) and reg["answer"] == "Red jacket."
    assert grounding_turns(rows, seed=0)["format"].to_list() == out["format"].to_list()
    assert grounding_turns(rows, seed=1)["format"].to_list() != out["format"].to_list()
