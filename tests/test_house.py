"""The house (#43): what a Python user and a newcomer rely on, checked."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import pytest

import mobilefer

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "mobilefer"


def test_analyze_uses_the_detector_it_is_given_each_call(astronaut):
    (haar,) = mobilefer.analyze(astronaut, "haar")
    (auto,) = mobilefer.analyze(astronaut)
    assert haar.detector == "haar" and auto.detector == "yunet"
    assert mobilefer.analyze(astronaut, "haar")[0].detector == "haar"


def test_the_public_api_exports_what_front_ends_take():
    for name in ("Options", "Calibration", "Recognizer", "compare", "summarize"):
        assert name in mobilefer.__all__ and getattr(mobilefer, name) is not None
    assert (SRC / "py.typed").is_file()


def test_no_module_is_named_like_a_dependency():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = meta["dependencies"] + [d for ds in meta["optional-dependencies"].values() for d in ds]
    names = {re.split(r"[\[<>=!;, ]", d, maxsplit=1)[0].lower().replace("-", "_") for d in wanted}
    names |= {"cv2", "pil", "onnxruntime", "torch", "ray", "plotly", "starlette", "uvicorn"}
    modules = {p.stem.lower() for p in SRC.rglob("*.py")} | {p.name for p in SRC.rglob("*/")}
    assert not modules & names, modules & names


def test_the_lab_lives_outside_the_package():
    assert not (ROOT / "docs" / "rules").exists() and (ROOT / "lab" / "README.md").is_file()
    for path in SRC.rglob("*.py"):
        assert "../shared" not in path.read_text(), path


def test_a_release_a_python_user_trusts():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert mobilefer.__version__ == "0.3.0"
    assert f"## {mobilefer.__version__} " in (ROOT / "CHANGELOG.md").read_text()
    assert any(c.startswith("Programming Language :: Python :: 3") for c in meta["classifiers"])
    assert "Typing :: Typed" in meta["classifiers"] and meta["keywords"]


def test_the_http_api_is_documented_route_by_route():
    pytest.importorskip("starlette")
    from mobilefer.serve import create_app

    doc = (ROOT / "docs" / "http.md").read_text()
    app = create_app(mobilefer.Recognizer(detector="haar"))
    for route in app.routes:
        assert f"{route.path}" in doc, route.path
    assert "raw request body" in doc


def test_the_recipe_help_lists_every_recipe(capsys):
    from mobilefer.train.recipes import RECIPES

    from conftest import run

    _, out, _ = run(capsys, "train", "--help")
    flat = " ".join(out.split())
    for name in RECIPES:
        assert name in flat, name


def test_a_typed_user_script_checks_with_mypy():
    mypy = pytest.importorskip("mypy.api")
    out, err, code = mypy.run([str(ROOT / "tests" / "typing" / "user_script.py")])
    assert code == 0, out + err


def test_the_old_import_paths_still_work_for_a_release():
    for old, name in (
        ("mobilefer.events", "read_events"),
        ("mobilefer.summary", "summarize"),
        ("mobilefer.report", "Collector"),
        ("mobilefer.study_view", "clock"),
    ):
        code = f"import warnings; warnings.simplefilter('error'); import {old}"
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert "DeprecationWarning" in r.stderr and "moved to mobilefer.study" in r.stderr, old
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = __import__(old, fromlist=[name])
        assert getattr(module, name) is not None
