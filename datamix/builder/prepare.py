"""Step 1 of a build: every recipe source as one normalized Parquet file, converted once and cached.

A converted source is cached under `<out>/.work/convert/<source>/` with a key made of the converter,
its options, the prompt policy, the datamix version and the size and sha256 of every input file, so a
rerun (or a resumed build) reuses it and a changed input is converted again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from datamix import __version__
from datamix.convert import rejects_path, run_conversion
from datamix.converters import ConvertOptions
from datamix.ledger import Ledger
from datamix.paths import inside, remove_tree
from datamix.recipe import Recipe, SourceSpec
from datamix.schema import validate
from datamix.mixdir.shards import sha256_file
from datamix.table import table_to_samples, write_samples


@dataclass
class PreparedSource:
    spec: SourceSpec
    parquet: Path
    inputs: list[dict]  # {path, bytes, sha256}: recorded in the manifest
    conversion: dict = field(default_factory=dict)  # the ledger summary: records in/out, rejected by reason
    rejects: list[dict] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name


def describe_inputs(paths: list[Path], base: Path) -> list[dict]:
    return [{"path": os.path.relpath(p, base).replace(os.sep, "/"), "bytes": p.stat().st_size,
             "sha256": sha256_file(p)} for p in paths]


def convert_options(spec: SourceSpec) -> ConvertOptions:
    return ConvertOptions(format_prompt=spec.format_prompt, **dict(spec.options))


def cache_key(spec: SourceSpec, inputs: list[dict]) -> str:
    payload = {"converter": spec.converter, "options": dict(spec.options), "format_prompt": spec.format_prompt.value,
               "version": __version__, "inputs": [(Path(i["path"]).name, i["bytes"], i["sha256"]) for i in inputs]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def prepare_source(recipe: Recipe, spec: SourceSpec, work: Path) -> PreparedSource:
    """Convert (or reuse) one source; `work` is the build's `.work` folder."""
    base = recipe.path.parent
    if spec.parquet is not None:
        return _validated_parquet(spec, describe_inputs([spec.parquet], base), inside(work, "convert", spec.name))
    inputs = describe_inputs(list(spec.inputs), base)
    folder = inside(work, "convert", spec.name)
    key = cache_key(spec, inputs)
    parquet, summary_path = folder / "converted.parquet", folder / "summary.json"
    if not (summary_path.exists() and json.loads(summary_path.read_text())["key"] == key and parquet.exists()):
        remove_tree(work, "convert", spec.name)
        folder.mkdir(parents=True)
        ledger = run_conversion(spec.converter, spec.inputs, parquet, convert_options(spec))
        summary_path.write_text(json.dumps({"key": key, "ledger": ledger.summary()}, sort_keys=True))
    rejects = [json.loads(line) for line in rejects_path(parquet).read_text(encoding="utf-8").splitlines()]
    summary = json.loads(summary_path.read_text())["ledger"]
    return PreparedSource(spec, parquet, inputs, conversion=summary, rejects=rejects)


def _validated_parquet(spec: SourceSpec, inputs: list[dict], folder: Path) -> PreparedSource:
    """A Parquet file made elsewhere is checked sample by sample, batch by batch; invalid rows are
    filtered into a copy (the common case, all valid, reads the file once and writes nothing)."""
    rejects = [r for batch in _batches(spec.parquet) for r in _invalid(batch)]
    n = pq.read_metadata(spec.parquet).num_rows
    summary = {"source": spec.name, "records_in": n, "records_out": n - len(rejects), "samples_out": n - len(rejects),
               "rejected": len(rejects), "rejected_by_reason": Ledger(spec.name, rejects=rejects).by_reason()}
    if not rejects:
        return PreparedSource(spec, spec.parquet, inputs, conversion=summary)
    folder.mkdir(parents=True, exist_ok=True)
    bad = {r["id"] for r in rejects}
    write_samples(folder / "validated.parquet",
                  (s for batch in _batches(spec.parquet) for s in table_to_samples(batch) if s.id not in bad))
    return PreparedSource(spec, folder / "validated.parquet", inputs, conversion=summary, rejects=rejects)


def _batches(path: Path):
    for batch in pq.ParquetFile(path).iter_batches(batch_size=8192):
        yield pa.Table.from_batches([batch])


def _invalid(table: pa.Table) -> list[dict]:
    return [{"source": s.source, "id": s.id, "stage": "validate", "reason": reason}
            for s in table_to_samples(table) if (reason := validate(s))]


def prepare_in_worker(args: tuple[Recipe, SourceSpec, Path]) -> PreparedSource:
    return prepare_source(*args)


def conversion_budget_problem(source: PreparedSource, budget: float) -> str | None:
    """A reason to fail the build if the conversion rejected more than the source's error budget."""
    records_in, rejected = source.conversion.get("records_in", 0), source.conversion.get("rejected", 0)
    if records_in and rejected / records_in > budget:
        tally = ", ".join(f"{reason} {n}" for reason, n in source.conversion["rejected_by_reason"].items())
        return (f"source {source.name!r}: conversion rejected {rejected} of {records_in} records "
                f"({rejected / records_in:.1%} > budget {budget:.1%}): {tally}")
    return None

