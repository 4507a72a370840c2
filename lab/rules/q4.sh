#!/usr/bin/env bash
# Rules q4 and q5 (docs/experiments.md, issue #41): the int8 candidates of one shipped float
# file, each scored beside it (PublicTest, the val folds pooled, every class's recall) with the
# rule's verdict.   bash lab/rules/q4.sh fer2013|ferplus [q5]   (writes runs/q4-NAME/)
# q4: candidates a-e; q5: c made again with the softmax float too (c2), then its last bias
# corrected (c3).
set -euo pipefail
NAME=$1
STAGE=${2:-q4}
export MOBILEFER_SHARED=${MOBILEFER_SHARED:-../shared}  # the project's data (lab/README.md)
D=$MOBILEFER_SHARED/data/fer2013/fer2013.npz
SRC=src/mobilefer/models/mobilefer_$NAME.onnx
OUT=runs/q4-$NAME
mkdir -p "$OUT"
q() {  # CANDIDATE OPTIONS...   (a candidate already made is kept)
  local c=$1; shift
  [ -s "$OUT/$c.json" ] && return 0
  .venv/bin/mobilefer quantize "$SRC" --data "$D" --out "$OUT/$c.onnx" --overwrite "$@" \
    > "$OUT/$c.json" 2> "$OUT/$c.txt"
}
MA="--option CalibMovingAverage=true"
# d and e were killed for memory at 24 GB: ONNX Runtime's histogram calibrators (percentile)
# keep every batch's activations of all 1,630 faces and mirrors (CalibMaxIntermediateOutputs is
# read by minmax only)
PC="--calibration percentile --option CalibPercentile=99.99 --option CalibMaxIntermediateOutputs=4"
if [ "$STAGE" = q5 ]; then
  q c2 $MA --folds --float-ends
  q c3 $MA --folds --float-ends --bias-correct
  echo done > "$OUT/done-q5"
  exit 0
fi
q a $MA
q b $MA --folds
q c $MA --folds --float-ends
q d $PC --folds
q e $PC --folds --float-ends
echo done > "$OUT/done"
