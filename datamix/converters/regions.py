"""Region-level grounding turns shared by the RefCOCO and Visual Genome converters (LLaVA-1.5 "region-level VQA").

LLaVA-1.5 (paper Tab. 7) asks about a region in one of two formats, chosen at random per turn; the released
`llava_v1_5_mix665k.json` writes them as full sentences (LLaVA issue #623 shows an REC turn):

- REG (region captioning): human `Please provide a short description for this region: [x1, y1, x2, y2].`
  -> gpt: the expression, sentence-cased with a final period (`Red jacket.`);
- REC (referring expression comprehension): human
  `Please provide the bounding box coordinate of the region this sentence describes: <expression>.`
  -> gpt: `[x1, y1, x2, y2]`.

Boxes are `[x1, y1, x2, y2]` normalised to [0, 1] and printed like Python's `round(v, 2)` (`0.8`, `0.4`, `0.0`).

Box frame (`box_frame`). The released file is not consistent: VG boxes are normalised to the image after
`expand2square` padding, RefCOCO boxes to the original image (LLaVA issues #606, #623, #822; a community finding
the maintainers never confirmed). Both frames are offered; the default is `square` for both sources, because
LLaVA-1.5's stage 2 runs with `image_aspect_ratio=pad`: the model sees the padded square (`expand2square` pastes
the image at offset `(W - H) // 2` on the short axis of a `max(W, H)` square), so only square-frame boxes point
at what the model is shown. `original` divides by the image's own width and height.

Pixel boxes (COCO/VG `[x, y, w, h]`) are first clipped to the image: a box that sticks out (VG has `x = -1`) is
clipped and counted; a box with `w <= 0` or `h <= 0`, or nothing left inside the image, is degenerate and the
caller drops it with a reason. Sizes come from the annotation files (no image is opened at convert time).

Randomness is a pure function of (seed, a stable key such as the region id): the REG/REC choice and VG's region
sampling do not depend on input order, platform or run, and the rule is written into each sample's `meta`.
"""

from __future__ import annotations

from enum import Enum

import numpy as np
import polars as pl

REG_PROMPT = "Please provide a short description for this region: "
REC_PROMPT = "Please provide the bounding box coordinate of the region this sentence describes: "
DEFAULT_SEED = 0
# Salts keep the independent draws made from one key (format, sentence, sample rank) uncorrelated.
SALT_FORMAT, SALT_SENTENCE, SALT_SAMPLE = 1, 2, 3
FORMAT_RULE = "rec if mix64(seed, salt=1, key) is odd else reg"
# repr(k / 100) for k = 0..100, i.e. how Python prints round(v, 2): "0.0", "0.05", "0.1", "0.37", "1.0".
_TWO_DECIMALS = [repr(k / 100) for k in range(101)]
_MASK = (1 << 64) - 1
BOX_PROBLEMS = {1: "box_outside_image: nothing of the box is inside the image",
                2: "degenerate_box: width or height <= 0 or missing",
                3: "bad_image_size: width or height <= 0 or missing"}


class BoxFrame(str, Enum):
    square = "square"
    original = "original"


def mix64(keys: np.ndarray, seed: int, salt: int) -> np.ndarray:
    """SplitMix64 of (seed, salt, key) for an array of int keys: a fast, platform-independent hash (uint64)."""
    offset = np.uint64(((seed * 0x9E3779B97F4A7C15) ^ (salt * 0xD1B54A32D192ED03)) & _MASK)
    with np.errstate(over="ignore"):
        z = np.asarray(keys).astype(np.uint64) + offset
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def hundredths(values: np.ndarray) -> np.ndarray:
    """`round(v, 2) * 100` as ints, exactly as Python's `round` (correctly rounded, ties to even).

    `floor(100 v + 0.5)` agrees with Python except when 100 v lies within float error of a .5 boundary
    (exact ties such as 0.125 are common: pixel / 800); those values go to Python's own `round`, once
    per distinct value.
    """
    values = np.asarray(values, dtype=np.float64)
    scaled = values * 100.0
    out = np.floor(scaled + 0.5)
    near_tie = np.flatnonzero(np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6)
    if len(near_tie):
        distinct, where = np.unique(values[near_tie], return_inverse=True)
        out[near_tie] = np.array([round(round(float(v), 2) * 100) for v in distinct])[where.ravel()]
    return out.astype(np.int16)


def format_boxes(coords: np.ndarray) -> pl.Series:
    """`[x1, y1, x2, y2]` strings from an (n, 4) array of hundredths, each printed like `round(v, 2)`."""
    table = pl.Series(_TWO_DECIMALS)
    parts = {f"c{i}": table.gather(coords[:, i].astype(np.int64)) for i in range(4)}
    frame = pl.DataFrame(parts)
    return frame.select(pl.lit("[") + pl.concat_str(list(parts), separator=", ") + pl.lit("]")).to_series()


