#!/usr/bin/env bash
# Rule m1's runs, one after the other (docs/experiments.md); --resume picks up a stopped run.
cd "$(dirname "$0")/.."
mkdir -p runs
D=../shared/data/fer2013/fer2013.npz
for r in "mixture m1" "mixture_ferplus f1"; do
  set -- $r
  if [ -f runs/$2/last.pt ]; then R=--resume; else R=; fi
  .venv/bin/mobilefer train --recipe $1 --data $D --out runs/$2 $R > runs/$2.log 2>&1
done
