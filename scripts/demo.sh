#!/usr/bin/env bash
# `make demo`: generate the demo raw data in the official formats, convert every source, show what came out.
set -euo pipefail
OUT=${1:-demo_out}
DATAMIX=.venv/bin/datamix
PY=.venv/bin/python

rm -rf "$OUT"
echo "== 1. demo raw data (official formats, a few deliberately broken records) -> $OUT/raw"
$DATAMIX demo-data "$OUT/raw" --seed 0 > "$OUT.summary.json" && mv "$OUT.summary.json" "$OUT/raw/summary.json"
echo "   written: $(find "$OUT/raw" -type f | wc -l) files"

echo "== 2. convert each source to the unified schema -> $OUT/normalized"
$DATAMIX convert vqav2 "$OUT/raw/vqav2" --out "$OUT/normalized/vqav2.parquet"
$DATAMIX convert gqa "$OUT/raw/gqa/train_balanced_questions.json" --out "$OUT/normalized/gqa.parquet"
$DATAMIX convert sharegpt "$OUT/raw/sharegpt" --out "$OUT/normalized/sharegpt.parquet"
$DATAMIX convert llava "$OUT/raw/llava" --out "$OUT/normalized/llava.parquet" --format-prompt none

echo "== 3. what came out"
$PY scripts/summarize.py "$OUT/normalized"
