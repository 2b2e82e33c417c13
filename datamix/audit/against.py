"""`--against MIX_DIR`: the released file beside a datamix build, record by record, per class.

Records are matched by content, not position (a build's order is its own): the key is the image path in
source-relative form (classes.IMAGE_PREFIX stripped on both sides: `coco/train2017/000000123.jpg` and the
vqav2 build's `train2017/000000123.jpg` both become `train2017/000000123.jpg`) and the first question with
`<image>` and a trailing format prompt removed, so a build that places prompts differently still matches.
Records with the same key (A-OKVQA's k augmented copies, a `repeat` in a recipe, ShareGPT chats opening
with the same question) are paired one to one: identical conversations first, then the rest in file order.

A matched pair differs when any turn differs once `<image>` is placed as LLaVA's trainer places it (train.py
`preprocess_multimodal`: the token moved to the start of its turn as "<image>\\n"); the first differing turn
of the first few such pairs is shown side by side.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from datamix.audit.classes import CLASSES, IMAGE_PREFIX, class_of_source
from datamix.audit.figures import question_text
from datamix.errors import InputError
from datamix.mixdir import INDEX
from datamix.prompts import FORMAT_PROMPTS
from datamix.schema import IMAGE_TOKEN

EXAMPLES = 3  # differing pairs, and records found on one side only, shown per class
KEY = ["class", "image", "question"]


def load_build(mix_dir: str | Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(records: row, id, class, image; turns: row, pos, role, value) of a mix folder's index.parquet."""
    path = Path(mix_dir) / INDEX
    if not path.is_file():
        raise InputError(f"{mix_dir}: no {INDEX} here; give a folder written by datamix build")
    frame = pl.read_parquet(path, columns=["id", "source", "images", "conversations", "meta"])
    origin = pl.col("meta").str.json_path_match("$.origin")  # the llava converter's classification
    cls = (pl.when(origin.is_in(CLASSES)).then(origin)
           .otherwise(pl.col("source").replace_strict(
               {s: class_of_source(s) for s in frame["source"].unique()}, return_dtype=pl.String)))
    recs = frame.with_row_index("row").select(pl.col("row").cast(pl.Int64), "id", cls.alias("class"),
                                              pl.col("images").list.first().fill_null("").alias("image"))
    turns = (frame.with_row_index("row").select(pl.col("row").cast(pl.Int64), "conversations").explode("conversations")
             .drop_nulls("conversations").with_columns(pos=pl.int_range(pl.len()).over("row").cast(pl.Int64))
             .unnest("conversations").rename({"from": "role"}))
    return recs, turns


def compare_build(released: tuple[pl.DataFrame, pl.DataFrame], build: tuple[pl.DataFrame, pl.DataFrame],
                  name: str, order: list[str] = ()) -> dict:
    """{"build": name, "classes": {class: both, only_released, only_build, differing, examples...}, "total"}."""
    rel, bld = (_keyed(*side) for side in (released, build))
    joined = _pair(rel, bld)
    pairs = joined.filter(pl.col("row").is_not_null() & pl.col("row_build").is_not_null())
    diffs = _differences(pairs, released[1], build[1])
    out: dict[str, dict] = {}
    found = set(joined["class"].unique().to_list())
    for cls in [c for c in order if c in found] + sorted(found - set(order), key=_order):
        j = joined.filter(pl.col("class") == cls)
        only_rel = j.filter(pl.col("row_build").is_null()).sort("row")
        only_bld = j.filter(pl.col("row").is_null()).sort("row_build")
        d = diffs.filter(pl.col("class") == cls)
        out[cls] = {
            "both": j.height - only_rel.height - only_bld.height, "only_released": only_rel.height,
            "only_build": only_bld.height, "differing": d.height,
            "examples_only_released": _examples(only_rel, "id"),
            "examples_only_build": _examples(only_bld, "id_build"),
            "examples_differing": d.head(EXAMPLES).drop("class").to_dicts(),
        }
    total = {k: sum(c[k] for c in out.values()) for k in ("both", "only_released", "only_build", "differing")}
    return {"build": name, "classes": out, "total": total}


def _order(cls: str) -> tuple[int, str]:
    return (CLASSES.index(cls) if cls in CLASSES else len(CLASSES), cls)


def _examples(frame: pl.DataFrame, id_column: str) -> list[dict]:
    return frame.head(EXAMPLES).select(pl.col(id_column).alias("id"), "image", "question").to_dicts()


