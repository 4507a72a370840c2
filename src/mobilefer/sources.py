"""Frames from an image, a folder (recursive), a glob, a video file or a webcam index.

Each source yields :class:`Frame` objects holding a BGR uint8 H x W x 3 image. A source that
cannot be read raises :class:`mobilefer.errors.InputError` naming it; :func:`expand` lists the
sources behind a set of specs, so that a bad file in a folder is reported and the rest go on.
"""

from __future__ import annotations

import glob
import math
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import InputError
from .image import IMAGE_SUFFIXES, VIDEO_SUFFIXES, check_regular, opencv_path, printable

#: ``scheme://`` at the start of a spec: a URL, which the local engine does not fetch.
URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: Why a source is skipped, by kind (see :class:`Source`).
SKIPPED = {"other": "not an image or video", "link": "a link to a folder, not followed"}


@dataclass(frozen=True)
class Source:
    """One input: ``kind`` is image, video, webcam, other (a file that is neither), link (a
    folder reached through a symbolic link, which is not followed) or irregular (a pipe,
    device or socket, which is never opened); ``root`` is the folder it was found in when a
    folder or a pattern was given, else None."""

    spec: str
    kind: str
    root: str | None = None


@dataclass(frozen=True)
class Frame:
    """One BGR uint8 frame of a video or webcam; ``index`` and ``time`` (s) count frames;
    ``fps`` is the rate the file or camera states (``None`` where it states none)."""

    image: np.ndarray
    index: int = 0
    time: float | None = None
    fps: float | None = None


#: How video containers begin (bytes 4-8 of MP4/MOV/3GP; AVI; Matroska/WebM), to catch a clip
#: named like an image.
VIDEO_MAGIC = ((4, b"ftyp"), (0, b"RIFF"), (0, b"\x1aE\xdf\xa3"))


