#!/usr/bin/env bash
# `make demo`: demo raw data in the official formats -> converted sources -> a mix built from a recipe
# -> the 25%/50% ladder -> decontamination against an evaluation set -> what the mix contains -> training.
set -euo pipefail
OUT=${1:-demo_out}
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac  # an absolute DEMO_DIR is used as it is
DATAMIX=${DATAMIX:-.venv/bin/datamix}
export DATAMIX_DATA="$OUT/raw"

rm -rf "$OUT"
echo "== 1. demo raw data (official formats, a few deliberately broken records and images)"
$DATAMIX demo-data "$OUT/raw" --seed 0

echo; echo "== 2. convert one source by hand (the ledger names every record left out)"
$DATAMIX convert vqav2 "$OUT/raw/vqav2" --out "$OUT/normalized/vqav2.parquet"

echo; echo "== 3. build recipes/demo.yaml (plan first, then the build)"
$DATAMIX build recipes/demo.yaml --dry-run
$DATAMIX build recipes/demo.yaml --out "$OUT/mix" --workers 2

echo; echo "== 4. the 25% / 50% ladder (exact per source, nested) and a check of every shard"
$DATAMIX subsample "$OUT/mix" --ratios 0.25,0.5 --out "$OUT/ladder"
$DATAMIX verify "$OUT/mix"

echo; echo "== 5. decontaminate against POPE: its COCO val2014 images are train2017 images, two are resized copies"
$DATAMIX decontaminate "$OUT/mix" --against pope:"$OUT/raw/eval/pope/coco_pope_random.json" \
  --eval-image-root "$OUT/raw/eval/val2014" --out "$OUT/clean"

echo; echo "== 6. what the mix contains, its duplicate images (and how the 50% rung compares with it)"
$DATAMIX show "$OUT/mix" --n 2
$DATAMIX stats "$OUT/mix" --report "$OUT/report" --duplicates 4 --workers 2
$DATAMIX stats "$OUT/mix" "$OUT/ladder/demo-mix-r0.5"
echo "report: $OUT/report/index.html"

echo; echo "== 7. train the bundled tiny LLaVA-1.5 on a larger demo mix, then answer held-out questions"
$DATAMIX demo-data "$OUT/train_raw" --seed 0 --n-images 2400
DATAMIX_DATA="$OUT/train_raw" $DATAMIX build recipes/demo.yaml --out "$OUT/train_mix" --workers 2 | tail -1
# Held-out: images of another seed, and only questions whose answer the question string does not give away.
$DATAMIX demo-data "$OUT/heldout_raw" --seed 1 --n-images 600
DATAMIX_DATA="$OUT/heldout_raw" $DATAMIX build recipes/demo-heldout.yaml --out "$OUT/heldout_mix" | tail -1
start=$(date +%s)
# Stage 0: the tiny vision tower learns to see (CLIP loss on the mix's images and their text), then stays frozen.
$DATAMIX pretrain-vision "$OUT/train_mix" --out "$OUT/vision"
$DATAMIX train "$OUT/train_mix" --stage pretrain --vision-init "$OUT/vision" --out "$OUT/run-stage1" --max-steps 100
$DATAMIX train "$OUT/train_mix" --stage finetune --projector-from "$OUT/run-stage1" --out "$OUT/run-stage2" --epochs 4
echo; echo "== 8. does the model read the image? the same held-out questions with the real and with blank images"
$DATAMIX predict "$OUT/run-stage2" "$OUT/heldout_mix" --n 300 | tail -1
$DATAMIX predict "$OUT/run-stage2" "$OUT/heldout_mix" --n 300 --blank-images | tail -1
echo "training and evaluation took $(( ($(date +%s) - start) / 60 )) min $(( ($(date +%s) - start) % 60 )) s"
