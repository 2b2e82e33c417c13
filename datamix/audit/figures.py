"""Per-class figures of a released file, as polars aggregations over the record and turn frames.

- turns: human turns (question rounds) per record, mean and median;
- prompt placement: per record, where the response-format prompts (prompts.FORMAT_PROMPTS) sit:
  `none`, `single_turn` (one question, prompted), `first_turn` (several questions, only the first
  prompted: what public copies show for GQA and OCR-VQA), `every_turn`, or `mixed`; a question counts as
  prompted when it ends with the prompt once `<image>` is removed, as `prompts.with_prompt` tests it;
- answer casing: among gpt turns that start (after whitespace) with a cased letter, the share starting
  uppercase ("Yes" vs "yes"); and the share of gpt turns ending with a period ("Red jacket.");
- boxes: every `[a, b, c, d]` of four numbers in any turn (REG questions, REC answers): how the values are
  printed (`round_2dp`: like Python's `round(v, 2)`, 0.8 / 0.61, the released mix's format; `fixed_2dp`:
  exactly two decimals, `[0.61, 0.36, 0.92, 0.83]`; `integer`: pixel coordinates; `more_dp`; `other`:
  a mix such as `[0, 0.5, 1, 0.8]`; `round_2dp_like` counts the first two together), values
  outside [0, 1], and inverted boxes (x2 < x1 or y2 < y1);
- problems LLaVA's trainer would meet: records without conversations, turns without role or text, and a
  count of `<image>` tokens different from the number of images.

Every figure is one expression, evaluated grouped by class and once over the file (the TOTAL row).
"""

from __future__ import annotations

import re

import polars as pl

from datamix.prompts import FORMAT_PROMPTS
from datamix.schema import IMAGE_TOKEN

TOTAL = "total"
PLACEMENTS = ("none", "single_turn", "first_turn", "every_turn", "mixed")
NUMBER = r"-?\d+(?:\.\d+)?"
BOX = rf"\[\s*{NUMBER}\s*,\s*{NUMBER}\s*,\s*{NUMBER}\s*,\s*{NUMBER}\s*\]"
BOX_FORMATS = ("round_2dp", "fixed_2dp", "integer", "more_dp", "other")


def question_text(value: pl.Expr) -> pl.Expr:
    """A human turn without its `<image>` token and surrounding whitespace."""
    return value.str.replace_all(IMAGE_TOKEN, "", literal=True).str.strip_chars()


def prompt_of(value: pl.Expr) -> pl.Expr:
    """The task whose format prompt ends the turn, trailing whitespace and a suffix `<image>` aside (null when
    none does). An end-anchored regex over the raw text: no copy of the text is made (7M turns at 665K)."""
    out = pl.lit(None, pl.String)
    for task, prompt in reversed(FORMAT_PROMPTS.items()):
        ends = value.str.contains(re.escape(prompt) + rf"\s*(?:{IMAGE_TOKEN}\s*)?\z")
        out = pl.when(ends).then(pl.lit(task)).otherwise(out)
    return out


def with_prompts(turns: pl.DataFrame) -> pl.DataFrame:
    """turns + `prompt`: the task whose format prompt ends the human turn (null for none and for gpt turns)."""
    human = pl.col("role") == "human"
    return turns.with_columns(prompt=pl.when(human).then(prompt_of(pl.col("value"))))


def per_record(records: pl.DataFrame, turns: pl.DataFrame) -> pl.DataFrame:
    """records + questions, prompted, first_prompted, placement, image_tokens, null_turns (`turns` with prompt)."""
    human = pl.col("role") == "human"
    agg = turns.lazy().group_by("row").agg(
        human.sum().alias("questions"),
        pl.col("prompt").is_not_null().sum().alias("prompted"),
        pl.col("prompt").filter(human).first().is_not_null().alias("first_prompted"),
        pl.col("value").str.count_matches(IMAGE_TOKEN, literal=True).sum().alias("image_tokens"),
        (pl.col("role").is_null() | pl.col("value").is_null()).sum().alias("null_turns"),
    )
    q, p = pl.col("questions"), pl.col("prompted")
    placement = (pl.when(p == 0).then(pl.lit("none"))
                 .when(q == 1).then(pl.lit("single_turn"))
                 .when((p == 1) & pl.col("first_prompted")).then(pl.lit("first_turn"))
                 .when(p == q).then(pl.lit("every_turn"))
                 .otherwise(pl.lit("mixed")))
    return (records.lazy().join(agg, on="row", how="left")
            .with_columns(pl.col("questions", "prompted", "image_tokens", "null_turns").fill_null(0),
                          pl.col("first_prompted").fill_null(False))
            .with_columns(placement.alias("placement")).sort("row").collect())


def by_class(frame: pl.DataFrame | pl.LazyFrame, aggs: list[pl.Expr]) -> dict[str, dict]:
    """{class: {figure: value}} plus TOTAL (aggregated over all rows, not over the classes)."""
    lf = frame.lazy()
    grouped = lf.group_by("class").agg(aggs)
    total = lf.select(aggs).with_columns(pl.lit(TOTAL).alias("class"))
    rows = pl.concat([grouped, total.select(grouped.collect_schema().names())]).collect()
    out = {}
    for row in rows.iter_rows(named=True):
        cls = row.pop("class")
        out[cls] = {k: round(v, 6) if isinstance(v, float) else v for k, v in row.items()}
    return out


