"""Inputs that are not what their names say: pipes, devices, link loops, URLs, bad frames.

Each case names the input in one line and never loses a sibling; none may block, so each runs
under an alarm that fails the test instead of hanging the suite.
"""

from __future__ import annotations

import os
import signal

import pytest

from conftest import predict, records


@pytest.fixture()
def alarm():
    """Fail (rather than hang) a test that takes longer than 60 s."""

    def ring(signum, frame):
        raise TimeoutError("the input blocked for 60 s")

    old = signal.signal(signal.SIGALRM, ring)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture()
def photo_bytes(astronaut) -> bytes:
    import cv2

    return cv2.imencode(".jpg", astronaut)[1].tobytes()


def test_pipes_and_devices_are_refused_unopened(capsys, tmp_path, tiny_model, photo_bytes, alarm):
    folder = tmp_path / "in"
    folder.mkdir()
    os.mkfifo(folder / "clip.mp4")
    os.mkfifo(folder / "still.jpg")
    os.symlink("/dev/zero", folder / "zero.png")
    (folder / "z_good.jpg").write_bytes(photo_bytes)
    code, out, err = predict(capsys, tiny_model, folder)
    assert code == 1
    assert [r["source"] for r in records(out)] == [str(folder / "z_good.jpg")]
    bad = [line for line in err.splitlines() if "not a regular file" in line]
    assert len(bad) == 3 and all("no such file" not in line for line in bad)
    # named directly, the same
    code, out, err = predict(capsys, tiny_model, folder / "clip.mp4", folder / "z_good.jpg")
    assert code == 1 and len(records(out)) == 1 and "clip.mp4: not a regular file" in err


def test_globs_never_follow_linked_folders(capsys, tmp_path, tiny_model, photo_bytes, alarm):
    top = tmp_path / "photos"
    (top / "sub").mkdir(parents=True)
    (top / "sub" / "a.jpg").write_bytes(photo_bytes)
    os.symlink(".", top / "self")  # one photo became 41 records
    os.symlink("..", top / "sub" / "up")  # a loop
    for spec in (f"{top}/**/*.jpg", str(top)):
        code, out, err = predict(capsys, tiny_model, spec)
        assert code == 0, err
        assert [r["source"] for r in records(out)] == [str(top / "sub" / "a.jpg")]
        assert "skipped 2 linked folder(s), not followed" in err
        assert "self" in err and "up" in err


def test_glob_wildcards_keep_their_meaning(tmp_path):
    from mobilefer.sources import expand

    for name in ("a.jpg", "b.jpeg", "x/c.jpg", "x/y/d.jpg", "x/.hidden.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    got = {s.spec for s in expand([f"{tmp_path}/**/*.jpg"])}
    assert got == {str(tmp_path / n) for n in ("a.jpg", "x/c.jpg", "x/y/d.jpg")}
    got = {s.spec for s in expand([f"{tmp_path}/x/**/[cd].jp?"])}
    assert got == {str(tmp_path / n) for n in ("x/c.jpg", "x/y/d.jpg")}
    assert {s.spec for s in expand([f"{tmp_path}/*.jp*g"])} == {
        str(tmp_path / "a.jpg"),
        str(tmp_path / "b.jpeg"),
    }


@pytest.mark.parametrize(
    "url", ["http://example.org/a.jpg", "https://example.org/a.jpg?size=large", "s3://b/k.jpg"]
)
def test_urls_say_how_to_read_them(capsys, tiny_model, url):
    code, out, err = predict(capsys, tiny_model, url)
    assert code == 1 and not out
    (line,) = err.strip().splitlines()[:1]
    assert url in line and "URL" in line and "--engine ray" in line
    assert "no such file" not in err and "matches no file" not in err
