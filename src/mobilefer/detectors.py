"""Face detectors by name: ``haar`` (the paper's OpenCV cascade) and ``yunet`` (OpenCV's DNN).

Conventions: images are BGR uint8 H x W x 3; boxes are ``(x, y, w, h)`` in input-image pixels,
inside the image; ``score`` is the detector's confidence in 0-1 (``None`` for haar).

A detector is anything that meets :class:`Detector`: a ``name`` and ``detect(image,
detect_size=None)`` returning a list of :class:`Detection`. The tracker searches inside a box by
calling ``detect`` on a crop, so that one method serves both.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from .errors import InputError, OptionError, WeightsError

log = logging.getLogger(__name__)

DETECTORS: tuple[str, ...] = ("haar", "yunet")
#: A detector's own detection size (longest side, px) where a call gives none.
DETECT_SIZE = 640

YUNET_FILE = "face_detection_yunet_2023mar.onnx"
YUNET_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
#: Environment variable naming a local YuNet file, used before the packaged one.
YUNET_ENV = "MOBILEFER_YUNET"
#: YuNet's input size until the first frame sets its own (``setInputSize`` per frame size).
YUNET_INPUT_SIZE = (320, 320)
#: Candidate boxes YuNet keeps before non-maximum suppression (OpenCV's default).
YUNET_TOP_K = 5000
#: Native YuNet detectors kept per thread, one per class of input size (:meth:`YuNetDetector._net`).
YUNET_NETS = 4
#: Frames are padded to at least this many pixels a side before YuNet sees them.
YUNET_MIN_SIDE = 64


#: Smallest detection size for photos.
IMAGE_DETECT_SIZE = 640
#: How much a photo may be shrunk for detection: a 40 px face stays 20 px, which YuNet finds
#: (at 2.5x it missed 40 px faces on a 12-megapixel photo; benchmarks/small_faces.py).
IMAGE_MAX_SHRINK = 2.0
#: Largest detection size for photos: it bounds the detector's memory. A 100-megapixel photo
#: searched at half its side (5000 px) peaked at 2.3 GB; at 2048 px, 0.77 GB.
IMAGE_MAX_DETECT_SIZE = 2048
#: YuNet's landmarks lean toward an upright face: on a head tilted 30 degrees, its eye line
#: tilts about 5. A face whose eye line tilts more than :data:`UPRIGHT_DEG` is found again on
#: a copy turned upright (:data:`UPRIGHT_SIDE` px, :data:`UPRIGHT_ROOM` times its box), up to
#: :data:`UPRIGHT_ROUNDS` times, and its landmarks come from there (benchmarks/pose.py).
UPRIGHT_DEG = 3.0
UPRIGHT_ROUNDS = 3
UPRIGHT_SIDE, UPRIGHT_ROOM = 128, 2.0


def image_detect_size(height: int, width: int) -> int:
    """The detection size of a photo: shrunk at most 2x, never below 640 px nor above 2048.
    One policy for ``Recognizer.analyze``, ``predict`` and ``serve``.

    A 4032x3024 phone photo is searched at 2016 px, so faces of about 40 px are found (yunet;
    haar about 60 px; benchmarks/small_faces.py); photos up to 1280 px are searched at 640 px;
    in photos larger than 4096 px faces need to be about side / 100 px.
    """
    side = max(height, width)
    size = min(IMAGE_MAX_DETECT_SIZE, max(IMAGE_DETECT_SIZE, round(side / IMAGE_MAX_SHRINK)))
    return int(min(side, size))


@dataclass(frozen=True)
class Detection:
    """One face: ``box`` is ``(x, y, w, h)`` in input pixels, ``score`` in 0-1 or ``None``;
    ``landmarks`` (yunet only): right eye, left eye, nose tip, right and left mouth corner, as
    ``(x, y)`` in input pixels ("right" is the person's right, on the image's left)."""

    box: tuple[int, int, int, int]
    score: float | None = None
    landmarks: tuple[tuple[float, float], ...] | None = None


@runtime_checkable
class Detector(Protocol):
    """The detector contract. ``name`` appears in every record. ``detect(image, detect_size)``
    takes a BGR uint8 H x W x 3 image and returns its faces, boxes in that image's pixels;
    ``detect_size`` shrinks the image to that longest side before detection (0: never; ``None``:
    the detector's own setting). :class:`HaarDetector` and :class:`YuNetDetector` meet it."""

    name: str

    def detect(self, image: np.ndarray, detect_size: int | None = None) -> list[Detection]: ...


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _verified(path: Path) -> Path:
    digest = _sha256(path)
    if digest != YUNET_SHA256:
        raise WeightsError(
            f"{path}: sha256 {digest[:12]}... does not match {YUNET_FILE}; "
            "point at the file from the OpenCV model zoo"
        )
    return path


def yunet_path(path: str | Path | None = None) -> Path:
    """The YuNet model file: ``path``, else ``$MOBILEFER_YUNET``, else the copy that ships inside
    the package (MIT, 228 KB; NOTICE). A file given is checked by sha256. Raises
    :class:`WeightsError` when no file can be had."""
    given = path or os.environ.get(YUNET_ENV)
    if given:
        p = Path(given).expanduser()
        if not p.is_file():
            raise WeightsError(f"{p}: no such YuNet file (from {'--yunet' if path else YUNET_ENV})")
        return _verified(p)
    packaged = Path(str(resources.files("mobilefer") / "models" / YUNET_FILE))
    if not packaged.is_file():
        raise WeightsError(
            f"{packaged}: YuNet is missing from the package; reinstall mobilefer, "
            f"or set {YUNET_ENV} to a local {YUNET_FILE}"
        )
    return packaged


def downscale(image: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """``image`` shrunk to ``side`` pixels on its longest side (0: as is), and the scale."""
    h, w = image.shape[:2]
    scale = min(1.0, side / max(h, w)) if side else 1.0
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image, scale


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", type(image).__name__)
        raise InputError(f"detectors take BGR uint8 H x W x 3 images, got {shape}")


class HaarDetector:
    """OpenCV's ``haarcascade_frontalface_default.xml``, as the paper uses. Faces come left to
    right, then top to bottom (the cascade's own order varies with its threads).

    Frames are shrunk to ``detect_size`` pixels first (0: never), which makes detection much faster
    and hardly changes it for faces larger than ~40 px in the shrunk frame.
    """

    name = "haar"

    def __init__(
        self, detect_size: int = DETECT_SIZE, scale_factor: float = 1.1, min_neighbors: int = 5
    ):
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self._path = str(path)
        self._local = threading.local()  # one native cascade per thread: it is not thread-safe
        self._local.cascade = cv2.CascadeClassifier(self._path)  # this thread's, checked once
        if self._local.cascade.empty():
            raise WeightsError(
                f"{path}: OpenCV's Haar cascade is missing; reinstall opencv-python-headless<5"
            )
        self.detect_size = detect_size
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors

    def detect(self, image: np.ndarray, detect_size: int | None = None) -> list[Detection]:
        """Faces in a BGR image, found on a copy shrunk to ``detect_size`` (None: the default)."""
        _check_image(image)
        small, scale = downscale(image, self.detect_size if detect_size is None else detect_size)
        gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        # 20 px: the cascade's own window. (It was 5% of the shorter side, which hid every face
        # under ~150 px of a 12-megapixel photo whatever the detection size.)
        min_side = 20
        cascade = getattr(self._local, "cascade", None)
        if cascade is None:
            cascade = self._local.cascade = cv2.CascadeClassifier(self._path)
        boxes = cascade.detectMultiScale(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(min_side, min_side),
        )
        # The cascade's own order varies with its threads: left to right, then top to bottom.
        found = sorted(tuple(int(v) for v in b) for b in (boxes if len(boxes) else []))
        return [Detection(_rescale(b, scale)) for b in found]


class YuNetDetector:
    """OpenCV's YuNet (``cv2.FaceDetectorYN``): fast, accurate, and gives a score per face."""

    name = "yunet"

    def __init__(
        self,
        model: str | Path | None = None,
        detect_size: int = DETECT_SIZE,
        score_threshold: float = 0.7,
        nms_threshold: float = 0.3,
    ):
        self.path = yunet_path(model)
        self.detect_size = detect_size
        self._settings = (score_threshold, nms_threshold)
        # Native detectors per thread (threads sharing one aborted the process: free(): invalid
        # pointer), one per class of input size: a detector keeps its input size between calls,
        # and moving one between a video's full frames and the tracker's small windows cost
        # about 2 ms a move (:meth:`_net`).
        self._local = threading.local()
        self._net(YUNET_INPUT_SIZE)

    def _net(self, size: tuple[int, int]):
        """This thread's ``cv2.FaceDetectorYN`` for inputs of ``size`` (w, h): one per size
        rounded up to 64 px (at most :data:`YUNET_NETS` kept), set to ``size`` exactly (a
        change of a few pixels is cheap; one from 128 to 320 px is not)."""
        nets = getattr(self._local, "nets", None)
        if nets is None:
            nets = self._local.nets = {}
        key = (-(-size[0] // 64), -(-size[1] // 64))
        entry = nets.pop(key, None)  # re-inserted last: the dict is kept in use order
        if entry is None:
            net = cv2.FaceDetectorYN.create(str(self.path), "", size, *self._settings, YUNET_TOP_K)
            entry = [net, size]
            if len(nets) >= YUNET_NETS:
                nets.pop(next(iter(nets)))  # the least recently used
        if entry[1] != size:
            entry[0].setInputSize(size)
            entry[1] = size
        nets[key] = entry
        return entry[0]

    def detect(
        self, image: np.ndarray, detect_size: int | None = None, upright: bool = True
    ) -> list[Detection]:
        """Faces in a BGR image, found on a copy shrunk to ``detect_size`` (None: the default);
        with ``upright`` (the default), the landmarks of tilted faces are found again on an
        upright copy (:data:`UPRIGHT_DEG`)."""
        _check_image(image)
        size = self.detect_size if detect_size is None else detect_size
        out = []
        for box, score, marks in self._find(image, size):
            marks = self._upright(image, box, marks) if upright else marks
            out.append(Detection(box, score, tuple((float(x), float(y)) for x, y in marks)))
        return out

    def _find(self, image: np.ndarray, detect_size: int) -> list[tuple]:
        """YuNet's faces: ``(box, score, landmarks as a 5 x 2 array)``, in ``image`` pixels."""
        small, scale = downscale(image, detect_size)
        h, w = small.shape[:2]
        # YuNet's coarsest feature map has a stride of 32: below that size (a thumbnail, a
        # 1000x8 banner) it read past its input and returned random or infinite boxes. Padding
        # (bottom and right, so coordinates keep their origin) gives it a defined input.
        ph, pw = max(h, YUNET_MIN_SIDE), max(w, YUNET_MIN_SIDE)
        if (ph, pw) != (h, w):
            small = cv2.copyMakeBorder(small, 0, ph - h, 0, pw - w, cv2.BORDER_CONSTANT, value=0)
        _, rows = self._net((pw, ph)).detect(small)
        out = []
        for r in () if rows is None else rows:
            box = inside(r[:4], w, h)
            if box is not None:
                out.append(
                    (
                        _rescale(box, scale),
                        float(np.clip(r[-1], 0, 1)),
                        r[4:14].reshape(5, 2).astype(np.float64) / scale,
                    )
                )
        return out

    def _upright(self, image: np.ndarray, box, marks: np.ndarray) -> np.ndarray:
        """The landmarks of the face at ``box``, found again on copies turned upright while its
        eye line tilts (see :data:`UPRIGHT_DEG`)."""
        side = UPRIGHT_ROOM * max(box[2], box[3])
        for _ in range(UPRIGHT_ROUNDS):
            tilt = np.degrees(np.arctan2(*(marks[1] - marks[0])[::-1]))
            if not abs(tilt) > UPRIGHT_DEG:  # also when it is not a number
                break
            centre = marks.mean(axis=0)
            turn = cv2.getRotationMatrix2D(
                (float(centre[0]), float(centre[1])), float(tilt), UPRIGHT_SIDE / side
            )
            turn[:, 2] += UPRIGHT_SIDE / 2 - centre
            upright = cv2.warpAffine(
                image,
                turn,
                (UPRIGHT_SIDE, UPRIGHT_SIDE),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REPLICATE,
            )
            found = self._find(upright, 0)
            if not found:
                break
            middle = min(
                (f[2] for f in found),  # the face nearest the copy's centre
                key=lambda pts: float(np.hypot(*(pts.mean(0) - UPRIGHT_SIDE / 2))),
            )
            back = cv2.invertAffineTransform(turn)
            marks = middle @ back[:, :2].T + back[:, 2]
        return marks


def inside(box, width: int, height: int, min_overlap: float = 0.5):
    """``box`` (x, y, w, h) clipped to a ``width`` x ``height`` image, or None when it is not
    finite, has no area, or keeps less than ``min_overlap`` of its area inside the image."""
    x, y, w, h = (float(v) for v in box)
    if not all(np.isfinite((x, y, w, h))) or w <= 0 or h <= 0:
        return None
    x0, y0 = max(x, 0.0), max(y, 0.0)
    x1, y1 = min(x + w, float(width)), min(y + h, float(height))
    if x1 - x0 < 1 or y1 - y0 < 1 or (x1 - x0) * (y1 - y0) < min_overlap * w * h:
        return None
    return x0, y0, x1 - x0, y1 - y0


def _rescale(box, scale: float) -> tuple[int, int, int, int]:
    return tuple(int(round(float(v) / scale)) for v in box)  # type: ignore[return-value]


def create_detector(name: str = "auto", **options) -> HaarDetector | YuNetDetector:
    """A detector by name: ``haar``, ``yunet``, or ``auto`` (yunet if its file can be had, else
    haar with one warning). Unknown names raise ``ValueError`` listing the valid ones."""
    key = name.strip().lower()
    if key == "auto":
        try:
            return YuNetDetector(**options)
        except WeightsError as e:
            log.warning("YuNet unavailable, using haar: %s", e)
            options.pop("model", None)
            return HaarDetector(detect_size=options.get("detect_size", DETECT_SIZE))
    if key == "haar":
        options.pop("model", None)
        return HaarDetector(**options)
    if key == "yunet":
        return YuNetDetector(**options)
    raise OptionError(f"unknown detector {name!r}; choose from {', '.join(DETECTORS)}")
