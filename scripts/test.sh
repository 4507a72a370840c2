#!/usr/bin/env bash
# Install mobilefer with its training and dev extras into .venv, seed the weight caches from
# ../shared (nothing downloads), then run ruff and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch 2.14.1 + torchvision 0.29.1 come from local disk here; PyPI's torchvision cannot
# import beside the torch 2.13.0 CPU file.
.venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1" -e ".[train,dev]"
SHARED=${MOBILEFER_SHARED:-../shared}
if [ -f "$SHARED/weights/mobilenet_v2_imagenet.pth" ]; then
  .venv/bin/python -c "import sys; from mobilefer.train.model import seed_hub_cache; seed_hub_cache(sys.argv[1])" \
    "$SHARED/weights/mobilenet_v2_imagenet.pth"
fi
if [ -f "$SHARED/weights/face_detection_yunet_2023mar.onnx" ]; then
  .venv/bin/python -c "import sys; from mobilefer.faces import install_yunet; install_yunet(sys.argv[1])" \
    "$SHARED/weights/face_detection_yunet_2023mar.onnx"
fi
.venv/bin/ruff check src tests benchmarks
.venv/bin/python -m pytest -q "$@"