def box_strings(x1: np.ndarray, y1: np.ndarray, x2: np.ndarray, y2: np.ndarray) -> pl.Series:
    """`[x1, y1, x2, y2]` strings of normalised coordinates, each printed like `round(v, 2)`."""
    return format_boxes(np.stack([hundredths(v) for v in (x1, y1, x2, y2)], axis=1))


def box_problems(x, y, w, h, width, height) -> tuple[np.ndarray, np.ndarray]:
    """Pixel `[x, y, w, h]` boxes on `width` x `height` images (arrays; NaN = missing) ->
    (problem: int8, 0 = usable else a key of BOX_PROBLEMS; clipped: bool, a usable box that sticks out)."""
    x, y, w, h, width, height = (np.asarray(v, dtype=np.float64) for v in (x, y, w, h, width, height))
    with np.errstate(invalid="ignore"):
        x1, y1 = np.clip(x, 0, width), np.clip(y, 0, height)
        x2, y2 = np.clip(x + w, 0, width), np.clip(y + h, 0, height)
        clipped = (x1 != x) | (y1 != y) | (x2 != x + w) | (y2 != y + h)
        bad_size = ~((width > 0) & (height > 0))
        not_positive = ~((w > 0) & (h > 0) & np.isfinite(x) & np.isfinite(y))  # NaN: a missing coordinate
        outside = ~((x2 > x1) & (y2 > y1))
    problem = np.zeros(len(x), dtype=np.int8)  # later assignments win: the most basic problem is reported
    problem[outside], problem[not_positive], problem[bad_size] = 1, 2, 3
    return problem, clipped & (problem == 0)


def box_hundredths(x, y, w, h, width, height, box_frame: BoxFrame) -> np.ndarray:
    """(n, 4) int16 hundredths of the normalised `x1, y1, x2, y2` of usable boxes, clipped to the image first."""
    x, y, w, h, width, height = (np.asarray(v, dtype=np.float64) for v in (x, y, w, h, width, height))
    with np.errstate(invalid="ignore", divide="ignore"):
        x1, y1 = np.clip(x, 0, width), np.clip(y, 0, height)
        x2, y2 = np.clip(x + w, 0, width), np.clip(y + h, 0, height)
        if box_frame is BoxFrame.square:
            side = np.maximum(width, height)
            # expand2square: paste offset (side - W) // 2 on x, (side - H) // 2 on y (integer division)
            off_x, off_y = np.floor((side - width) / 2), np.floor((side - height) / 2)
            norm = ((x1 + off_x) / side, (y1 + off_y) / side, (x2 + off_x) / side, (y2 + off_y) / side)
        else:
            norm = (x1 / width, y1 / height, x2 / width, y2 / height)
        return np.stack([hundredths(np.nan_to_num(np.clip(v, 0.0, 1.0))) for v in norm], axis=1)


def normalize_boxes(frame: pl.DataFrame, box_frame: BoxFrame) -> pl.DataFrame:
    """Columns `x, y, w, h, width, height` -> `box` string, `box_status` (null or a reason), `clipped`."""
    cols = [frame[name].cast(pl.Float64).fill_null(np.nan).to_numpy()
            for name in ("x", "y", "w", "h", "width", "height")]
    problem, clipped = box_problems(*cols)
    status = pl.Series(problem).replace_strict(BOX_PROBLEMS, default=None, return_dtype=pl.Utf8)
    return frame.with_columns(box=format_boxes(box_hundredths(*cols, box_frame)), box_status=status,
                              clipped=pl.Series(clipped))


def clean_text(text: pl.Expr) -> pl.Expr:
    """Whitespace collapsed and stripped, trailing periods dropped (the sentences add their own)."""
    return text.str.replace_all(r"\s+", " ").str.strip_chars(" ").str.strip_chars_end(". ")


def sentence_case(text: pl.Expr) -> pl.Expr:
    """First letter upper-cased, the rest kept; a final period unless the text ends with ! or ?."""
    cased = text.str.slice(0, 1).str.to_uppercase() + text.str.slice(1)
    return pl.when(cased.str.contains(r"[!?]$")).then(cased).otherwise(cased + pl.lit("."))


def grounding_turns(rows: pl.DataFrame, *, seed: int) -> pl.DataFrame:
    """Add `question`, `answer` and `format` (reg|rec) from `text` (cleaned expression), `box` and `format_key`."""
    rec = (mix64(rows["format_key"].to_numpy(), seed, SALT_FORMAT) & np.uint64(1)).astype(bool)
    return rows.with_columns(format=pl.Series(np.where(rec, "rec", "reg"), dtype=pl.Utf8)).with_columns(
        question=pl.when(pl.col("format") == "rec")
        .then(pl.lit(REC_PROMPT) + pl.col("text") + pl.lit("."))
        .otherwise(pl.lit(REG_PROMPT) + pl.col("box") + pl.lit(".")),
        answer=pl.when(pl.col("format") == "rec").then(pl.col("box")).otherwise(sentence_case(pl.col("text"))),
    )
