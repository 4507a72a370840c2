"""Frames from an image, a folder (recursive), a glob, a video file or a webcam index.

Each source yields :class:`Frame` objects holding a BGR uint8 H x W x 3 image. A source that
cannot be read raises :class:`mobilefer.errors.InputError` naming it; :func:`expand` lists the
sources behind a set of specs, so that a bad file in a folder is reported and the rest go on.
"""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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
#: Images with more pixels than this are refused, from their header where it can be read, before
#: decoding (a decoded 120-megapixel photo takes 360 MB). ``--max-pixels`` raises it.
MAX_PIXELS = 120_000_000


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


def utf8_safe(path: str | Path) -> bool:
    """Whether OpenCV can take this path as it is (it needs names that encode as UTF-8)."""
    try:
        str(path).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


@contextmanager
def opencv_path(path: str | Path):
    """A name for ``path`` that OpenCV can open: the path itself, or a temporary symbolic
    link with a plain name when the path does not encode as UTF-8 (OpenCV crashed on those)."""
    if utf8_safe(path):
        yield str(path)
        return
    with tempfile.TemporaryDirectory(prefix="mobilefer-") as tmp:
        suffix = Path(path).suffix.encode("ascii", "replace").decode().replace("?", "")
        link = Path(tmp) / ("input" + suffix)
        os.symlink(os.path.abspath(path), link)
        yield str(link)


def shown(path: str | Path) -> str:
    """A path for messages: undecodable bytes shown as \\xNN, never a crash."""
    return str(path).encode("utf-8", "backslashreplace").decode("utf-8")


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


def _jpeg_info(data: bytes) -> tuple[int | None, tuple[int, int] | None]:
    """(offset just past the EOI marker, or None if the data ends first; (width, height))."""
    i, n, size = 2, len(data), None
    while i + 2 <= n:
        if data[i] != 0xFF:
            return None, size  # not a marker where one must be: damaged
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD9:
            return i + 2, size
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            i += 2
            continue
        if i + 4 > n:
            return None, size
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE,
                      0xCF) and i + 9 <= n:  # fmt: skip
            size = (int.from_bytes(data[i + 7 : i + 9], "big"),
                    int.from_bytes(data[i + 5 : i + 7], "big"))  # fmt: skip
        i += 2 + length
        if marker == 0xDA:  # entropy-coded data: runs to the next marker that is not RSTn/FF00
            while True:
                j = data.find(b"\xff", i)
                if j < 0 or j + 1 >= n:
                    return None, size
                nxt = data[j + 1]
                if nxt == 0x00 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF:
                    i = j + 1 if nxt == 0xFF else j + 2
                    continue
                i = j
                break
    return None, size


def _png_info(data: bytes) -> tuple[int | None, tuple[int, int] | None]:
    """(offset just past the IEND chunk, or None if the data ends first; (width, height))."""
    i, n, size = 8, len(data), None
    while i + 8 <= n:
        length = int.from_bytes(data[i : i + 4], "big")
        kind = data[i + 4 : i + 8]
        if kind == b"IHDR" and i + 16 <= n:
            size = (int.from_bytes(data[i + 8 : i + 12], "big"),
                    int.from_bytes(data[i + 12 : i + 16], "big"))  # fmt: skip
        end = i + 12 + length
        if end > n:
            return None, size
        if kind == b"IEND":
            return end, size
        i = end
    return None, size


def _header_info(data: bytes) -> tuple[bool, tuple[int, int] | None]:
    """(whether the image data ends early, (width, height) if the header says) for PNG, JPEG,
    BMP and WebP, read from the bytes alone; other formats give (False, None). Data after the
    end of the image (as in motion photos: a JPEG, then a video) does not count as damage."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        end, size = _png_info(data)
        return end is None, size
    if data.startswith(b"\xff\xd8"):
        end, size = _jpeg_info(data)
        return end is None, size
    if data.startswith(b"BM") and len(data) >= 26:
        w = int.from_bytes(data[18:22], "little", signed=True)
        h = int.from_bytes(data[22:26], "little", signed=True)
        return False, (abs(w), abs(h))
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            return False, (int.from_bytes(data[24:27], "little") + 1,
                           int.from_bytes(data[27:30], "little") + 1)  # fmt: skip
        if chunk == b"VP8 ":
            return False, (int.from_bytes(data[26:28], "little") & 0x3FFF,
                           int.from_bytes(data[28:30], "little") & 0x3FFF)  # fmt: skip
        if chunk == b"VP8L" and len(data) >= 25:
            bits = int.from_bytes(data[21:25], "little")
            return False, ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    return False, None


def _too_large(p: Path, width: int, height: int, max_pixels: int) -> InputError:
    return InputError(
        f"{p}: {width}x{height} is {width * height:,} pixels, over the limit of {max_pixels:,}; "
        "shrink it, or raise the limit (--max-pixels)"
    )


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image file as BGR uint8 H x W x 3, upright as its EXIF orientation says (gray,
    RGBA, palette, CMYK and 16-bit files are converted).

    Images over ``max_pixels`` are refused from their header, before decoding (PNG, JPEG, BMP,
    WebP; other formats after decoding). Raises :class:`InputError` for a missing, unreadable,
    empty, truncated, corrupt or oversized file.
    """
    import cv2

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    try:
        data = p.read_bytes()
    except OSError as e:
        why = e.strerror or str(e)
        raise InputError(f"{p}: cannot read the file ({why}); check its permissions") from None
    if not data:
        raise InputError(f"{p}: empty file (0 bytes)")
    truncated, size = _header_info(data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise _too_large(p, size[0], size[1], max_pixels)
    if truncated:
        raise InputError(f"{p}: truncated image; the file ends early")
    buf = np.frombuffer(data, dtype=np.uint8)
    # IMREAD_COLOR applies the EXIF orientation (IMREAD_UNCHANGED would not) and turns gray,
    # palette, alpha, CMYK and 16-bit images into 8-bit BGR.
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"{p}: not a readable image (corrupt or unknown format)")
    if img.shape[0] * img.shape[1] > max_pixels:
        raise _too_large(p, img.shape[1], img.shape[0], max_pixels)
    return np.ascontiguousarray(img)


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
