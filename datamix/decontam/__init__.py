"""Decontamination and dedup: samples that show an evaluation image, or repeat another sample, leave a mix.

- `evalsets`: the evaluation sets, read from their official files (one reader per kind);
- `keys`: image id keys across the COCO 2014/2017, Visual Genome / GQA and OpenImages namings;
- `match`: the tiers (ids, bytes, pixels, pHash) and the dedupe walk;
- `decide`: the one decision over every candidate row, with ledger entries, counts and example pairs;
- `prints`: fingerprints of image files through a process pool, cached; thumbnails for the report;
- `mix`: `datamix decontaminate` on a finished mix; `report`: the report's section;
- `spec`: what a recipe's `exclude:` / `dedupe:` sections hold.

A build applies the decision in `builder/exclude.py`, between converting the sources and selecting from them.
The image fingerprints themselves are `datamix.fingerprints`.
"""