def looks_like_video(path: Path) -> bool:
    """Whether a regular file's first bytes are those of a video container (AVI: RIFF....AVI)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    if head[:4] == b"RIFF":
        return head[8:11] == b"AVI"
    return any(head[at : at + len(magic)] == magic for at, magic in VIDEO_MAGIC)


def _kind(path: Path) -> str:
    if path.exists() and not path.is_dir() and not path.is_file():
        return "irregular"
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return "other"


def expand(specs: list[str]) -> list[Source]:
    """The sources behind command-line specs; a spec that names nothing raises InputError.

    A folder gives its images and videos, recursively, in sorted order, plus every other file
    as kind ``other`` and every linked sub-folder as kind ``link`` (so that the caller can say
    what it skips); hidden files are skipped; links to folders are never followed, by folders
    and ``**`` patterns alike. A file named directly is read as an image unless its suffix says
    video; a pipe, device or socket, named or found, is kind ``irregular``. A folder or pattern
    with no image or video in it raises InputError ("no input found"); so does a URL.
    """
    out: list[Source] = []
    for spec in specs:
        s = str(spec)
        if s.isdigit():
            out.append(Source(s, "webcam"))
            continue
        if URL.match(s):
            raise InputError(
                f"{s}: a URL; the local engine reads files only: download it first, or use "
                "--engine ray (which reads s3://, gs:// and what else pyarrow opens)"
            )
        p = Path(s).expanduser()
        if p.is_dir():
            found = _walk(p, lambda rel: True)
            _require_media(found, s, "folder")
            out += found
        elif p.exists() or p.is_symlink():
            kind = _kind(p)
            out.append(Source(str(p), "image" if kind == "other" else kind))
        elif glob.has_magic(s):
            found = _glob(os.path.expanduser(s))
            if not found:
                raise InputError(f"{s}: the pattern matches no file")
            _require_media(found, s, "pattern")
            out += found
        else:
            raise InputError(f"{s}: no such file or folder")
    return out


def _walk(top: Path, keep) -> list[Source]:
    """The files under ``top`` whose path relative to it ``keep`` accepts, in sorted order,
    and the linked sub-folders (kind ``link``), never followed; hidden names are skipped."""
    found = []
    for root, dirs, files in os.walk(top):  # os.walk never follows links to folders
        links = sorted(d for d in dirs if not d.startswith(".") and os.path.islink(Path(root, d)))
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in links)
        for name in links:
            found.append(Source(str(Path(root) / name), "link", str(top)))
        for f in sorted(files):
            path = Path(root) / f
            if not f.startswith(".") and keep(path.relative_to(top).as_posix()):
                found.append(Source(str(path), _kind(path), str(top)))
    return found


def _glob(pattern: str) -> list[Source]:
    """The files a pattern matches, as ``glob`` finds them, except that ``**`` never follows a
    link to a folder (a ``self -> .`` link made ``glob`` repeat one photo 41 times, a link
    loop made it hang): such patterns walk the folder below their first wildcard instead."""
    if "**" not in pattern:
        return [
            Source(m, _kind(Path(m))) for m in sorted(glob.glob(pattern)) if not Path(m).is_dir()
        ]
    parts = Path(pattern).parts
    fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    top = Path(*parts[:fixed]) if fixed else Path(".")
    rest = re.compile(_translate(parts[fixed:]))
    if not top.is_dir():
        return []
    return [Source(f.spec, f.kind) for f in _walk(top, lambda rel: rest.fullmatch(rel) is not None)]


def _translate(parts: tuple[str, ...]) -> str:
    """A regular expression for a relative path matching glob ``parts`` (``**``: any folders;
    ``*``, ``?`` and ``[...]`` within one name, as ``glob`` reads them)."""
    out = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        j, body = 0, []
        while j < len(part):
            c = part[j]
            end = part.find("]", j + 2) if c == "[" else -1
            if c == "*":
                body.append("[^/]*")
            elif c == "?":
                body.append("[^/]")
            elif end > 0:
                inner = part[j + 1 : end]
                body.append("[" + ("^" + inner[1:] if inner.startswith("!") else inner) + "]")
                j = end
            else:
                body.append(re.escape(c))
            j += 1
        out.append("".join(body) + ("" if last else "/"))
    return "".join(out)


def _require_media(found: list[Source], spec: str, what: str) -> None:
    if not any(f.kind in ("image", "video") for f in found):
        others = f" ({len(found)} other files)" if found else ""
        raise InputError(f"{spec}: no input found: the {what} holds no image or video{others}")


#: Failed reads in a row after which a video counts as ended, whatever its header says.
MAX_UNREADABLE_RUN = 250


#: The frame rate assumed where a video or camera states none (saved videos, report times).
FALLBACK_FPS = 25.0


def frame_time(cap, index: int, fps: float) -> float | None:
    """The time (s) of the frame just read: the container's own timestamp, so that frames of a
    variable-frame-rate video are placed where they are shown; the index over the average rate
    where the container gives none."""
    ms = cap.get(cv2.CAP_PROP_POS_MSEC)
    if math.isfinite(ms) and ms >= 0 and (ms > 0 or index == 0):
        return ms / 1000
    return index / fps if fps > 0 else None


def read_video(path: str | Path) -> Iterator[Frame]:
    """Every frame of a video file, with its index and time. Unreadable frames (a damaged
    stretch) are skipped up to the frame count the container states, so what follows them is
    still read; when frames are missing, InputError says how many, after the frames read.
    Raises InputError at once if the file cannot be opened or has no readable frame."""
    p = Path(path)
    check_regular(p)
    with opencv_path(p) as name:
        cap = cv2.VideoCapture(name)
    if not cap.isOpened():
        raise InputError(f"{printable(p)}: cannot open the video (corrupt or unsupported codec)")
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    index, read, run, first_missing = 0, 0, 0, None
    try:
        while True:
            ok, image = cap.read()
            if ok:
                yield Frame(image, index, frame_time(cap, index, fps), fps or None)
                read, run = read + 1, 0
            else:
                if read == 0 and (count == 0 or index + 1 >= count):
                    raise InputError(f"{printable(p)}: the video has no readable frame")
                run += 1
                first_missing = index if first_missing is None else first_missing
                if index + 1 >= count or run >= MAX_UNREADABLE_RUN:
                    break
            index += 1
    finally:
        cap.release()
    if read == 0:
        raise InputError(f"{printable(p)}: the video has no readable frame")
    if count and read < count:
        raise InputError(
            f"{printable(p)}: damaged video: read {read} of {count} frames (unreadable from frame "
            f"{first_missing}{', where it ended' if run >= MAX_UNREADABLE_RUN else ''}); "
            "the records of the frames read were kept"
        )


def video_info(path: str | Path) -> tuple[int, float, tuple[int, int]]:
    """(frame count, frames/s, (width, height)) as the container states them; 0 if unknown.
    Raises InputError for a missing or irregular file (a pipe would block OpenCV)."""
    check_regular(Path(path))
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


def open_camera(index: int):
    """``cv2.VideoCapture(index)``: the one place a camera is opened (tests put a stand-in
    here)."""
    return cv2.VideoCapture(int(index))


def read_webcam(index: int, capture=None) -> Iterator[Frame]:
    """Live frames of webcam ``index`` until it stops. ``capture``: a ready cv2.VideoCapture-like
    object (default: :func:`open_camera`). Raises InputError when the camera does not exist."""
    cap = capture if capture is not None else open_camera(index)
    if not cap.isOpened():
        raise InputError(
            f"webcam {index}: no camera found at this index (or it is busy); try "
            "another index, or give the path of a recording"
        )
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0) or None
    t0 = time.perf_counter()
    try:
        i = 0
        while True:
            ok, image = cap.read()
            if not ok:
                if i == 0:
                    raise InputError(f"webcam {index}: the camera gives no frames")
                return
            yield Frame(image, i, time.perf_counter() - t0, fps)
            i += 1
    finally:
        cap.release()
