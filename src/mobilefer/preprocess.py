"""Face crop -> model input: the one preprocessing path that training and inference share.

Conventions: images are numpy arrays, BGR (or BGRA, or 2-D gray), uint8 or uint16, H x W [x C];
boxes are ``(x, y, w, h)`` in image pixels. The model sees what FER2013 is made of: a 48x48 gray
face, resized to the model's input size and normalised with the mean/std stored in the model file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .errors import InputError
from .image import to_gray

#: ImageNet's per-channel statistics (0-1 scale), which the backbone was trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: FER2013's face size; every crop passes through it, so inference sees training's domain.
SOURCE_SIZE = 48
#: The zooms a model file may ask for (:attr:`Preprocessing.zoom`), both ends included.
ZOOM_RANGE = (0.5, 2)
#: The crop margins allowed (:attr:`Preprocessing.margin`), both ends included: below 0 a
#: detector box shrinks about its centre (a closer view), above 0 it grows.
MARGIN_RANGE = (-0.4, 1.0)


@dataclass(frozen=True)
class Preprocessing:
    """How a model wants its faces: stored in, and read from, the model file's metadata."""

    input_size: int = 112  # pixels, square
    channels: int = 3  # the gray face is repeated to this many channels
    mean: tuple[float, ...] = IMAGENET_MEAN  # per channel, on the 0-1 scale
    std: tuple[float, ...] = IMAGENET_STD
    margin: float = 0.0  # a detector box grows (< 0: shrinks) by this fraction of its size a side
    zoom: float = 1.0  # the model sees the central 1/zoom of the 48x48 face (chosen at export)


def expand_box(
    box: Sequence[float], margin: float, width: int, height: int
) -> tuple[int, int, int, int]:
    """Grow ``(x, y, w, h)`` by ``margin`` of its size on each side, clipped to the image.

    The result is an integer box inside ``width`` x ``height`` with w, h >= 1.
    """
    x, y, w, h = (float(v) for v in box)
    x0 = int(round(x - margin * w))
    y0 = int(round(y - margin * h))
    x1 = int(round(x + w + margin * w))
    y1 = int(round(y + h + margin * h))
    x0 = min(max(x0, 0), max(width - 1, 0))
    y0 = min(max(y0, 0), max(height - 1, 0))
    x1 = min(max(x1, x0 + 1), width)
    y1 = min(max(y1, y0 + 1), height)
    return x0, y0, x1 - x0, y1 - y0


def square_box(box: Sequence[float]) -> tuple[float, float, float, float]:
    """The square ``(x, y, s, s)`` with the same centre as ``box`` and its longer side."""
    x, y, w, h = (float(v) for v in box)
    s = max(w, h)
    return x + (w - s) / 2, y + (h - s) / 2, s, s


def crop(
    image: np.ndarray, box: Sequence[float], margin: float = 0.0, square: bool = True
) -> np.ndarray:
    """Cut the face at ``box`` out of ``image``: squared (longer side, same centre), then grown
    by ``margin`` of its size on each side and clipped to the image; a view, not a copy.

    Squaring makes both detectors' crops frame a face as FER2013 does: measured on 300
    PublicTest faces, the squared haar and yunet boxes match the 48x48 frame within 2%.
    """
    h, w = image.shape[:2]
    x, y, bw, bh = expand_box(square_box(box) if square else box, margin, w, h)
    return image[y : y + bh, x : x + bw]


def face_48(face: np.ndarray) -> np.ndarray:
    """Return a face crop as FER2013 stores faces: 48x48 gray uint8."""
    gray = to_gray(face)
    if gray.shape == (SOURCE_SIZE, SOURCE_SIZE):
        return gray
    if gray.size == 0:
        raise InputError("empty face crop; the box lies outside the image")
    return cv2.resize(gray, (SOURCE_SIZE, SOURCE_SIZE), interpolation=cv2.INTER_AREA)


def zoom_map(zoom: float, size: int) -> np.ndarray:
    """The inverse affine map (for ``cv2.warpAffine`` with ``WARP_INVERSE_MAP``) from a
    ``size`` x ``size`` output to the central 1/``zoom`` of a 48x48 face; pixel centres at +0.5,
    as ``cv2.resize`` and ``align_corners=False`` place them."""
    a = SOURCE_SIZE / (zoom * size)
    b = SOURCE_SIZE / 2 * (1 - 1 / zoom) + 0.5 * a - 0.5
    return np.array([[a, 0.0, b], [0.0, a, b]], dtype=np.float64)


def prepare(faces: Sequence[np.ndarray], pre: Preprocessing) -> np.ndarray:
    """Turn face crops into one float32 batch of shape N x C x S x S for the model.

    Each crop (any size, gray/BGR/BGRA) becomes 48x48 gray (area resampling), then S x S
    (bilinear, as ``torch.nn.functional.interpolate`` with ``align_corners=False``), is scaled to
    0-1 and normalised with ``pre.mean`` / ``pre.std``. With ``pre.zoom`` > 1 the S x S image
    shows only the central 1/zoom of the 48x48 face: a closer view.
    """
    size = pre.input_size
    out = np.empty((len(faces), pre.channels, size, size), dtype=np.float32)
    mean = np.asarray(pre.mean, dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(pre.std, dtype=np.float32).reshape(-1, 1, 1)
    warp = None if pre.zoom == 1 else zoom_map(pre.zoom, size)
    for i, face in enumerate(faces):
        # Resized in float32: bit-for-bit the bilinear resize that training does in torch.
        small = face_48(face).astype(np.float32) * (1 / 255.0)
        if warp is None:
            out[i] = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)[None]
        else:
            out[i] = cv2.warpAffine(
                small,
                warp,
                (size, size),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_REPLICATE,
            )[None]
    out -= mean
    out /= std
    return out
