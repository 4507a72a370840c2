"""Where benchmarks write: one JSON file per run under ``results/`` (the repository's), with the
machine it ran on, so that the tables in README.md and MODEL_CARD.md are rendered from files
(``scripts/render_docs.py``), never pasted by hand."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path

from mobilefer.errors import MobileferError

RESULTS = Path(__file__).resolve().parent.parent / "results"


def machine() -> str:
    """The CPU's model name, whether it has bf16 units, and the core count."""
    name = platform.machine()
    try:
        info = Path("/proc/cpuinfo").read_text()
        name = next(
            ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")
        )
        name += " (AVX-512 bf16)" if "avx512_bf16" in info else " (no bf16)"
    except (OSError, StopIteration):
        pass
    return f"{name}, {os.cpu_count()} cores"


def write(name: str, data: dict, path: Path | None = None) -> Path:
    """Write ``data`` (with the machine added) as ``results/NAME.json``, or ``path``, and say
    where on stderr."""
    out = path or RESULTS / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": name, "machine": machine(), **data}, indent=1) + "\n")
    print(f"written: {out}", file=sys.stderr)
    return out


def run(main: Callable[[], None]) -> None:
    """A benchmark's entry point: a :class:`MobileferError` (a missing weights file or model, a
    bad input) ends it with its one-line message, not a traceback."""
    try:
        main()
    except MobileferError as e:
        sys.exit(f"{sys.argv[0]}: {e}")
