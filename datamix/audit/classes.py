"""The source of every released record, and the per-source tables the audit needs.

Classification is the llava converter's: `llava.RULES` is the one list of rules (LLaVA-1.5 paper Tab. 7,
per-prefix counts of LLaVA issue #657, exact counts of #702): the image folder names GQA, OCR-VQA, TextCaps,
VG and text-only ShareGPT; the five COCO sources are told apart by their prompts; first match wins.
`classify` evaluates those same rules over whole columns (polars, one pass per rule) instead of calling
`llava.classify` once per record; tests check that the two agree on every record of the fixtures.

VQAv2 and OK-VQA share both the `coco/` folder and the short-answer prompt, so the rules cannot tell them
apart: they are one class, `vqav2_okvqa`, expected to hold the published VQAv2 + OK-VQA counts together.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from datamix.converters.llava import FALLBACK, RULES

# Class -> the sources of the published split (manifests/llava_v1_5_mix665k.json, recipe names) it holds.
MERGED: dict[str, tuple[str, ...]] = {"vqav2_okvqa": ("vqav2", "okvqa")}
# Class -> the folder its released paths start with, relative to LLaVA's image folder (playground/data):
# the image_root of that source in recipes/llava_v1_5_mix665k.yaml. A build stores paths relative to the
# source's image root (`train2017/000000123.jpg` for vqav2, `000000123.jpg` for llava_instruct), the
# released file relative to playground/data (`coco/train2017/000000123.jpg`): stripping this prefix
# gives both the same source-relative form.
IMAGE_PREFIX: dict[str, str] = {
    "llava_instruct": "coco/train2017/",
    "vqav2_okvqa": "coco/",
    "aokvqa": "coco/",
    "refcoco": "coco/",
    "gqa": "gqa/",
    "ocrvqa": "ocr_vqa/",
    "textcaps": "textvqa/",
    "vg": "vg/",
    "sharegpt": "",
}
TASK: dict[str, str] = {FALLBACK[0]: FALLBACK[1]} | {rule.origin: rule.task for rule in reversed(RULES)}
CLASSES: tuple[str, ...] = tuple(dict.fromkeys(rule.origin for rule in RULES)) + (FALLBACK[0],)
# Display order: the published table's (LLaVA-1.5 paper Tab. 7), then the classes of other LLaVA files.
ORDER: tuple[str, ...] = ("llava_instruct", "sharegpt", "vqav2_okvqa", "gqa", "ocrvqa", "aokvqa", "textcaps",
                          "refcoco", "vg", "lcs558k", "cc3m", FALLBACK[0])


def class_of_source(source: str) -> str:
    """The class a build's source (recipe name, or a llava record's `origin`) is compared with."""
    for merged, parts in MERGED.items():
        if source in parts:
            return merged
    return source


def expected_counts(reference: dict) -> dict[str, int]:
    """Per class, the expected records of a reference manifest ({"sources": {name: {"samples": n}}})."""
    counts = {name: int(v["samples"]) for name, v in reference["sources"].items()}
    out: dict[str, int] = {}
    for name, n in counts.items():
        cls = class_of_source(name)
        out[cls] = out.get(cls, 0) + n
    return out


def _anchored(regex: str) -> str:
    """A `re.match` pattern as a polars (Rust regex) `str.contains` pattern: anchored at the start, and
    Python's end-of-text `\\Z` spelt `\\z` as Rust writes it."""
    return "^(?:" + regex.replace(r"\Z", r"\z") + ")"


def classify(records: pl.DataFrame, turns: pl.DataFrame) -> pl.Series:
    """The class of every record (`records.row` order), by the first rule of `llava.RULES` that matches.

    `records` needs row, image (first path, "" when none) and n_turns; `turns` needs row, role, value.
    """
    n = records.height
    human = turns.filter(pl.col("role") == "human")
    rows = human["row"].to_numpy()
    phrases = {}
    for rule in RULES:
        if rule.phrase is not None and rule.phrase not in phrases:
            hit = human["value"].str.contains(rule.phrase, literal=True).fill_null(False).to_numpy()
            phrases[rule.phrase] = pl.Series(np.bincount(rows[hit], minlength=n) > 0)
    origin = pl.lit(FALLBACK[0])
    for rule in reversed(RULES):  # built inside out, so that the first rule is tested first
        condition = pl.col("image").str.contains(_anchored(rule.image))
        if rule.phrase is not None:
            condition &= pl.lit(phrases[rule.phrase])
        if rule.turns is not None:
            condition &= pl.col("n_turns") == rule.turns
        origin = pl.when(condition).then(pl.lit(rule.origin)).otherwise(origin)
    return records.select(origin.alias("class")).to_series()
