"""The files a newcomer reads: short, every link and path real, no lab notes, and every figure
the one that results/ holds (scripts/render_docs.py --check)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
USER_FACING = ["README.md", "CHANGELOG.md", "src/mobilefer/MODEL_CARD.md", "NOTICE"]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
PATH = re.compile(r"`((?:src|tests|benchmarks|scripts|tools|docs)/[\w./-]+)`")


def test_the_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


@pytest.mark.parametrize("name", USER_FACING + ["benchmarks/README.md", "docs/experiments.md"])
def test_links_and_named_paths_exist(name):
    path = ROOT / name
    text = path.read_text()
    for target in LINK.findall(text):
        if "://" not in target:
            assert (path.parent / target).exists(), f"{name} links to {target}"
    for target in PATH.findall(text):
        assert (ROOT / target).exists(), f"{name} names {target}"


@pytest.mark.parametrize("name", USER_FACING)
def test_user_facing_files_hold_no_lab_notes(name):
    text = (ROOT / name).read_text()
    for lab in ("../shared", "runs/v", "issue #", "borrowed", "lent GPU", "DESIGN.md"):
        assert lab not in text, f"{name} mentions {lab!r}"


def test_the_figures_are_those_of_the_results_files():
    p = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "render_docs.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr


def test_the_model_card_ships_in_the_package():
    from importlib import resources

    assert (resources.files("mobilefer") / "MODEL_CARD.md").is_file()


#: Benchmark files that are helpers, not benchmarks.
HELPERS = {"fer_peer.py", "mediapipe_peer.py", "results.py", "synthetic.py"}


def test_every_benchmark_writes_its_results_and_is_listed():
    """Each script in benchmarks/ writes its figures with results.write (so tables are
    rendered from files) and has a row in benchmarks/README.md."""
    import ast

    readme = (ROOT / "benchmarks" / "README.md").read_text()
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        assert f"`{path.name}`" in readme, f"{path.name} is not in benchmarks/README.md"
        if path.name in HELPERS:
            continue
        calls = [
            n.func.id
            for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
        ]
        assert "write" in calls, f"{path.name} writes no results file"
