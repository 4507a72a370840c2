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
from .image import IMAGE_SUFFIXES, VIDEO_SUFFIXES, opencv_path, shown


@dataclass(frozen=True)
class Source:
    """One input: ``kind`` is image, video, webcam, or other (a file that is neither);
    ``root`` is the folder it was found in when a folder was given, else None."""

    spec: str
    kind: str
    root: str | None = None


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
    as kind ``other`` (so that the caller can count what it skips); hidden files are skipped. A
    file named directly is read as an image unless its suffix says video. A folder or pattern
    with no image or video in it raises InputError ("no input found").
    """
    out: list[Source] = []
    for spec in specs:
        s = str(spec)
        if s.isdigit():
            out.append(Source(s, "webcam"))
            continue
        p = Path(s).expanduser()
        if p.is_dir():
            found = []
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for f in sorted(files):
                    if not f.startswith("."):
                        found.append(Source(str(Path(root) / f), _kind(Path(f)), str(p)))
            _require_media(found, s, "folder")
            out += found
        elif p.exists():
            out.append(Source(str(p), "image" if _kind(p) == "other" else _kind(p)))
        elif glob.has_magic(s):
            matches = sorted(glob.glob(os.path.expanduser(s), recursive=True))
            if not matches:
                raise InputError(f"{s}: the pattern matches no file")
            found = [Source(m, _kind(Path(m))) for m in matches if Path(m).is_file()]
            _require_media(found, s, "pattern")
            out += found
        else:
            raise InputError(f"{s}: no such file or folder")
    return out


def _require_media(found: list[Source], spec: str, what: str) -> None:
    if not any(f.kind in ("image", "video") for f in found):
        others = f" ({len(found)} other files)" if found else ""
        raise InputError(f"{spec}: no input found: the {what} holds no image or video{others}")


def read_video(path: str | Path, stride: int = 1) -> Iterator[Frame]:
    """Every ``stride``-th frame of a video file. Raises InputError if it cannot be opened."""
    import cv2

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    with opencv_path(p) as name:
        cap = cv2.VideoCapture(name)
    if not cap.isOpened():
        raise InputError(f"{shown(p)}: cannot open the video (corrupt or unsupported codec)")
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

    with opencv_path(path) as name:
        cap = cv2.VideoCapture(name)
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
