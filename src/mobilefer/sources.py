"""Frames from an image, a folder (recursive), a glob, a video file or a webcam index.

Each source yields :class:`Frame` objects holding a BGR uint8 H x W x 3 image. A source that
cannot be read raises :class:`mobilefer.errors.InputError` naming it; :func:`expand` lists the
sources behind a set of specs, so that a bad file in a folder is reported and the rest go on.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm", ".jp2"}
)
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
)
#: Images with more pixels than this are refused (a decoded 8000x8000 photo takes 192 MB).
MAX_PIXELS = 120_000_000


@dataclass(frozen=True)
class Source:
    """One input: ``kind`` is image, video, webcam, or other (a file that is neither)."""

    spec: str
    kind: str


@dataclass(frozen=True)
class Frame:
    """A BGR uint8 image from ``source``; ``index`` and ``time`` (s) count video frames."""

    source: str
    image: np.ndarray
    index: int = 0
    time: float | None = None


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return "other"


def expand(specs: list[str]) -> list[Source]:
    """The sources behind command-line specs; a spec that names nothing raises InputError.

    A folder gives its images and videos, recursively, in sorted order, plus every other file
    as kind ``other`` (so that the caller can report it); hidden files are skipped.
    """
    out: list[Source] = []
    for spec in specs:
        s = str(spec)
        if s.isdigit():
            out.append(Source(s, "webcam"))
            continue
        p = Path(s).expanduser()
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for f in sorted(files):
                    if not f.startswith("."):
                        out.append(Source(str(Path(root) / f), _kind(Path(f))))
        elif p.exists():
            out.append(Source(str(p), "image" if _kind(p) == "other" else _kind(p)))
        elif glob.has_magic(s):
            matches = sorted(glob.glob(os.path.expanduser(s), recursive=True))
            if not matches:
                raise InputError(f"{s}: the pattern matches no file")
            out.extend(Source(m, _kind(Path(m))) for m in matches if Path(m).is_file())
        else:
            raise InputError(f"{s}: no such file or folder")
    return out


def _truncated(data: bytes) -> bool:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return b"IEND" not in data[-32:]
    if data.startswith(b"\xff\xd8"):
        return b"\xff\xd9" not in data[-1024:]
    return False


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as BGR uint8 H x W x 3 (gray, RGBA and 16-bit files are converted).

    Raises :class:`InputError` for a missing, empty, truncated, corrupt or oversized file.
    """
    import cv2

    from .recognizer import to_bgr

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    data = p.read_bytes()
    if not data:
        raise InputError(f"{p}: empty file (0 bytes)")
    if _truncated(data):
        raise InputError(f"{p}: truncated image; the file ends early")
    buf = np.frombuffer(data, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None:
        raise InputError(f"{p}: not a readable image (corrupt or unknown format)")
    if img.shape[0] * img.shape[1] > MAX_PIXELS:
        raise InputError(
            f"{p}: {img.shape[1]}x{img.shape[0]} is too large; "
            f"shrink it below {MAX_PIXELS:,} pixels"
        )
    return np.ascontiguousarray(to_bgr(img))


def read_video(path: str | Path, stride: int = 1) -> Iterator[Frame]:
    """Every ``stride``-th frame of a video file. Raises InputError if it cannot be opened."""
    import cv2

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    cap = cv2.VideoCapture(str(p))
    if not cap.isOpened():
        raise InputError(f"{p}: cannot open the video (corrupt or unsupported codec)")
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    try:
        ok, image = cap.read()
        if not ok:
            raise InputError(f"{p}: the video has no readable frame")
        index = 0
        while ok:
            if index % stride == 0:
                yield Frame(str(p), image, index, index / fps if fps > 0 else None)
            index += 1
            ok, image = cap.read()
    finally:
        cap.release()


def video_info(path: str | Path) -> tuple[int, float, tuple[int, int]]:
    """(frame count, frames/s, (width, height)) as the container states them; 0 if unknown."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        return (
            int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0),
            float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
            (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))),
        )
    finally:
        cap.release()


def read_webcam(index: int, capture=None) -> Iterator[Frame]:
    """Live frames of webcam ``index`` until it stops. ``capture``: a ready cv2.VideoCapture-like
    object (tests pass a fake one). Raises InputError when the camera does not exist."""
    import time

    import cv2

    cap = capture if capture is not None else cv2.VideoCapture(int(index))
    if not cap.isOpened():
        raise InputError(f"webcam {index}: no such camera (none found, or it is busy)")
    t0 = time.perf_counter()
    try:
        i = 0
        while True:
            ok, image = cap.read()
            if not ok:
                if i == 0:
                    raise InputError(f"webcam {index}: the camera gives no frames")
                return
            yield Frame(f"webcam:{index}", image, i, time.perf_counter() - t0)
            i += 1
    finally:
        cap.release()
