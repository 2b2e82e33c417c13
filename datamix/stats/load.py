"""Resolve a `datamix stats` TARGET into one lazy frame plus whatever records describe how it was made.

A TARGET is a built mix folder (index.parquet + manifest.json + rejects.jsonl), a normalized Parquet file
(`datamix convert` output), or a folder of them. Every kind becomes the same columns, so one code path
computes the figures: id, source, task, conversations, policy (from meta) and `img`, the image identity
(the content sha256 in a mix, where identical bytes under two paths are one image; else the path).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from datamix.errors import InputError
from datamix.jsonio import load_json_file
from datamix.ledger import reason_code
from datamix.mixdir import INDEX, MANIFEST, REJECTS, load_manifest

RECORD_KEYS = ("available", "requested", "selected", "written")


@dataclass
class Target:
    """What stats are computed from: `frame` is lazy; `records` holds per-source counts from a manifest."""

    path: Path
    kind: str  # "mix" | "parquet"
    name: str
    frame: pl.LazyFrame
    order: list[str] = field(default_factory=list)  # recipe order of the sources, when known
    records: dict[str, dict] | None = None  # per source: available, requested, selected, written, rejected
    files: list[Path] = field(default_factory=list)  # the Parquet files the figures are scanned from
    image_column: str = "images"  # image identity: image_sha256 (a mix's content hashes) or the paths


def is_mix(path: Path) -> bool:
    return path.is_dir() and ((path / MANIFEST).is_file() or (path / INDEX).is_file())


def load_target(path: str | Path) -> Target:
    """A mix folder, a normalized Parquet file or a folder of them; anything else is a clean InputError."""
    path = Path(path)
    if is_mix(path):
        return _load_mix(path)
    if path.is_file() and path.suffix == ".parquet":
        return _load_parquet(path, [path])
    if path.is_dir():
        files = sorted(path.glob("*.parquet"))
        if not files:
            raise InputError(f"{path}: no index.parquet, manifest.json or *.parquet here; "
                             "give a mix folder, a normalized Parquet file or a folder of them")
        return _load_parquet(path, files)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    raise InputError(f"{path}: not a mix folder or a .parquet file")


def _load_mix(path: Path) -> Target:
    manifest = load_manifest(path)
    lf = pl.scan_parquet(path / INDEX)
    order = list(manifest.get("sources", {}))
    recipe = manifest.get("recipe") or {}
    if recipe.get("sources"):  # recipe order reads better than the manifest's sorted keys
        order = [s["name"] for s in recipe["sources"] if s["name"] in manifest.get("sources", {})]
    records = mix_records(manifest.get("sources", {}), path / REJECTS)
    return Target(path, "mix", manifest["name"], unified(lf, image_column="image_sha256"), order, records,
                  [path / INDEX], "image_sha256")


def _load_parquet(path: Path, files: list[Path]) -> Target:
    try:
        lf = pl.scan_parquet(files)
        lf.collect_schema()
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input, said in one line
        raise InputError(f"{path}: not readable as Parquet ({exc})") from None
    names = set(lf.collect_schema().names())
    missing = {"id", "source", "task", "images", "conversations"} - names
    if missing:
        raise InputError(f"{path}: not datamix Parquet (missing {', '.join(sorted(missing))}); "
                         "run datamix convert first")
    image_column = "image_sha256" if "image_sha256" in names else "images"
    return Target(path, "parquet", path.stem if path.is_file() else path.name, unified(lf, image_column),
                  files=files, image_column=image_column)


def unified(lf: pl.LazyFrame, image_column: str) -> pl.LazyFrame:
    """The columns every figure is computed from, whatever the input kind."""
    names = lf.collect_schema().names()
    policy = (pl.col("meta").str.json_path_match("$.format_prompt_policy") if "meta" in names
              else pl.lit(None, pl.String))
    return lf.select("id", "source", "task", "conversations", policy.alias("policy"),
                     pl.col(image_column).alias("img"))


def mix_records(sources: dict[str, dict], rejects: Path | None) -> dict[str, dict]:
    """Per source: the manifest's counts, plus rejections by stage and reason from rejects.jsonl."""
    tallies = tally_rejects(rejects)
    return {name: {k: counts[k] for k in RECORD_KEYS if k in counts} | {"rejected": tallies.get(name, {})}
            for name, counts in sources.items()}


def tally_rejects(path: Path | None) -> dict[str, dict[str, dict[str, int]]]:
    """{source: {stage: {reason code: n}}}, sorted by source, stage and code."""
    if path is None or not path.is_file() or path.stat().st_size == 0:
        return {}
    rows = pl.read_ndjson(path, schema={"source": pl.String, "stage": pl.String, "reason": pl.String})
    counts: dict[tuple[str, str, str], int] = {}
    for source, stage, reason in rows.iter_rows():
        key = (source, stage or "convert", reason_code(reason))
        counts[key] = counts.get(key, 0) + 1
    out: dict[str, dict[str, dict[str, int]]] = {}
    for (source, stage, reason), n in sorted(counts.items()):
        out.setdefault(source, {}).setdefault(stage, {})[reason] = n
    return out


def load_reference(path: str | Path) -> dict:
    """A reference manifest (manifests/*.json): {"name", "sources": {name: {"samples": n}}}."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such reference file (see manifests/)")
    data = load_json_file(path, "")
    if not isinstance(data, dict) or not isinstance(data.get("sources"), dict):
        raise InputError(f"{path}: not a reference manifest (expected {{'name', 'sources': {{name: "
                         "{'samples': n}}}}})")
    if data.get("format", "").startswith("datamix-manifest"):  # a build's own manifest.json works too
        data = {"name": data["name"], "sources": {k: {"samples": v["written"]} for k, v in data["sources"].items()}}
    return data
