"""The demo's POPE file against the demo mix: what `make demo` shows, tier by tier, checked against the
ground truth `datamix demo-data` writes (which images share a COCO id, which are resized copies)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from datamix.cli import app
from tests.small_mix import build_demo_mix



@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("demo")
    mix = build_demo_mix(root)
    return root, mix, json.loads((root / "raw" / "README.demo.json").read_text())["evaluation"]


def decontaminate(root: Path, mix: Path, tiers: str) -> Path:
    out = root / f"clean-{tiers.replace(',', '-')}"
    result = CliRunner().invoke(app, ["decontaminate", str(mix), "--against",
                                      f"pope:{root / 'raw/eval/pope/coco_pope_random.json'}",
                                      "--eval-image-root", str(root / "raw/eval/val2014"), "--tiers", tiers,
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def samples_showing(mix: Path, paths: list[str]) -> set[str]:
    """Ids of the mix's samples that show one of these files (paths as the demo data names them)."""
    index = pl.read_parquet(mix / "index.parquet", columns=["id", "images"]).explode("images")
    names = {p.removeprefix("coco/") for p in paths} | {Path(p).name for p in paths}
    return set(index.filter(pl.col("images").is_in(list(names)))["id"])


def removed(clean: Path) -> dict[str, dict]:
    entries = [json.loads(line) for line in (clean / "rejects.jsonl").read_text().splitlines()]
    return {e["id"]: e for e in entries if e.get("stage") == "decontaminate"}


def test_ids_tier_removes_exactly_the_samples_of_the_shared_coco_ids(demo):
    root, mix, truth = demo
    expected = samples_showing(mix, truth["same_coco_id_as_training"])
    assert expected  # the demo puts these images into VQAv2 and LLaVA-Instruct
    for tiers in ("ids", "ids,bytes,pixels"):  # resized copies have other bytes and pixels: not caught
        gone = removed(decontaminate(root, mix, tiers))
        assert set(gone) == expected
        assert {e["tier"] for e in gone.values()} == {"ids"}
        assert all(e["eval_set"] == "coco_pope_random" and e["eval_item"].startswith("COCO_val2014_") for e in gone.values())


def test_phash_tier_also_removes_the_resized_copies(demo):
    root, mix, truth = demo
    clean = decontaminate(root, mix, "ids,bytes,pixels,phash")
    gone = removed(clean)
    copies = samples_showing(mix, truth["resized_copy_of_training"])
    assert copies and copies <= {i for i, e in gone.items() if e["tier"] == "phash"}
    assert samples_showing(mix, truth["same_coco_id_as_training"]) <= set(gone)
    manifest = json.loads((clean / "manifest.json").read_text())
    kept = pl.read_parquet(clean / "index.parquet", columns=["id"])["id"].to_list()
    assert manifest["samples"] == len(kept) == pl.read_parquet(mix / "index.parquet").height - len(gone)
    assert not set(kept) & set(gone)