def _pair(rel: pl.DataFrame, bld: pl.DataFrame) -> pl.DataFrame:
    """Full join of the two sides on KEY, one to one. Same-key records are paired identical conversations
    first (ShareGPT records that open with the same question), then the rest in file order."""
    def numbered(frame: pl.DataFrame, by: list[str]) -> pl.DataFrame:
        return frame.sort("row").with_columns(occurrence=pl.int_range(pl.len()).over(by))

    exact_key = [*KEY, "conversation", "occurrence"]
    exact = numbered(rel, [*KEY, "conversation"]).join(numbered(bld, [*KEY, "conversation"]), on=exact_key,
                                                        how="inner", suffix="_build")
    rest_rel = rel.join(exact.select("row"), on="row", how="anti")
    rest_bld = bld.join(exact.select(pl.col("row_build").alias("row")), on="row", how="anti")
    rest = numbered(rest_rel, KEY).join(numbered(rest_bld, KEY), on=[*KEY, "occurrence"], how="full",
                                        coalesce=True, suffix="_build")
    columns = ["row", "id", *KEY, "row_build", "id_build"]
    return pl.concat([exact.select(columns), rest.select(columns)])


def strip_prompt(text: pl.Expr) -> pl.Expr:
    for prompt in FORMAT_PROMPTS.values():
        text = text.str.strip_suffix(prompt).str.strip_chars_end()
    return text


def _keyed(recs: pl.DataFrame, turns: pl.DataFrame) -> pl.DataFrame:
    """row, id, class + the match key (source-relative image, bare first question) + a conversation hash."""
    first_q = (turns.lazy().filter(pl.col("role") == "human").group_by("row")
               .agg(pl.col("value").sort_by("pos").first())
               .select("row", strip_prompt(question_text(pl.col("value").fill_null(""))).alias("question")))
    conversation = (turns.lazy().select("row", pl.struct("pos", "role", "value").hash(0).alias("h"))
                    .group_by("row").agg(pl.col("h").bitwise_xor().alias("conversation")))
    prefix = pl.col("class").replace_strict(IMAGE_PREFIX, default="", return_dtype=pl.String)
    image = pl.when(pl.col("image").str.starts_with(prefix)).then(
        pl.col("image").str.slice(prefix.str.len_chars())).otherwise(pl.col("image"))
    return (recs.lazy().select("row", "id", "class", image.alias("image"))
            .join(first_q, on="row", how="left").join(conversation, on="row", how="left")
            .with_columns(pl.col("question").fill_null(""), pl.col("conversation").fill_null(0))
            .collect())


def trainer_turn(value: pl.Expr) -> pl.Expr:
    """A turn as LLaVA's trainer sees it: each `<image>` moved to the start as "<image>\\n", the rest stripped."""
    n = value.str.count_matches(IMAGE_TOKEN, literal=True)
    rest = value.str.replace_all(IMAGE_TOKEN, "", literal=True).str.strip_chars()
    return pl.when(n > 0).then(pl.lit(IMAGE_TOKEN + "\n").repeat_by(n).list.join("") + rest).otherwise(value)


def _differences(pairs: pl.DataFrame, rel_turns: pl.DataFrame, bld_turns: pl.DataFrame) -> pl.DataFrame:
    """Per differing pair (in released order): class, ids, image, the first differing turn of each side."""
    p = pairs.select("class", "row", "row_build", "id", "id_build", "image")

    def side(turns: pl.DataFrame, row: str, suffix: str) -> pl.LazyFrame:
        rows = p.lazy().select("row", "row_build")
        return (turns.lazy().rename({"row": row}).join(rows, on=row, how="inner")
                .select("row_build", "pos", pl.col("role").alias(f"role{suffix}"),
                        trainer_turn(pl.col("value")).alias(f"value{suffix}")))

    turns = side(rel_turns, "row", "_released").join(side(bld_turns, "row_build", "_built"), on=["row_build", "pos"],
                                                      how="full", coalesce=True)
    both = turns.join(p.lazy(), on="row_build", how="inner")
    differs = ((pl.col("role_released") != pl.col("role_built")) | (pl.col("value_released") != pl.col("value_built"))
               | (pl.col("value_released").is_null() != pl.col("value_built").is_null())).fill_null(True)
    first = (both.filter(differs).sort("row", "pos").group_by("row", maintain_order=True).first())
    return first.select("class", pl.col("id").alias("released_id"), pl.col("id_build").alias("build_id"), "image",
                        pl.col("pos").alias("turn"), "role_released", "value_released", "role_built",
                        "value_built").collect()
