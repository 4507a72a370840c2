"""A light face tracker for video and webcam streams, with per-face score smoothing.

Full-frame detection runs every ``detect_every`` frames (and whenever no face is tracked); on
the frames between, each tracked face is searched for only in a small window around its last
box, shrunk to ``window_side`` pixels, which costs a fraction of a full-frame detection. Scores
are smoothed per track with an exponential moving average, so labels stop flickering.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .detectors import Detection, downscale
from .image import to_bgr
from .options import DETECT_EVERY, SMOOTHING, check_option
from .preprocess import expand_box

#: ``detect(image, detect_size)``: the faces of a BGR image (a
#: :class:`mobilefer.detectors.Detector`'s ``detect``).
DetectFn = Callable[[np.ndarray, "int | None"], list[Detection]]
#: ``classify(image, detections)``: one row of probabilities per detection (N x classes).
ClassifyFn = Callable[[np.ndarray, list[Detection]], np.ndarray]


def iou(a, b) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


@dataclass
class _Track:
    id: int
    detection: Detection
    probs: np.ndarray | None = None
    missed: int = 0


@dataclass(frozen=True)
class Tracked:
    """A face of the latest frame: its track's id, its detection and its smoothed
    probabilities (in the classifier's class order, summing to 1)."""

    track_id: int
    detection: Detection
    probs: np.ndarray


#: The longest side (px) a search window is shrunk to: the face, half the window, stays about
#: 64 px, which both detectors find; at 160 px YuNet's search took 1.8 ms a frame, at 128 1.2
#: (the largest cost of a tracked frame once the model is int8; benchmarks/speed.py).
WINDOW_SIDE = 128
#: Between full detections a face is searched for in its last box grown by this fraction of its
#: size on each side: room for a face that moved by half its width in one frame.
WINDOW_MARGIN = 0.5


class FaceTracker:
    """Per-frame faces for a stream of BGR frames, tracked and smoothed.

    It is given the parts it uses: ``detect`` (:data:`DetectFn`, full frames and the windows
    around tracked faces) and ``classify`` (:data:`ClassifyFn`, the faces of a frame at once).
    ``detect_every``: full-frame detection period in frames (1: every frame, no tracking).
    ``smoothing``: weight of the past in the moving average of scores (0: none).
    ``max_missed``: frames a face may go unseen before its track ends.
    ``detect_size``: longest side frames are shrunk to for full-frame detection (None: the
    detector's own setting).
    """

    def __init__(
        self,
        detect: DetectFn,
        classify: ClassifyFn,
        detect_every: int = DETECT_EVERY,
        smoothing: float = SMOOTHING,
        iou_threshold: float = 0.3,
        max_missed: int = 5,
        window_side: int = WINDOW_SIDE,
        detect_size: int | None = None,
    ) -> None:
        check_option("detect_every", detect_every)
        check_option("smoothing", smoothing)
        self.detect_size = detect_size
        self.detect, self.classify = detect, classify
        self.detect_every = detect_every
        self.smoothing = smoothing
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self.window_side = window_side
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._frame = 0

    def _search_window(self, image: np.ndarray, det: Detection) -> Detection | None:
        """The detection nearest ``det`` inside a window around it, or None."""
        h, w = image.shape[:2]
        x, y, bw, bh = expand_box(det.box, WINDOW_MARGIN, w, h)
        small, scale = downscale(image[y : y + bh, x : x + bw], self.window_side)
        found = self.detect(np.ascontiguousarray(small), None)
        best, best_iou = None, 0.0
        for f in found:
            fx, fy, fw, fh = (v / scale for v in f.box)
            box = (int(round(fx + x)), int(round(fy + y)), int(round(fw)), int(round(fh)))
            overlap = iou(box, det.box)
            if overlap > best_iou:
                marks = (
                    None
                    if f.landmarks is None
                    else tuple((px / scale + x, py / scale + y) for px, py in f.landmarks)
                )
                best, best_iou = Detection(box, f.score, marks), overlap
        return best if best_iou >= self.iou_threshold else None

    def _match(self, detections: list[Detection]) -> None:
        """Assign full-frame detections to tracks by greedy IoU; start tracks for the rest."""
        free = list(range(len(detections)))
        for t in self._tracks:
            scores = [(iou(t.detection.box, detections[i].box), i) for i in free]
            best = max(scores, default=(0.0, -1))
            if best[0] >= self.iou_threshold:
                t.detection, t.missed = detections[best[1]], 0
                free.remove(best[1])
            else:
                t.missed += 1
        for i in free:
            self._tracks.append(_Track(self._next_id, detections[i]))
            self._next_id += 1

    def update(self, image: np.ndarray) -> list[Tracked]:
        """The faces of the next frame (BGR), each with its track and smoothed probabilities."""
        image = to_bgr(image)
        if self._frame % self.detect_every == 0 or not self._tracks:
            self._match(self.detect(image, self.detect_size))
        else:
            for t in self._tracks:
                found = self._search_window(image, t.detection)
                if found is None:
                    t.missed += 1
                else:
                    t.detection, t.missed = found, 0
        self._frame += 1
        self._tracks = [t for t in self._tracks if t.missed <= self.max_missed]
        live = [t for t in self._tracks if t.missed == 0]
        probs = self.classify(image, [t.detection for t in live]) if live else []
        for t, p in zip(live, probs, strict=True):
            t.probs = p if t.probs is None else self.smoothing * t.probs + (1 - self.smoothing) * p
        return [Tracked(t.id, t.detection, t.probs) for t in live]
