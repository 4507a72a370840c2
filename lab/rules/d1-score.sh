#!/usr/bin/env bash
# Score runs/d1 under lab/rules/d1-distill.md: export the candidates, then the domain benchmark
# on the choose parts (PublicTest, Taiwanese choose, SFEW choose). Nothing here reads PrivateTest.
set -euo pipefail
export MOBILEFER_YUNET=../shared/weights/face_detection_yunet_2023mar.onnx
export MOBILEFER_SHARED=${MOBILEFER_SHARED:-../shared}  # the project's data (lab/README.md)
D=$MOBILEFER_SHARED/data/fer2013/fer2013.npz
M=.venv/bin/mobilefer
$M export runs/d1/best.pt --data $D --out runs/d1/best.onnx > runs/d1/export-best.json
$M export runs/d1/last.pt --data $D --out runs/d1/last.onnx > runs/d1/export-last.json
$M export runs/d1/best_ferplus.pt --head ferplus --data $D --out runs/d1/ferplus_best.onnx > runs/d1/export-fpbest.json
$M export runs/d1/last.pt --head ferplus --data $D --out runs/d1/ferplus_last.onnx > runs/d1/export-fplast.json
B=".venv/bin/python benchmarks/domains.py --threads 2"
$B --model runs/d1/best.onnx runs/d1/last.onnx runs/teacher/pair_v13_v14.onnx --margin 0 -0.1 -0.2 --out runs/d1/dom-fer-card.json > runs/d1/dom-fer-card.txt
$B --model runs/d1/best.onnx runs/d1/last.onnx runs/teacher/pair_v13_v14.onnx --margin 0 -0.1 -0.2 --tau 0.5 --out runs/d1/dom-fer-tau05.json > runs/d1/dom-fer-tau05.txt
$B --model runs/d1/ferplus_best.onnx runs/d1/ferplus_last.onnx runs/teacher/ferplus_v12.onnx --margin 0 -0.1 -0.2 --out runs/d1/dom-fp.json > runs/d1/dom-fp.txt
$B --model runs/teacher/pair_v13_v14.onnx runs/d1/best.onnx --detector haar --out runs/d1/dom-haar.json > runs/d1/dom-haar.txt