def record_figures(recs: pl.DataFrame) -> dict[str, dict]:
    """records, questions per record, placements, problems."""
    aggs = [pl.len().alias("records"), pl.col("questions").sum().alias("questions"),
            pl.col("questions").mean().alias("questions_mean"),
            pl.col("questions").median().alias("questions_median"),
            *[(pl.col("placement") == p).sum().alias(f"placement.{p}") for p in PLACEMENTS],
            pl.col("no_conversations").sum().alias("problems.no_conversations"),
            (pl.col("null_turns") > 0).sum().alias("problems.null_turns"),
            (pl.col("image_tokens") != pl.col("n_images")).sum().alias("problems.image_token_mismatch"),
            pl.col("n_images").sum().alias("images"), (pl.col("n_images") == 0).sum().alias("text_only")]
    return {cls: _nest(figures) for cls, figures in by_class(recs, aggs).items()}


def prompt_figures(turns: pl.DataFrame) -> dict[str, dict[str, int]]:
    """{class: {task of the prompt: prompted questions}} (only prompts that occur; `turns` with prompt)."""
    prompted = turns.lazy().select("class", "prompt").drop_nulls("prompt")
    aggs = [(pl.col("prompt") == task).sum().alias(task) for task in FORMAT_PROMPTS]
    return {cls: {k: v for k, v in f.items() if v} for cls, f in by_class(prompted, aggs).items()}


def answer_figures(turns: pl.DataFrame) -> dict[str, dict]:
    """{class: answers, uppercase, lowercase, uppercase_share, period_share}."""
    value = pl.col("value").fill_null("")
    upper, lower = value.str.contains(r"^\s*\p{Lu}"), value.str.contains(r"^\s*\p{Ll}")
    gpt = turns.lazy().filter(pl.col("role") == "gpt").select("class", upper.alias("u"), lower.alias("l"),
                                                               value.str.contains(r"\.\s*\z").alias("p"))
    out = by_class(gpt, [pl.len().alias("answers"), pl.col("u").sum().alias("uppercase"),
                         pl.col("l").sum().alias("lowercase"), pl.col("p").mean().alias("period_share")])
    for f in out.values():
        cased = f["uppercase"] + f["lowercase"]
        f["uppercase_share"] = round(f["uppercase"] / cased, 6) if cased else None
    return out


def box_figures(turns: pl.DataFrame) -> dict[str, dict]:
    """{class: boxes, in_human, in_gpt, formats {format: boxes}, outside_unit, inverted} where boxes occur."""
    boxes = (turns.lazy().filter(pl.col("value").str.contains(r"\[\s*-?\d"))  # a cheap pass first
             .select("class", "role", pl.col("value").str.extract_all(BOX).alias("box"))
             .explode("box").drop_nulls("box")
             .with_columns(pl.col("box").str.extract_all(NUMBER).alias("nums")))
    decimals = pl.col("nums").list.eval(
        pl.element().str.extract(r"\.(\d+)$").str.len_chars().fill_null(0))
    values = pl.col("nums").list.eval(pl.element().cast(pl.Float64))
    trailing_zero = pl.col("nums").list.eval(pl.element().str.contains(r"\.\d0$")).list.any()
    lo, hi = pl.col("dec").list.min(), pl.col("dec").list.max()
    fmt = (pl.when(hi == 0).then(pl.lit("integer"))
           .when((lo == 2) & (hi == 2)).then(pl.lit("fixed_2dp"))
           .when((lo >= 1) & (hi <= 2) & ~trailing_zero).then(pl.lit("round_2dp"))
           .when(hi > 2).then(pl.lit("more_dp"))
           .otherwise(pl.lit("other")))
    boxes = boxes.with_columns(dec=decimals, v=values).with_columns(fmt=fmt)
    # [0.61, 0.36, 0.92, 0.83] is both: Python's round(v, 2) prints it so too. Counted as round_2dp as well.
    round_like = (lo >= 1) & (hi <= 2) & ~trailing_zero
    v = pl.col("v")
    aggs = [pl.len().alias("boxes"), (pl.col("role") == "human").sum().alias("in_human"),
            (pl.col("role") == "gpt").sum().alias("in_gpt"),
            *[(pl.col("fmt") == f).sum().alias(f"formats.{f}") for f in BOX_FORMATS],
            round_like.sum().alias("round_2dp_like"),
            ((v.list.min() < 0) | (v.list.max() > 1)).sum().alias("outside_unit"),
            ((v.list.get(2) < v.list.get(0)) | (v.list.get(3) < v.list.get(1))).sum().alias("inverted")]
    out = {}
    for cls, f in by_class(boxes, aggs).items():
        if f["boxes"]:
            f = _nest(f)
            f["round_2dp_like_share"] = round(f["round_2dp_like"] / f["boxes"], 6)
            f["fixed_2dp_share"] = round(f["formats"]["fixed_2dp"] / f["boxes"], 6)
            f["outside_unit_share"] = round(f["outside_unit"] / f["boxes"], 6)
            out[cls] = f
    return out


def _nest(row: dict) -> dict:
    out: dict = {}
    for key, value in row.items():
        head, _, leaf = key.rpartition(".")
        (out.setdefault(head, {}) if head else out)[leaf] = value
    return out
