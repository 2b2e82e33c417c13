"""`datamix stats --tokenizer T --resolution hd`: image tokens and truncation per source, base vs HD, equal to what
the trainer itself counts for the same samples."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
from typer.testing import CliRunner

from datamix.cli import app
from datamix.stats.resolution import BASE_TOKENS, resolution_stats
from datamix.train.hdgrid import HDGeometry, image_size
from datamix.train.template import encode
from datamix.train.tokenizer import conversation_texts, train_tokenizer
from tests.test_train_hd_run import mix  # noqa: F401 - the demo mix with images of several shapes

runner = CliRunner()


@pytest.fixture(scope="module")
def tok_dir(mix, tmp_path_factory):  # noqa: F811
    from datamix.mixdir import iter_samples

    rows = [row for _, row, _ in iter_samples(mix, with_images=False)]
    tok = train_tokenizer(conversation_texts(rows), vocab_size=400)
    out = tmp_path_factory.mktemp("tok")
    tok.save_pretrained(out)
    return out, tok


def _expected(mix, tok, limit):  # noqa: F811
    """The trainer's way: encode each sample with its images' own counts, no limit, and compare with `limit`."""
    from datamix.mixdir import iter_samples

    hd = HDGeometry.of(224, 14)
    per = defaultdict(lambda: {"n": 0, "base_cut": 0, "hd_cut": 0, "hd": []})
    for _, row, images in iter_samples(mix):
        sizes = [image_size(images[s]) for s in row["image_members"]]
        f = per[row["source"]]
        f["n"] += 1
        hd_counts = [hd.image_tokens(*s) for s in sizes]
        for key, counts in (("base_cut", [BASE_TOKENS] * len(sizes)), ("hd_cut", hd_counts)):
            e = encode(tok, row["conversations"], template="vicuna_v1", image_seq_length=counts or 0,
                       image_token_id=-1, max_length=1 << 30)
            f[key] += len(e.input_ids) > limit
        if sizes:
            f["hd"].append(hd.image_tokens(*sizes[0]))
    return per


@pytest.mark.parametrize("limit", [600, 2048])
def test_figures_are_the_trainers(mix, tok_dir, limit):  # noqa: F811
    path, tok = tok_dir
    result = resolution_stats(mix, path, max_length=limit)
    expected = _expected(mix, tok, limit)
    assert set(result["sources"]) == set(expected)
    for source, f in result["sources"].items():
        e = expected[source]
        assert f["samples"] == e["n"]
        assert f["truncated_base"] == pytest.approx(e["base_cut"] / e["n"], abs=1e-6)
        assert f["truncated_hd"] == pytest.approx(e["hd_cut"] / e["n"], abs=1e-6)
        if e["hd"]:
            assert f["image_tokens_base"]["mean"] == BASE_TOKENS
            assert f["image_tokens_hd"]["mean"] == pytest.approx(sum(e["hd"]) / len(e["hd"]), abs=0.05)
            assert f["image_tokens_hd"]["max"] == max(e["hd"])
        else:
            assert f["image_tokens_hd"] is None  # text-only source
    assert result["total"]["samples"] == sum(e["n"] for e in expected.values())
    if limit == 600:  # 576 image tokens + the system prompt exceed 600 for every image sample, HD's single tile not
        assert result["total"]["truncated_base"] > result["total"]["truncated_hd"]


def test_cli_prints_base_and_hd_side_by_side(mix, tok_dir, tmp_path):  # noqa: F811
    path, _ = tok_dir
    out = runner.invoke(app, ["stats", str(mix), "--tokenizer", str(path), "--resolution", "hd",
                              "--model-max-length", "600", "--json", str(tmp_path / "s.json")])
    assert out.exit_code == 0, out.output
    assert "Resolution: image tokens and truncation, base vs HD" in out.output
    assert "truncated HD" in out.output
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["resolution"] == resolution_stats(mix, path, max_length=600)


def test_cli_needs_a_tokenizer(mix):  # noqa: F811
    out = runner.invoke(app, ["stats", str(mix), "--resolution", "hd"])
    assert out.exit_code != 0 and "--tokenizer" in out.output


def test_hd_stats_need_a_mix_folder(tmp_path, tok_dir):
    from datamix.errors import InputError

    (tmp_path / "x.parquet").write_bytes(b"")
    with pytest.raises(InputError, match="mix folder"):
        resolution_stats(tmp_path / "x.parquet", tok_dir[0])
