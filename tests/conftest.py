"""Shared fixtures: the real files from ../shared (never downloaded), a tiny exported model,
scikit-image's public-domain astronaut photo."""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MOBILEFER_SHARED", ROOT.parent / "shared"))
WEIGHTS = SHARED / "weights"
FER_NPZ = SHARED / "data" / "fer2013" / "fer2013.npz"
YUNET_SRC = WEIGHTS / "face_detection_yunet_2023mar.onnx"
TINY_MODEL = ROOT / "tests" / "data" / "tiny.onnx"

sys.path.insert(0, str(ROOT / "scripts"))
import make_tiny_model  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _packaged_yunet():
    """Every test uses the YuNet file inside the package, never a user's own."""
    os.environ.pop("MOBILEFER_YUNET", None)
    yield


def detectors_available() -> list:
    """Both detectors: YuNet ships inside the package."""
    return ["haar", "yunet"]


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's astronaut() (public-domain NASA portrait) as BGR uint8: one face."""
    skimage_data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skimage_data.astronaut()[:, :, ::-1])


@pytest.fixture()
def jpg_bytes(astronaut) -> bytes:
    """The astronaut photo as JPEG bytes."""
    import cv2

    return cv2.imencode(".jpg", astronaut)[1].tobytes()


@pytest.fixture(scope="session")
def tiny_config():
    """The config of the tiny model, for training tests (needs torch)."""
    pytest.importorskip("torch")
    return make_tiny_model.tiny_config()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A copy of the committed tiny untrained model (``scripts/make_tiny_model.py`` makes it),
    whose scores differ from face to face: inference tests need no torch."""
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    shutil.copyfile(TINY_MODEL, path)
    return path


def synthetic_fer(n_per_split=(40, 14, 14), seed: int = 0):
    """Random 48x48 faces with labels; the same arrays as fer2013.npz holds."""
    rng = np.random.default_rng(seed)
    n = sum(n_per_split)
    pixels = rng.integers(0, 256, (n, 48, 48), dtype=np.uint8)
    emotion = np.tile(np.arange(7), n // 7 + 1)[:n].astype(np.int8)
    usage = np.repeat(np.arange(3), n_per_split).astype(np.int8)
    return pixels, emotion, usage


def synthetic_votes(emotion: np.ndarray, seed: int = 0) -> np.ndarray:
    """FER+-shaped votes (N x 10, 10 per row) that mostly agree with ``emotion``; every 9th row
    is voted not-a-face, as FER+ votes the blank images of FER2013."""
    from mobilefer.labels import FERPLUS_COLUMN_TO_LABEL

    rng = np.random.default_rng(seed)
    column_of = {lab: c for c, lab in enumerate(FERPLUS_COLUMN_TO_LABEL) if lab is not None}
    votes = np.zeros((len(emotion), 10), dtype=np.int16)
    for i, e in enumerate(emotion):
        votes[i, column_of[int(e)]] += 7
        votes[i, rng.integers(0, 8, size=3)] += 1
    votes[::9] = 0
    votes[::9, 9] = 10
    return votes


@pytest.fixture()
def fer_npz(tmp_path) -> Path:
    """A tiny FER2013 npz, with FER+ votes in a ferplus.npz beside it (as in ../shared)."""
    pixels, emotion, usage = synthetic_fer()
    path = tmp_path / "tiny_fer.npz"
    np.savez(path, pixels=pixels, emotion=emotion, usage=usage)
    np.savez(tmp_path / "ferplus.npz", votes=synthetic_votes(emotion), usage=usage)
    return path


def run(capsys, *argv):
    """``mobilefer ARGV`` in this process: (exit code, stdout, stderr)."""
    from mobilefer.cli import main

    try:
        code = main(
            [os.fsdecode(a) if isinstance(a, bytes | os.PathLike) else str(a) for a in argv]
        )
    except SystemExit as e:  # argparse refusing an option
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def cli_argv(*args) -> list[str]:
    """The argv of ``mobilefer ARGS`` in a child process (this Python)."""
    return [sys.executable, "-m", "mobilefer", *args]


def predict(capsys, model, *args):
    """``mobilefer predict ARGS --model MODEL --detector haar``."""
    return run(
        capsys,
        "predict",
        *(os.fsdecode(a) for a in args),
        "--model",
        str(model),
        "--detector",
        "haar",
    )


def records(out):
    """The JSON Lines records of a predict run's stdout."""
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def write_video(path, astronaut, frames=12, size=(640, 480)):
    """An mp4 (mp4v, 10 frames/s) of a face moving right across a gray frame (at least
    640 x 480)."""
    import cv2

    w, h = size
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (w, h))
    face = cv2.resize(astronaut[0:300, 100:350], (200, 240))
    for i in range(frames):
        frame = np.full((h, w, 3), 90, np.uint8)
        x = 40 + (i * 20) % (w - 280)  # back to the left when it reaches the right
        frame[100:340, x : x + 200] = face
        vw.write(frame)
    vw.release()
    return path


class FakeCamera:
    """Stands in for cv2.VideoCapture (put it in ``mobilefer.sources.open_camera``): these
    frames, then the stream ends; ``opened`` False is a camera that is not there."""

    def __init__(self, frames, opened: bool = True, fps: float = 0.0):
        self.frames, self.opened, self.fps, self.released = list(frames), opened, fps, False

    def isOpened(self):
        return self.opened

    def read(self):
        return (True, self.frames.pop(0)) if self.frames else (False, None)

    def get(self, prop):
        return self.fps

    def release(self):
        self.released = True


def tiff_header(width: int, height: int) -> bytes:
    """A little-endian TIFF whose one IFD declares ``width`` x ``height`` 8-bit gray (no data)."""
    tags = [
        (256, 4, width),
        (257, 4, height),
        (258, 3, 8),
        (259, 3, 1),
        (262, 3, 1),
        (273, 4, 8),
        (277, 3, 1),
        (278, 4, height),
        (279, 4, width * height),
    ]
    ifd = struct.pack("<H", len(tags))
    for tag, kind, value in tags:
        ifd += (
            struct.pack("<HHII", tag, kind, 1, value)
            if kind == 4
            else struct.pack("<HHIHH", tag, kind, 1, value, 0)
        )
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)


def j2k_header(width: int, height: int) -> bytes:
    """A JPEG 2000 codestream: SOC, then a SIZ segment declaring ``width`` x ``height`` gray."""
    siz = struct.pack(">HIIIIIIIIH", 0, width, height, 0, 0, width, height, 0, 0, 1)
    siz += bytes([7, 1, 1])
    return b"\xff\x4f\xff\x51" + struct.pack(">H", len(siz) + 2) + siz + b"\xff\xd9"


def png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares ``width`` x ``height`` RGB, with one byte of data."""
    import zlib

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"x") + chunk(b"IEND", b"")


#: Test modules whose tests are slow (training, Ray, the hostile corpus): marked ``slow``.
SLOW_MODULES = {"test_train.py", "test_ray.py", "test_corpus.py"}


def pytest_collection_modifyitems(items):
    """Markers by what a test drives: ``browser`` (Debian's chromium) and ``slow``
    (``pytest -m "not slow and not browser"`` is the quick loop)."""
    for item in items:
        if "chromium" in item.name:
            item.add_marker(pytest.mark.browser)
        if item.path.name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
