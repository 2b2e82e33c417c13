"""`datamix stats`: what a mix really contains, per source and in total, computed from the columnar data.

- `compute_stats(target, tokenizer=None)`: every figure of a mix folder, a normalized Parquet file or a
  folder of them, as one JSON-ready dict (`datamix stats --json`).
- `stats_of_files(files, image_column, name=, kind=, order=, records=)`: the same dict from Parquet files
  directly; a build calls it on its index.parquet before manifest.json exists, with `records` from
  `mix_records(per-source counts, rejects.jsonl)`, so its stats.json holds the same figures.
- `compare.compare(a, b, ids_a, ids_b)`: two mixes side by side; `compare.reference_stats(manifest)`.
"""

from __future__ import annotations

from datamix.stats.compute import FORMAT, compute_stats, stats_of_files
from datamix.stats.load import Target, load_target, mix_records

__all__ = ["FORMAT", "Target", "compute_stats", "load_target", "mix_records", "stats_of_files"]
