#!/usr/bin/env bash
# Install mobilefer with its training and dev extras into .venv, then run ruff and the test
# suite (which reads the real weights and data from ../shared; nothing downloads).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch 2.14.1 + torchvision 0.29.1 come from local disk here; PyPI's torchvision cannot
# import beside the torch 2.13.0 CPU file.
.venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1" -e ".[train,serve,ray,report,mesh,dev]"
# The browser test drives Debian's chromium (Playwright's own browser download is not reachable).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is missing and this is not root: the browser test will be skipped" >&2
  fi
fi
# The tests seed their own caches under tmp paths from ../shared (conftest.py): nothing here
# writes into ~/.cache, so a user's first run is the same after the tests as before them.
.venv/bin/ruff check src tests benchmarks scripts lab
.venv/bin/ruff format --check src tests benchmarks scripts lab
.venv/bin/mypy tests/typing/user_script.py  # the typed public API, as a user's script sees it
.venv/bin/python -m pytest -q "$@"
