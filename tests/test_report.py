"""From frames to findings: summarize() on clips of known content, records read back, and the
HTML report in a real browser."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from mobilefer import EMOTIONS, read_records, summarize
from mobilefer.recognizer import Face
from mobilefer.stream import Result
from mobilefer.study.summary import MIN_TRACK_FRAMES, valence

from conftest import run, write_video

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def scores(label: str, p: float) -> dict[str, float]:
    rest = (1 - p) / (len(EMOTIONS) - 1)
    return {k: p if k == label else rest for k in EMOTIONS}


def clip(runs, fps=10.0, source="clip.mp4", second=None):
    """Results of a synthetic clip: ``runs`` is [(label, probability, frames), ...] for track 0;
    ``second`` the same for a track 1 that is in the same frames."""
    labels = [x for label, p, n in runs for x in [(label, p)] * n]
    other = [x for label, p, n in (second or []) for x in [(label, p)] * n]
    out = []
    for i, (label, p) in enumerate(labels):
        faces = [Face((10, 10, 50, 50), label, scores(label, p), "haar", None, 0)]
        if i < len(other):
            lab2, p2 = other[i]
            faces.append(Face((100, 10, 50, 50), lab2, scores(lab2, p2), "haar", None, 1))
        out.append(Result(source, "video", tuple(faces), None, i, i / fps, fps=fps))
    return out


def test_shares_peaks_and_valence_of_known_runs():
    results = clip(
        [("happy", 0.8, 10), ("neutral", 0.7, 20), ("happy", 0.9, 10)], second=[("sad", 0.6, 5)]
    )
    (summary,) = summarize(results)
    assert summary.kind == "video" and summary.frames == 40 and summary.duration == 3.9
    a, b = summary.tracks
    assert a.frames == 40 and a.share["happy"] == 0.5 and a.share["neutral"] == 0.5
    assert a.dominant == "happy"  # equal shares: the higher mean probability
    assert a.peaks["happy"].frame == 30 and a.peaks["happy"].time == 3.0
    assert a.peaks["neutral"].frame == 10 and a.first_time == 0.0 and a.last_time == 3.9
    assert a.mean["happy"] == pytest.approx((10 * 0.8 + 10 * 0.9 + 20 * 0.05) / 40)
    assert a.valence[0] == (0.0, pytest.approx(0.8 - 1 / 30))
    assert b.frames == 5 and b.short and not a.short and b.dominant == "sad"
    assert sum(a.share.values()) == pytest.approx(1)


def test_no_face_one_frame_and_photos():
    empty = [Result("empty.mp4", "video", (), None, i, i / 10) for i in range(5)]
    one = clip([("fear", 0.9, 1)], source="one.mp4")
    photos = [
        Result("p/a.jpg", "image", (Face((0, 0, 9, 9), "happy", scores("happy", 0.9)),)),
        Result("p/b.jpg", "image", ()),
    ]
    by = {c.source: c for c in summarize([*empty, *one, *photos])}
    assert by["empty.mp4"].tracks == () and by["empty.mp4"].frames == 5
    (t,) = by["one.mp4"].tracks
    assert t.frames == 1 and t.short and t.peaks["fear"].frame == 0 and MIN_TRACK_FRAMES > 1
    p = by["p/"]
    assert p.kind == "images" and p.images == 2 and p.faces == 1 and p.share["happy"] == 1


def test_valence_is_happy_minus_the_strongest_negative():
    assert valence(scores("happy", 0.7)) == pytest.approx(0.7 - 0.05)
    assert valence({"happy": 0.1, "sad": 0.5, "angry": 0.2, "surprise": 0.9}) == pytest.approx(-0.4)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_records_read_back_give_the_same_summary(capsys, tmp_path, tiny_model, astronaut, fmt):
    from mobilefer import Recognizer

    video = write_video(tmp_path / "clip.mp4", astronaut, frames=12)
    code, out, _ = run(
        capsys, "predict", video, "--model", tiny_model, "--detector", "haar", "--format", fmt
    )
    assert code == 0
    (tmp_path / f"r.{fmt}").write_text(out)
    live = summarize(Recognizer(tiny_model, detector="haar").stream(str(video)))
    back = summarize(read_records(tmp_path / f"r.{fmt}"))
    assert [c.source for c in back] == [c.source for c in live] == [str(video)]
    for a, b in zip(live[0].tracks, back[0].tracks, strict=True):
        assert (a.track_id, a.frames, a.share, a.dominant) == (
            b.track_id,
            b.frames,
            b.share,
            b.dominant,
        )
        assert a.mean == pytest.approx(b.mean, abs=1e-4)


def test_report_without_its_extra_says_which_to_install(capsys, monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "plotly", None)
    code, out, err = run(capsys, "report", "x.mp4", "--out", tmp_path / "r.html")
    assert code == 2 and "[report] extra" in err and "pip install 'mobilefer[report]'" in err


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")
def test_the_report_opens_in_chromium(capsys, tmp_path, astronaut):
    pytest.importorskip("plotly")
    sync_api = pytest.importorskip("playwright.sync_api")
    video = write_video(tmp_path / "clip.mp4", astronaut, frames=30)
    out, table = tmp_path / "report.html", tmp_path / "tracks.csv"
    code, _, err = run(capsys, "report", video, "--out", out, "--csv", table, "--detector", "haar")
    assert code == 0, err
    tracks = int(err.split("report: ")[1].split(" face track")[0])
    assert tracks >= 1 and "in 1 clip(s)" in err
    assert table.read_text().splitlines()[0].startswith("source,track_id,first_time")
    assert "<script src=" not in out.read_text() and "<link" not in out.read_text()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1400})
            problems = []
            page.on("console", lambda m: m.type == "error" and problems.append(m.text))
            page.on("pageerror", lambda e: problems.append(str(e)))
            fetched = []  # offline: the page asks the network for nothing
            page.on("request", lambda r: r.url.startswith("file:") or fetched.append(r.url))
            page.goto(out.as_uri())
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=15_000)
            assert page.locator("#compare tr").count() == 1 + tracks  # a header, then faces
            assert page.locator(".track").count() == tracks
            assert page.locator(".track .js-plotly-plot").count() == 3 * tracks
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
            if os.environ.get("MOBILEFER_SCREENSHOT_REPORT"):
                shutil.copy(tmp_path / "report.png", os.environ["MOBILEFER_SCREENSHOT_REPORT"])
            assert not problems and not fetched, (problems, fetched)
        finally:
            browser.close()
    assert np.frombuffer((tmp_path / "report.png").read_bytes()[:8], np.uint8).size == 8


def test_nothing_read_writes_no_report(capsys, tmp_path):
    pytest.importorskip("plotly")
    code, _, err = run(capsys, "report", tmp_path / "missing.mp4", "--out", tmp_path / "r.html")
    assert code == 1 and "nothing was read" in err and not (tmp_path / "r.html").exists()
    code, _, err = run(capsys, "report", tmp_path, "--out", tmp_path / "r.txt")
    assert code == 2 and "HTML" in err


def test_two_faces_crossing_paths(tmp_path, tiny_model, astronaut):
    """Two faces that pass each other: every face of every frame is in one track's summary."""
    import cv2

    from mobilefer import Recognizer

    face = cv2.resize(astronaut[0:300, 100:350], (150, 180))
    path = tmp_path / "crossing.mp4"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (640, 360))
    for i in range(24):
        frame = np.full((360, 640, 3), 90, np.uint8)
        a, b = 20 + i * 20, 470 - i * 20  # left to right, and right to left
        frame[90:270, a : a + 150] = face
        frame[90:270, b : b + 150] = np.maximum(frame[90:270, b : b + 150], face)
        vw.write(frame)
    vw.release()
    results = list(Recognizer(tiny_model, detector="haar").stream(str(path)))
    (summary,) = summarize(results)
    faces = sum(len(r.faces) for r in results)
    assert summary.frames == 24 and summary.tracks
    assert sum(t.frames for t in summary.tracks) == faces
    for t in summary.tracks:
        assert t.first_frame <= t.last_frame and sum(t.share.values()) == pytest.approx(1)
