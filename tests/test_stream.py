"""Recognizer.stream on every kind of source: a video, a folder, a webcam stand-in, arrays."""

import numpy as np
import pytest

from mobilefer import Recognizer
from mobilefer.errors import InputError, OptionError

from conftest import FakeCamera, write_video


@pytest.fixture(scope="module")
def rec(tiny_model):
    return Recognizer(tiny_model, detector="haar")


def test_stream_a_video_is_tracked(rec, tmp_path, astronaut):
    video = write_video(tmp_path / "clip.mp4", astronaut, frames=8)
    results = list(rec.stream(str(video)))
    assert [r.frame for r in results] == list(range(8))
    assert all(r.kind == "video" and r.fps == pytest.approx(10.0) for r in results)
    assert results[3].time == pytest.approx(0.3)
    ids = {f.track_id for r in results for f in r.faces}
    assert ids == {0}  # one face, one track, across frames
    assert results[0].draw().shape == (480, 640, 3)
    (rec0,) = results[0].records()
    assert rec0["frame"] == 0 and rec0["track_id"] == 0


def test_stream_a_folder(rec, tmp_path, astronaut):
    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), astronaut)
    cv2.imwrite(str(tmp_path / "b.png"), np.full((50, 60, 3), 100, np.uint8))
    (tmp_path / "c.jpg").write_bytes(b"\xff\xd8broken")
    (tmp_path / "d.txt").write_text("x")
    results = {r.source.rsplit("/", 1)[-1]: r for r in rec.stream(tmp_path)}
    assert len(results["a.png"].faces) == 1 and results["a.png"].frame is None
    assert results["b.png"].faces == () and results["b.png"].records()[0]["face"] is None
    assert "truncated" in results["c.jpg"].error and results["c.jpg"].records() == []
    assert results["d.txt"].kind == "skipped"
    assert {r.root for r in results.values()} == {str(tmp_path)}


def test_stream_a_webcam_by_its_index(rec, astronaut, monkeypatch):
    """The stream's webcam branch: records name the camera, frames are counted and timed, the
    camera's rate is kept, and the camera is released."""
    from mobilefer import sources

    camera = FakeCamera([astronaut.copy() for _ in range(5)], fps=30.0)
    monkeypatch.setattr(sources, "open_camera", lambda index: camera)
    results = list(rec.stream(0, max_frames=3))
    assert [(r.source, r.kind, r.frame) for r in results] == [
        ("webcam:0", "webcam", i) for i in range(3)
    ]
    assert all(len(r.faces) == 1 and r.faces[0].track_id == 0 for r in results)
    assert results[0].fps == 30.0 and results[0].records()[0]["source"] == "webcam:0"
    assert camera.released


def test_a_missing_webcam_is_one_error_result(rec, monkeypatch):
    from mobilefer import sources

    monkeypatch.setattr(sources, "open_camera", lambda index: FakeCamera([], opened=False))
    (result,) = rec.stream(7)
    assert result.source == "webcam:7" and "no camera found" in result.error


def test_stream_arrays_and_one_array(rec, astronaut):
    gray = astronaut.mean(axis=2).astype(np.float32) / 255  # float 0-1, one policy for all
    (one,) = rec.stream(astronaut)
    assert one.kind == "array" and one.frame is None and len(one.faces) == 1
    many = list(rec.stream([astronaut, gray, astronaut]))
    assert [r.frame for r in many] == [0, 1, 2] and all(len(r.faces) == 1 for r in many)


def test_stream_options_and_bad_sources(rec, tmp_path):
    with pytest.raises(OptionError, match="detect_every"):
        list(rec.stream(str(tmp_path), detect_every=0))
    with pytest.raises(OptionError, match="smoothing"):
        list(rec.stream(str(tmp_path), smoothing=1.0))
    with pytest.raises(InputError, match="source of type"):
        list(rec.stream(3.5))
    (missing,) = rec.stream(str(tmp_path / "nope.jpg"))
    assert missing.error and "no such file" in missing.error


def test_analyze_takes_a_path(rec):
    from pathlib import Path

    photo = Path(__file__).parent / "data" / "astronaut.jpg"
    (face,) = rec.analyze(photo)
    assert face.box[2] > 50


def test_a_session_fed_frame_by_frame_gives_what_the_stream_gives(rec, astronaut):
    """Recognizer.session (the live socket's) and stream over an iterable are one path."""
    frames = [np.ascontiguousarray(np.roll(astronaut, 5 * i, axis=1)) for i in range(6)]
    session = rec.session("webcam", "webcam", detect_every=3)
    live = [session.update(f, i, i / 10) for i, f in enumerate(frames)]
    streamed = list(rec.stream(frames, detect_every=3))
    assert [r.faces for r in live] == [r.faces for r in streamed]
    assert [(r.source, r.kind, r.frame, r.time) for r in live[:2]] == [
        ("webcam", "webcam", 0, 0.0),
        ("webcam", "webcam", 1, 0.1),
    ]
    with pytest.raises(OptionError, match="smoothing"):
        rec.session(smoothing=1.5)
