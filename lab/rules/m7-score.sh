#!/usr/bin/env bash
# Rule m7's candidates (docs/experiments.md): runs/m7's best.pt and its WiSE-FT average with the
# default it started from (alpha 0.5), each exported (export chooses flip TTA, zoom and tau on
# PublicTest), then both beside that default in one run of the domain benchmark on PublicTest
# and the fold=val rows, at export's tau and at tau 0. Nothing here reads PrivateTest or a
# report row.   bash lab/rules/m7-score.sh   (the default as it was: runs/start_m7_fer2013.onnx)
set -euo pipefail
export MOBILEFER_SHARED=${MOBILEFER_SHARED:-../shared}  # the project's data (lab/README.md)
D=$MOBILEFER_SHARED/data/fer2013/fer2013.npz
M=.venv/bin/mobilefer
START=runs/start_m7_fer2013.onnx
$M export runs/m7/best.pt --data "$D" --out runs/m7/fer2013.onnx --overwrite > runs/m7/export.json 2> runs/m7/export.log
.venv/bin/python lab/rules/m4-wise.py runs/m7/best.pt 0.5 runs/m7w50/best.pt "$START"
$M export runs/m7w50/best.pt --data "$D" --out runs/m7w50/fer2013.onnx --overwrite > runs/m7w50/export.json 2> runs/m7w50/export.log
cd benchmarks
B="../.venv/bin/python domains.py --part val --threads 2"
$B --model ../runs/m7/fer2013.onnx ../runs/m7w50/fer2013.onnx "../$START" --out ../runs/dom-m7-card.json > ../runs/dom-m7-card.txt 2>&1
$B --model ../runs/m7/fer2013.onnx ../runs/m7w50/fer2013.onnx --tau 0 --out ../runs/dom-m7-tau.json > ../runs/dom-m7-tau.txt 2>&1
echo done > ../runs/score_m7.done
