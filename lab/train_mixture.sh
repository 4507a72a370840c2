#!/usr/bin/env bash
# The runs of rules m1, m2 and m3 (docs/experiments.md), one after the other, each resumed where a
# stopped one left off (runs/NAME/last.pt). Run from anywhere; writes runs/ in the checkout.
cd "$(dirname "$0")/.."
mkdir -p runs
export MOBILEFER_SHARED=${MOBILEFER_SHARED:-../shared}  # the project's data (lab/README.md)
D=$MOBILEFER_SHARED/data/fer2013/fer2013.npz
M2="--seed 32 --set freeze_blocks=0 --set fer2013_weight=0.5 --set source.taiwanese.weight=6 --set source.sfew.weight=3"
M3="--seed 33 --set teacher=runs/baseline/pair_v13_v14.onnx --set distill_weight=0.5"
train() {  # NAME RECIPE [OPTIONS...]
  local name=$1 recipe=$2; shift 2
  if [ -f "runs/$name/last.pt" ]; then
    .venv/bin/mobilefer train --data $D --out "runs/$name" --resume >> "runs/$name.log" 2>&1
  else
    .venv/bin/mobilefer train --recipe "$recipe" --data $D --out "runs/$name" "$@" > "runs/$name.log" 2>&1
  fi
}
# wait for a training process of an earlier start of this script
while pgrep -f "mobilefer train .*--out runs/" > /dev/null; do sleep 20; done
train m1 mixture
# train m2 mixture $M2   # stopped in its first epoch, for time (docs/experiments.md, rule m3)
train m3 mixture $M3
train f1 mixture_ferplus --epochs 4
