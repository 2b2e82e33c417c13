"""The unified schema: validate's invariants and lossless Parquet round trips (pyarrow, polars, datasets)."""

from __future__ import annotations

import json

import polars as pl
import pytest

from datamix.schema import Sample, validate
from datamix.table import STORED_SCHEMA, read_samples, write_samples


def sample(**overrides) -> Sample:
    fields = dict(id="llava/1", source="llava", task="conversation", images=["coco/train2017/000000000001.jpg"],
                  conversations=[{"from": "human", "value": "<image>\nWhat is this?"},
                                 {"from": "gpt", "value": "A cat."}],
                  meta={"original_id": 1, "nested": {"a": [1, 2]}, "text": "héllo ✓"})
    fields.update(overrides)
    return Sample(**fields)


def turns(*pairs):
    return [{"from": r, "value": v} for r, v in pairs]


def test_a_well_formed_sample_is_valid():
    assert validate(sample()) is None
    assert validate(sample(conversations=turns(("system", "Be brief."), ("human", "<image>\nHi"), ("gpt", "Hello")))) is None


@pytest.mark.parametrize("overrides, reason", [
    ({"conversations": []}, "empty_conversation"),
    ({"conversations": turns(("gpt", "<image>\nhi"), ("human", "x"))}, "bad_role_order"),
    ({"conversations": turns(("human", "<image>\nhi"), ("human", "x"))}, "bad_role_order"),
    ({"conversations": turns(("human", "<image>\nhi"), ("gpt", "x"), ("human", "more?"))}, "ends_with_human"),
    ({"conversations": turns(("human", "<image>\nhi"), ("gpt", "   "))}, "empty_turn"),
    ({"conversations": turns(("human", "hi"), ("gpt", "x"))}, "image_token_mismatch"),
    ({"images": []}, "image_token_mismatch"),
    ({"images": ["/abs/path.jpg"]}, "bad_image_path"),
    ({"images": ["../../etc/passwd"]}, "bad_image_path"),
    ({"images": ["coco/../../x.jpg"]}, "bad_image_path"),
    ({"task": "chitchat"}, "unknown_task"),
    ({"id": ""}, "missing_id"),
])
def test_each_invariant_has_its_reason(overrides, reason):
    got = validate(sample(**overrides))
    assert got is not None and got.split(":")[0] == reason


def test_parquet_round_trip_is_lossless_and_typed(tmp_path):
    rows = [sample(), sample(id="sharegpt/a_0", source="sharegpt", task="text", images=[],
                             conversations=turns(("human", "Hi"), ("gpt", "Hey")), meta={})]
    path = tmp_path / "s.parquet"
    assert write_samples(path, rows) == 2
    assert [s.to_dict() for s in read_samples(path)] == [s.to_dict() for s in rows]
    frame = pl.read_parquet(path)
    assert frame.schema["conversations"] == pl.List(pl.Struct({"from": pl.String, "value": pl.String}))
    assert json.loads(frame["meta"][0])["nested"] == {"a": [1, 2]}
    import pyarrow.parquet as pq

    assert pq.read_schema(path).remove_metadata() == STORED_SCHEMA  # the unified schema + the stats numbers


def test_hugging_face_datasets_reads_the_parquet(tmp_path):
    from datasets import Dataset

    path = tmp_path / "s.parquet"
    write_samples(path, [sample()])
    ds = Dataset.from_parquet(str(path), cache_dir=str(tmp_path / "cache"))
    assert ds[0]["conversations"] == [{"from": "human", "value": "<image>\nWhat is this?"},
                                      {"from": "gpt", "value": "A cat."}]
    assert ds[0]["images"] == ["coco/train2017/000000000001.jpg"]


def test_same_samples_give_byte_identical_files(tmp_path):
    write_samples(tmp_path / "a.parquet", [sample()])
    write_samples(tmp_path / "b.parquet", [sample()])
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
