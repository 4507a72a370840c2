"""Images in: reading files (upright, checked before decoding), one dtype policy, and the
file suffixes mobilefer treats as images and videos. The layer below :mod:`mobilefer.sources`,
:mod:`mobilefer.data` and :mod:`mobilefer.preprocess`, so none of them imports another for these.

Conventions: images come out as BGR uint8 H x W x 3 (:func:`to_bgr`) or 2-D gray uint8
(:func:`to_gray`); gray, BGR and BGRA inputs of dtype uint8, uint16, float or bool are taken, as
:func:`to_uint8` says.
"""

from __future__ import annotations

import io
import os
import stat
import tempfile
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import InputError, LimitError

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm", ".jp2"}
)
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
)
#: Images with more pixels than this are refused from their header, before decoding
#: (``--max-pixels`` raises it).
MAX_PIXELS = 120_000_000
_PILLOW_LIMIT = threading.Lock()
#: Formats whose files may hold several images (pages); only the first is read.
MULTIPAGE_FORMATS = frozenset({"TIFF", "MPO", "GIF"})


def check_regular(path: str | Path) -> None:
    """Raise :class:`InputError` unless ``path`` is a regular file (after links): a pipe, a
    device or a socket is never opened, since reading one may block forever or never end."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError(f"{printable(path)}: no such file") from None
    except OSError as e:
        raise InputError(f"{printable(path)}: cannot read the file ({e.strerror or e})") from None
    if not stat.S_ISREG(mode):
        what = "a folder" if stat.S_ISDIR(mode) else "a pipe, device or socket"
        raise InputError(
            f"{printable(path)}: not a regular file ({what}); pass an image or video file"
        )


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


#: Control characters (a newline in a file name would split a message in two), as \xNN.
_CONTROL = {i: f"\\x{i:02x}" for i in (*range(32), 127)}


def printable(path: str | Path) -> str:
    """A path (or a message) for one line of text: undecodable bytes and control characters
    shown as \\xNN, never a crash."""
    return str(path).encode("utf-8", "backslashreplace").decode("utf-8").translate(_CONTROL)


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
    img = to_uint8(image)
    if img.size == 0:
        raise InputError(f"empty image of shape {img.shape}; pass one with pixels")
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
    or 4), in any dtype that :func:`to_uint8` takes."""
    img = to_uint8(as_image(image, "image"))
    if img.ndim == 2 or img.shape[2] == 1:
        return cv2.cvtColor(img.reshape(img.shape[:2]), cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if img.shape[2] == 3:
        return img
    raise InputError(f"image: {img.shape[2]} channels; pass gray, BGR or BGRA")


def _jpeg_ends(data: bytes) -> bool:
    """Whether JPEG data reaches its EOI marker (walking the segments, then the scan data)."""
    i, n = 2, len(data)
    while i + 2 <= n:
        if data[i] != 0xFF:
            return False  # not a marker where one must be: damaged
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD9:
            return True
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            i += 2
            continue
        if i + 4 > n:
            return False
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        if marker == 0xDA:  # entropy-coded data: runs to the next marker that is not RSTn/FF00
            while True:
                j = data.find(b"\xff", i)
                if j < 0 or j + 1 >= n:
                    return False
                nxt = data[j + 1]
                if nxt == 0x00 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF:
                    i = j + 1 if nxt == 0xFF else j + 2
                    continue
                i = j
                break
    return False


def _png_ends(data: bytes) -> bool:
    """Whether PNG data reaches its IEND chunk."""
    i, n = 8, len(data)
    while i + 8 <= n:
        end = i + 12 + int.from_bytes(data[i : i + 4], "big")
        if end > n:
            return False
        if data[i + 4 : i + 8] == b"IEND":
            return True
        i = end
    return False


def _truncated(data: bytes) -> bool:
    """Whether PNG or JPEG data ends before its image does (OpenCV would decode the part it
    has, grey below). Data after the end (motion photos: a JPEG, then a video) is no damage."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return not _png_ends(data)
    if data.startswith(b"\xff\xd8"):
        return not _jpeg_ends(data)
    return False


def header(data: bytes, name: str = "image") -> tuple[int, int, int]:
    """``(width, height, pages)`` of image bytes, read by Pillow from the header alone (nothing
    is decoded). Raises :class:`InputError` for data whose size cannot be read so: every image
    is measured before it is decoded, whatever its format."""

    try:
        # Pillow's own bomb check would hide the size; ours applies, to every format. The lock
        # keeps the switch from other threads of this process.
        with _PILLOW_LIMIT, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                with Image.open(io.BytesIO(data)) as im:
                    width, height = im.size
                    many = im.format in MULTIPAGE_FORMATS
                    pages = getattr(im, "n_frames", 1) if many else 1
            finally:
                Image.MAX_IMAGE_PIXELS = limit
    except UnidentifiedImageError:
        raise InputError(
            f"{name}: not a readable image (unknown format, or its size cannot be read from "
            "its header); pass a JPEG, PNG, BMP, TIFF, WebP, PNM or JPEG 2000 file"
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:  # damaged headers
        raise InputError(f"{name}: not a readable image ({e})") from None
    return width, height, pages


#: How a user may raise :data:`MAX_PIXELS`, as errors say it (the CLI's option).
RAISE_LIMIT = "shrink it, or raise the limit (--max-pixels)"


def _too_large(p, width: int, height: int, max_pixels: int, advice: str) -> LimitError:
    return LimitError(
        f"{p}: {width}x{height} is {width * height:,} pixels, over the limit of {max_pixels:,}; "
        + advice
    )


def read_image(
    path: str | Path, max_pixels: int = MAX_PIXELS, max_bytes: int | None = None
) -> np.ndarray:
    """The image of :func:`read_image_pages`, without its page count."""
    return read_image_pages(path, max_pixels, max_bytes)[0]


def read_image_pages(
    path: str | Path, max_pixels: int = MAX_PIXELS, max_bytes: int | None = None
) -> tuple[np.ndarray, int]:
    """``(image, pages)``: an image file as BGR uint8 H x W x 3, upright as its EXIF
    orientation says (gray, RGBA, palette, CMYK and 16-bit files are converted), and how many
    pages the file holds: only the first is read.

    Checked before anything is read or decoded: the file must be a regular one of at most
    ``max_bytes`` (default :func:`max_file_bytes` of ``max_pixels``), and its header must
    declare at most ``max_pixels``. Raises :class:`InputError` for a missing, irregular,
    unreadable, empty, oversized, truncated or corrupt file.
    """
    p = Path(path)
    check_regular(p)
    limit = max_file_bytes(max_pixels) if max_bytes is None else max_bytes
    size = p.stat().st_size
    if size > limit:
        raise LimitError(
            f"{printable(p)}: {size:,} bytes, over the limit of {limit:,} for an image file; "
            "raise it with --max-pixels (the file limit grows with it) if the file is real"
        )
    try:
        data = p.read_bytes()
    except OSError as e:
        why = e.strerror or str(e)
        raise InputError(
            f"{printable(p)}: cannot read the file ({why}); check its permissions"
        ) from None
    except MemoryError:
        raise InputError(f"{printable(p)}: not enough memory to read the file") from None
    return decode_pages(data, printable(p), max_pixels)


def max_file_bytes(max_pixels: int = MAX_PIXELS) -> int:
    """The largest image file read whole: 4 bytes per allowed pixel (16-bit RGBA, uncompressed,
    is 8; real photos are far under 1), and never under 64 MB."""
    return max(64 * 2**20, 4 * max_pixels)


def decode_image(
    data: bytes, name: str = "image", max_pixels: int = MAX_PIXELS, advice: str = RAISE_LIMIT
) -> np.ndarray:
    """Decode the bytes of an image file as :func:`read_image` does; errors name ``name``, and
    an image over ``max_pixels`` is refused with ``advice`` (what to do about it)."""
    return decode_pages(data, name, max_pixels, advice)[0]


def decode_pages(
    data: bytes, name: str = "image", max_pixels: int = MAX_PIXELS, advice: str = RAISE_LIMIT
) -> tuple[np.ndarray, int]:
    """:func:`decode_image`, and the number of pages the header declares."""
    if not data:
        raise InputError(f"{name}: empty file (0 bytes)")
    if _truncated(data):
        raise InputError(f"{name}: truncated image; the file ends early")
    width, height, pages = header(data, name)
    if width * height > max_pixels:
        raise _too_large(name, width, height, max_pixels, advice)
    buf = np.frombuffer(data, dtype=np.uint8)
    # IMREAD_COLOR applies the EXIF orientation (IMREAD_UNCHANGED would not) and turns gray,
    # palette, alpha, CMYK and 16-bit images into 8-bit BGR.
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"{name}: not a readable image (corrupt or unknown format)")
    if img.shape[0] * img.shape[1] > max_pixels:
        raise _too_large(name, img.shape[1], img.shape[0], max_pixels, advice)
    return np.ascontiguousarray(img), pages
