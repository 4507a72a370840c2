#!/usr/bin/env bash
# Rule q5 (docs/experiments.md, issue #41): q4's float-head candidate made again with the
# softmax float too (c2), then (c3) with its last bias corrected; scored as q4 scores them.   bash lab/rules/q5.sh fer2013|ferplus
set -euo pipefail
NAME=$1
export MOBILEFER_SHARED=${MOBILEFER_SHARED:-../shared}  # the project's data (lab/README.md)
D=$MOBILEFER_SHARED/data/fer2013/fer2013.npz
SRC=src/mobilefer/models/mobilefer_$NAME.onnx
OUT=runs/q4-$NAME
q() {  # CANDIDATE OPTIONS...   (a candidate already made is kept)
  local c=$1; shift
  [ -s "$OUT/$c.json" ] && return 0
  .venv/bin/mobilefer quantize "$SRC" --data "$D" --out "$OUT/$c.onnx" --overwrite "$@" \
    > "$OUT/$c.json" 2> "$OUT/$c.txt"
}
q c2 --option CalibMovingAverage=true --folds --float-ends
# e2 (percentile) is not made: ONNX Runtime's histogram calibrators keep every batch's
# activations (CalibMaxIntermediateOutputs is read by minmax only); q4's d and e were killed for
# memory at 24 GB with these 1,630 faces and their mirrors
# if c2 fails: its head's last bias corrected by the mean float-int8 logit difference
q c3 --option CalibMovingAverage=true --folds --float-ends --bias-correct
echo done > "$OUT/done-q5"
