#!/usr/bin/env bash
# Score a run of rule m1/m2 (docs/experiments.md) on the val folds: export its best.pt (export
# chooses flip TTA, zoom and tau on PublicTest), then the domain benchmark on PublicTest and the
# fold=val rows, at export's tau and at tau 0 and 0.5, beside the shipped files it would replace
# (copied to runs/baseline/ before anything shipped). Nothing here reads PrivateTest or a
# report row.   bash lab/rules/m-score.sh RUN [HEAD]   (HEAD: fer2013, the default, or ferplus)
set -euo pipefail
RUN=$1; HEAD=${2:-fer2013}
export MOBILEFER_SHARED=${MOBILEFER_SHARED:-../shared}  # the project's data (lab/README.md)
D=$MOBILEFER_SHARED/data/fer2013/fer2013.npz
M=.venv/bin/mobilefer
B=".venv/bin/python benchmarks/domains.py --part val --threads 2"
if [ "$HEAD" = ferplus ]; then CK=best_ferplus.pt; OLD=runs/baseline/ferplus_v12.onnx; else CK=best.pt; OLD=runs/baseline/pair_v13_v14.onnx; fi
$M export runs/$RUN/$CK --head $HEAD --data $D --out runs/$RUN/$HEAD.onnx --overwrite > runs/$RUN/export-$HEAD.json
$B --model runs/$RUN/$HEAD.onnx $OLD --out runs/$RUN/dom-$HEAD-card.json > runs/$RUN/dom-$HEAD-card.txt
$B --model runs/$RUN/$HEAD.onnx --tau 0 0.5 --out runs/$RUN/dom-$HEAD-tau.json > runs/$RUN/dom-$HEAD-tau.txt
