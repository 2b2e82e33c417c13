"""`datamix stats` figures against values computed by hand on tests/fixtures/stats/samples.json.

The fixture (5 samples): vqa/1 (2 questions, first prompted, answers "Yes", "no."), vqa/2 and vqa/3
(identical conversations, prompted, "yes"), mc/1 (multiple choice without its prompt, answer "A"),
chat/1 (text-only, a system turn and 2 exchanges). Word counts per turn, `<image>` removed:
  vqa/1: human 12, gpt 1, human 3, gpt 1 (17)   vqa/2, vqa/3: human 12, gpt 1 (13)
  mc/1:  human 6, gpt 1 (7)                      chat/1: system 2, human 2, gpt 7, human 4, gpt 1 (16)
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datamix.mixdir import FORMAT
from datamix.mixdir.index import INDEX_SCHEMA, ROW_SCHEMA
from datamix.sample_numbers import NAMES, with_numbers
from datamix.schema import Sample
from datamix.stats import compute_stats
from datamix.table import encode_meta, write_samples

FIXTURE = Path(__file__).parent / "fixtures" / "stats" / "samples.json"
SHA = {"a.jpg": "h-a", "b.jpg": "h-b", "a_copy.jpg": "h-a"}  # a_copy.jpg: the same bytes as a.jpg


def samples() -> list[dict]:
    return json.loads(FIXTURE.read_text())


@pytest.fixture
def parquet(tmp_path) -> Path:
    path = tmp_path / "norm.parquet"
    write_samples(path, [Sample.from_dict(s) for s in samples()])
    return path


def write_mix(folder: Path, rows: list[dict] | None = None) -> Path:
    """A finished mix folder by hand: index.parquet, manifest.json, rejects.jsonl."""
    folder.mkdir(parents=True)
    rows = rows if rows is not None else samples()
    index = [r | {"key": f"{i:06d}", "shard": "fix-000000.tar", "meta": encode_meta(r["meta"]),
                  "image_sha256": [SHA[p] for p in r["images"]], "image_bytes": [10] * len(r["images"]),
                  "turns": sum(t["from"] == "human" for t in r["conversations"])} for i, r in enumerate(rows)]
    table = with_numbers(pa.Table.from_pylist(index, schema=ROW_SCHEMA))  # as a build stores it
    assert table.schema.equals(INDEX_SCHEMA)
    pq.write_table(table, folder / "index.parquet")
    counts = {"vqa": (5, 4, 3, 3), "mc": (1, 1, 1, 1), "chat": (2, 1, 1, 1)}
    manifest = {"format": FORMAT, "name": folder.name, "seed": 0, "shards": [], "files": {}, "samples": len(rows),
                "recipe": {"sources": [{"name": n} for n in ("vqa", "mc", "chat")]},
                "sources": {n: dict(zip(("available", "requested", "selected", "written"), c)) for n, c in counts.items()}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    rejects = [{"source": "vqa", "stage": "convert", "reason": "no_answer: question has no annotation", "id": "9"},
               {"source": "vqa", "stage": "images", "reason": "missing_image: x.jpg", "id": "vqa/8"},
               {"source": "chat", "stage": "convert", "reason": "no_usable_exchange", "id": "c"}]
    (folder / "rejects.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rejects))
    return folder


def test_counts_turns_images_shares(parquet):
    s = compute_stats(parquet)
    vqa, mc, chat, total = s["sources"]["vqa"], s["sources"]["mc"], s["sources"]["chat"], s["total"]
    assert list(s["sources"]) == ["vqa", "chat", "mc"]  # no recipe order: by size, then name
    assert (s["samples"], vqa["samples"], vqa["share"], mc["share"], chat["share"]) == (5, 3, 0.6, 0.2, 0.2)
    assert vqa["turns"] == 4 and total["turns"] == 7  # human turns
    # vqa turns per sample [2, 1, 1]: mean 4/3, p50 1, p90 1 + 0.8 * (2 - 1) = 1.8 (linear), max 2
    assert vqa["turns_per_sample"] == {"mean": 1.3333, "p50": 1.0, "p90": 1.8, "max": 2}
    assert (vqa["images"], vqa["distinct_images"], chat["images"], chat["text_only"]) == (3, 2, 0, 1)
    assert (chat["text_only_share"], vqa["text_only_share"], total["text_only_share"]) == (1.0, 0.0, 0.2)
    # by path, mc's a_copy.jpg is another image: no overlap
    assert total["distinct_images"] == 3 and s["image_overlap"] == [] and vqa["images_shared"] == 0
    assert "requested" not in vqa  # no manifest: no requested / selected / rejected


def test_text_lengths_and_supervised_share(parquet):
    s = compute_stats(parquet)
    vqa, chat = s["sources"]["vqa"], s["sources"]["chat"]
    assert s["length_unit"] == "words"
    # human turns [12, 3, 12, 12]; conversations [17, 13, 13]: p90 = 13 + 0.8 * 4 = 16.2
    assert vqa["length"]["human"] == {"mean": 9.75, "p50": 12.0, "p90": 12.0, "max": 12}
    assert vqa["length"]["gpt"] == {"mean": 1.0, "p50": 1.0, "p90": 1.0, "max": 1}
    assert vqa["length"]["conversation"] == {"mean": 14.3333, "p50": 13.0, "p90": 16.2, "max": 17}
    assert vqa["length_total"] == {"human": 39, "gpt": 4, "all": 43}
    assert vqa["supervised_share"] == round(4 / 43, 6)
    # chat: the system turn counts in the conversation and in "all", not as human or gpt
    assert chat["length_total"] == {"human": 6, "gpt": 8, "all": 16} and chat["supervised_share"] == 0.5
    assert chat["length"]["gpt"]["mean"] == 4.0 and chat["length"]["conversation"]["max"] == 16
    assert s["total"]["length_total"] == {"human": 51, "gpt": 13, "all": 66}
    assert s["total"]["supervised_share"] == round(13 / 66, 6)


def test_answers_and_yes_no_balance(parquet):
    s = compute_stats(parquet)
    vqa, mc = s["sources"]["vqa"]["answers"], s["sources"]["mc"]["answers"]
    # "Yes", "no.", "yes", "yes" normalise to yes x3, no x1
    assert (vqa["count"], vqa["yes"], vqa["no"], vqa["yes_share"]) == (4, 3, 1, 0.75)
    assert vqa["top"] == [["yes", 3], ["no", 1]] and vqa["length"]["max"] == 1
    assert mc["top"] == [["a", 1]] and mc["yes_share"] is None
    assert s["sources"]["chat"]["answers"] is None  # not a short-answer task
    assert s["total"]["answers"]["top"] == [["yes", 3], ["a", 1], ["no", 1]]  # ties by text
    assert s["total"]["answers"]["yes_share"] == 0.75


def test_format_prompt_coverage(parquet):
    s = compute_stats(parquet)
    vqa, mc, total = (s["sources"]["vqa"]["format_prompts"], s["sources"]["mc"]["format_prompts"],
                      s["total"]["format_prompts"])
    # vqa: first questions 3 of 3 prompted; all questions 3 of 4 (vqa/1's second is bare)
    assert vqa["first_turn"] == {"prompted": 3, "of": 3, "share": 1.0}
    assert vqa["all_turns"] == {"prompted": 3, "of": 4, "share": 0.75}
    assert vqa["policy"] == {"first_turn": 3} and vqa["samples"] == 3
    assert mc["first_turn"]["share"] == 0.0 and mc["policy"] == {"unrecorded": 1}
    assert total["first_turn"]["share"] == 0.75 and total["all_turns"]["share"] == 0.6
    assert s["sources"]["chat"]["format_prompts"] is None


def test_duplicates(parquet):
    s = compute_stats(parquet)
    assert s["sources"]["vqa"]["duplicate_conversations"] == 1  # vqa/3 repeats vqa/2
    assert s["sources"]["chat"]["duplicate_conversations"] == 0
    assert s["duplicates"] == {"identical_conversations": 1, "identical_across_sources": 0}


def test_mix_folder_records_and_image_identity(tmp_path):
    s = compute_stats(write_mix(tmp_path / "fixmix"))
    vqa, total = s["sources"]["vqa"], s["total"]
    assert (s["kind"], s["name"], list(s["sources"])) == ("mix", "fixmix", ["vqa", "mc", "chat"])  # recipe order
    assert (vqa["available"], vqa["requested"], vqa["selected"], vqa["written"]) == (5, 4, 3, 3)
    assert vqa["rejected"] == {"convert": {"no_answer": 1}, "images": {"missing_image": 1}}
    assert total["rejected"] == {"convert": {"no_answer": 1, "no_usable_exchange": 1}, "images": {"missing_image": 1}}
    assert (total["requested"], total["available"]) == (6, 8)
    # content identity: a_copy.jpg has a.jpg's sha256, so vqa and mc share one image
    assert s["image_overlap"] == [{"a": "mc", "b": "vqa", "images": 1}]
    assert (total["distinct_images"], vqa["images_shared"], s["sources"]["mc"]["images_shared"]) == (2, 1, 1)


def test_same_figures_from_parquet_and_mix(parquet, tmp_path):
    a, b = compute_stats(parquet), compute_stats(write_mix(tmp_path / "m"))
    for name in ("vqa", "mc", "chat"):
        for key in ("samples", "length", "answers", "format_prompts", "turns_per_sample"):
            assert a["sources"][name][key] == b["sources"][name][key]


def test_histograms(parquet):
    h = compute_stats(parquet)["histograms"]
    vqa = h["sources"]["vqa"]
    assert h["length_edges"][:6] == [0, 1, 2, 4, 8, 16]
    assert vqa["turns"][:3] == [2, 1, 0]  # two samples with 1 question, one with 2
    assert vqa["human"][2] == 1 and vqa["human"][4] == 3  # bin k = [edges[k], edges[k+1]): 3 in [2, 4), 12 in [8, 16)
    assert sum(vqa["conversation"]) == 3 and vqa["conversation"][4] == 2 and vqa["conversation"][5] == 1


def test_folder_of_parquet_and_empty_inputs(tmp_path):
    folder = tmp_path / "norm"
    rows = samples()
    write_samples(folder / "a.parquet", [Sample.from_dict(r) for r in rows[:3]])
    write_samples(folder / "b.parquet", [Sample.from_dict(r) for r in rows[3:]])
    s = compute_stats(folder)
    assert s["samples"] == 5 and s["sources"]["vqa"]["duplicate_conversations"] == 1
    empty = compute_stats(write_mix(tmp_path / "empty", rows=[]))
    assert empty["samples"] == 0 and empty["sources"]["vqa"]["samples"] == 0


def test_stored_numbers_give_the_figures_of_the_text(parquet, tmp_path):
    """convert's Parquet carries the numbers stats reads; without them (Parquet made elsewhere) stats
    computes them from the text: every figure is the same either way, for a file and for a mix."""
    table = pq.read_table(parquet)
    assert set(NAMES) <= set(table.schema.names)
    bare = tmp_path / "bare.parquet"
    pq.write_table(table.drop_columns(NAMES), bare)
    stored, computed = compute_stats(parquet), compute_stats(bare)
    assert {k: v for k, v in stored.items() if k != "name"} == {k: v for k, v in computed.items() if k != "name"}
    mix = write_mix(tmp_path / "m")
    index = mix / "index.parquet"
    with_text = compute_stats(mix)
    pq.write_table(pq.read_table(index).drop_columns(NAMES), index)
    assert compute_stats(mix) == with_text


def test_stats_reads_no_text_when_the_numbers_are_stored(parquet, monkeypatch):
    """Stored numbers are what is read: the conversation text is never requested from the file."""
    import pyarrow.parquet as pqm

    asked = []
    original = pqm.ParquetFile.iter_batches

    def spy(self, *args, columns=None, **kwargs):
        asked.append(columns)
        return original(self, *args, columns=columns, **kwargs)

    monkeypatch.setattr(pqm.ParquetFile, "iter_batches", spy)
    compute_stats(parquet)
    assert asked and all("conversations" not in c and "meta" not in c for c in asked)
