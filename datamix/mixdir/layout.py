"""The files of a mix folder, by name: what a writer makes and what a reader or `verify` expects.

    <name>-000000.tar ...  WebDataset shards (the manifest lists them; nothing globs for them)
    index.parquet          one row per sample, in mix order: the unified schema plus where it lives
    rejects.jsonl          every sample not in the mix, with its stage and reason
    stats.json             the figures `datamix stats` prints, plus the counts only the writer knows
    README.md              the dataset card: Hugging Face `datasets` opens the folder by it
    decontamination.json   only where samples were removed by exclude / dedupe: counts and example pairs
    manifest.json          written last: every other file's sha256, sealed with its own
"""

from __future__ import annotations

MANIFEST = "manifest.json"
INDEX = "index.parquet"
STATS = "stats.json"
REJECTS = "rejects.jsonl"
CARD = "README.md"
DECONTAMINATION = "decontamination.json"

# Hashed in the manifest (`files`), in the order they are written; the shards are listed on their own.
RECORDED_FILES = (INDEX, REJECTS, STATS, CARD)
OPTIONAL_FILES = (DECONTAMINATION,)  # hashed in `files` too when written
WORK = ".work"  # a build's cache (converted sources, buckets, journal); never part of the mix
