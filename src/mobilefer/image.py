"""Images in: reading files (upright, checked before decoding), one dtype policy, and the
file suffixes mobilefer treats as images and videos. The layer below :mod:`mobilefer.sources`,
:mod:`mobilefer.data` and :mod:`mobilefer.preprocess`, so none of them imports another for these.

Conventions: images come out as BGR uint8 H x W x 3 (:func:`to_bgr`) or 2-D gray uint8
(:func:`to_gray`); gray, BGR and BGRA inputs of dtype uint8, uint16, float or bool are taken, as
:func:`to_uint8` says.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
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


def check_regular(path: str | Path) -> None:
    """Raise :class:`InputError` unless ``path`` is a regular file (after links): a pipe, a
    device or a socket is never opened, since reading one may block forever or never end."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError(f"{shown(path)}: no such file") from None
    except OSError as e:
        raise InputError(f"{shown(path)}: cannot read the file ({e.strerror or e})") from None
    if not stat.S_ISREG(mode):
        what = "a folder" if stat.S_ISDIR(mode) else "a pipe, device or socket"
        raise InputError(f"{shown(path)}: not a regular file ({what}); pass an image or video file")


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


def to_uint8(image: np.ndarray) -> np.ndarray:
    """The one dtype policy for every image mobilefer takes: uint8 as is; uint16 keeps its high
    byte; floats are 0-1 when their maximum is <= 1, else 0-255, clipped, NaN as 0; bools and
    other integers are clipped to 0-255."""
    img = np.asarray(image)
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return (img >> 8).astype(np.uint8)
    if img.dtype == np.bool_:
        return img.astype(np.uint8) * 255
    if np.issubdtype(img.dtype, np.floating):
        img = np.nan_to_num(img.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        if img.size and float(img.max()) <= 1.0:
            img = img * 255.0
        return np.clip(np.rint(img), 0, 255).astype(np.uint8)
    if np.issubdtype(img.dtype, np.integer):
        return np.clip(img, 0, 255).astype(np.uint8)
    raise InputError(f"image of dtype {img.dtype} is not supported; pass uint8, uint16 or float")


def to_gray(image: np.ndarray) -> np.ndarray:
    """Return a 2-D uint8 gray copy of a gray, BGR or BGRA image (dtypes: :func:`to_uint8`)."""
    import cv2

    img = to_uint8(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return np.ascontiguousarray(img)
    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY)
    raise InputError(f"image of shape {img.shape} is not gray, BGR or BGRA; pass H x W [x 1|3|4]")


def as_image(img, what: str) -> np.ndarray:
    arr = np.asarray(img)
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise InputError(f"{what}: expected a 2-D gray or H x W x 3 image, got shape {arr.shape}")
    return arr


def to_bgr(image: np.ndarray) -> np.ndarray:
    """A BGR uint8 H x W x 3 view or copy of a gray, BGR or BGRA image (H x W, H x W x 1, 3
    or 4), in any dtype that :func:`mobilefer.preprocess.to_uint8` takes."""
    import cv2

    img = to_uint8(as_image(image, "image"))
    if img.ndim == 2 or img.shape[2] == 1:
        return cv2.cvtColor(img.reshape(img.shape[:2]), cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if img.shape[2] == 3:
        return img
    raise InputError(f"image: {img.shape[2]} channels; pass gray, BGR or BGRA")


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


def _too_large(p, width: int, height: int, max_pixels: int) -> InputError:
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
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    try:
        data = p.read_bytes()
    except OSError as e:
        why = e.strerror or str(e)
        raise InputError(f"{p}: cannot read the file ({why}); check its permissions") from None
    return decode_image(data, str(p), max_pixels)


def decode_image(data: bytes, name: str = "image", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode the bytes of an image file as :func:`read_image` does; errors name ``name``."""
    import cv2

    if not data:
        raise InputError(f"{name}: empty file (0 bytes)")
    truncated, size = _header_info(data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise _too_large(name, size[0], size[1], max_pixels)
    if truncated:
        raise InputError(f"{name}: truncated image; the file ends early")
    buf = np.frombuffer(data, dtype=np.uint8)
    # IMREAD_COLOR applies the EXIF orientation (IMREAD_UNCHANGED would not) and turns gray,
    # palette, alpha, CMYK and 16-bit images into 8-bit BGR.
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"{name}: not a readable image (corrupt or unknown format)")
    if img.shape[0] * img.shape[1] > max_pixels:
        raise _too_large(name, img.shape[1], img.shape[0], max_pixels)
    return np.ascontiguousarray(img)
