"""The records of a fixed folder and video, against the ones committed in ``tests/data/golden``.

A refactor must not change behaviour: the shipped model's records (JSON Lines and CSV, haar and,
where ../shared holds it, yunet) must be the bytes they were. On the machine that wrote them
they are; another CPU's ONNX Runtime kernels may differ in a probability's last digits, so where
the bytes differ every field must still be equal and every number within 1e-5. A third run
sets the options (flip TTA off, a negative margin, detection every 3 frames, no smoothing, the
FER+ model).

To write them anew (only for a change that is meant to change results)::

    MOBILEFER_WRITE_GOLDEN=1 pytest tests/test_golden.py
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import detectors_available, run

GOLDEN = Path(__file__).parent / "data" / "golden"
ASTRONAUT = Path(__file__).parent / "data" / "astronaut.jpg"
WRITE = os.environ.get("MOBILEFER_WRITE_GOLDEN") == "1"
TOLERANCE = 1e-5


def build_inputs(folder: Path) -> list[str]:
    """The fixed inputs, written under ``folder`` from the committed astronaut photo and clip:
    a photo, its mirror image, a small gray copy, a two-face collage, a blank image, a text
    file, and the clip. Returns the relative sources to pass to ``predict``."""
    import cv2

    photos = folder / "photos"
    (photos / "sub").mkdir(parents=True)
    image = cv2.imread(str(ASTRONAUT))
    shutil.copy(ASTRONAUT, photos / "astronaut.jpg")
    cv2.imwrite(str(photos / "mirror.png"), image[:, ::-1])
    gray = cv2.cvtColor(
        cv2.resize(image, (256, 256), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY
    )
    cv2.imwrite(str(photos / "sub" / "small gray.png"), gray)
    face = cv2.resize(image[0:300, 100:350], (125, 150), interpolation=cv2.INTER_AREA)
    collage = np.full((300, 600, 3), 128, np.uint8)
    collage[75:225, 60:185] = face
    collage[75:225, 400:525] = face[:, ::-1]
    cv2.imwrite(str(photos / "sub" / "two.png"), collage)
    cv2.imwrite(str(photos / "blank.png"), np.full((200, 200, 3), 200, np.uint8))
    (photos / "notes.txt").write_text("not an image\n")
    shutil.copy(GOLDEN / "clip.mp4", folder / "clip.mp4")
    return ["photos", "clip.mp4"]


def outputs(capsys, folder: Path, detector: str) -> dict[str, str]:
    """``predict`` over the fixed inputs: the stdout of each format, by file name."""
    sources = build_inputs(folder)
    os.chdir(folder)
    out = {}
    for fmt in ("jsonl", "csv"):
        code, text, err = run(capsys, "predict", *sources, "--detector", detector, "--format", fmt)
        assert code == 0, err
        out[f"{detector}.{fmt}"] = text
    options = [
        "--flip-tta",
        "off",
        "--margin",
        "-0.2",
        "--detect-every",
        "3",
        "--smoothing",
        "0",
        "--model",
        "ferplus",
    ]
    code, text, err = run(capsys, "predict", *sources, "--detector", detector, *options)
    assert code == 0, err
    out[f"{detector}-options.jsonl"] = text
    return out


def parsed(name: str, text: str) -> list:
    """The rows of an output, numbers as floats, for the tolerant comparison."""
    if name.endswith(".jsonl"):
        return [json.loads(line) for line in text.splitlines()]
    return [dict(row) for row in csv.DictReader(io.StringIO(text))]


def close(a, b) -> bool:
    """Equal, with numbers (and number strings, as CSV has them) within TOLERANCE."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and abs(a - b) <= TOLERANCE
    if isinstance(a, str) and isinstance(b, str) and a != b:
        try:
            return "." in a + b and abs(float(a) - float(b)) <= TOLERANCE
        except ValueError:
            return False
    return a == b


@pytest.mark.parametrize("detector", detectors_available())
def test_records_are_the_committed_ones(capsys, tmp_path, monkeypatch, detector):
    monkeypatch.chdir(tmp_path)
    got = outputs(capsys, tmp_path, detector)
    for name, text in got.items():
        path = GOLDEN / name
        if WRITE:
            path.write_text(text)
        want = path.read_text()
        if text == want:
            continue
        rows, wanted = parsed(name, text), parsed(name, want)
        assert len(rows) == len(wanted), f"{name}: {len(rows)} records, {len(wanted)} committed"
        for i, (row, committed) in enumerate(zip(rows, wanted, strict=True)):
            assert close(row, committed), f"{name} record {i}:\n{row}\n!=\n{committed}"


def test_the_golden_records_cover_every_kind_of_record():
    """The committed records hold what they are meant to guard: faces in photos (two in one),
    a no-face image, tracked video frames, and nothing for the text file."""
    recs = parsed("haar.jsonl", (GOLDEN / "haar.jsonl").read_text())
    by_source = {}
    for r in recs:
        by_source.setdefault(r["source"], []).append(r)
    assert len(by_source["photos/sub/two.png"]) == 2
    assert by_source["photos/blank.png"][0]["face"] is None
    video = by_source["clip.mp4"]
    assert len(video) == 12 and all(r["track_id"] is not None for r in video)
    assert not any("notes.txt" in s for s in by_source)
