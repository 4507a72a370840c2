"""The results types: :class:`Face` (one classified face) and :class:`Result` (the faces of
one frame of one source), shared by the recognizer, the stream and every front end. Their
records follow the one record format, :mod:`mobilefer.records`.

Conventions: boxes are ``(x, y, w, h)`` in input-image pixels; ``scores`` map each label of the
model to a probability, summing to 1; images are BGR uint8 H x W x 3.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal

import numpy as np

from .action_units import action_units
from .pose import head_pose
from .records import records

#: What a :class:`Result` comes from (see its docstring).
Kind = Literal["image", "video", "webcam", "array", "error", "skipped"]


@dataclass(frozen=True)
class Face:
    """One classified face.

    ``box`` is ``(x, y, w, h)`` in input pixels; ``scores`` maps each label to a probability
    (they sum to 1); ``label`` is the most likely one; ``detector`` names the face detector
    (``None`` for crops given to :meth:`Recognizer.classify`) and ``detector_score`` its
    confidence (``None`` where it gives none); ``track_id`` identifies a face across video frames.
    ``landmarks`` (yunet only): right eye, left eye, nose tip, right and left mouth corner, as
    ``(x, y)`` in input pixels ("right" is the person's right); they are not in the records.
    ``yaw``, ``pitch``, ``roll``: which way the face looks, in degrees (:mod:`mobilefer.pose`:
    yaw > 0 toward the image's right, pitch > 0 up, roll > 0 clockwise), from the landmarks;
    ``None`` without them (haar). A face turned further than the ``max_yaw`` option is found
    but not scored: its ``label``, ``scores`` and ``score`` are ``None`` (``scored`` False).
    ``calibrated``: its scores were calibrated on the person's neutral face
    (:mod:`mobilefer.calibration`).
    ``action_units`` (the ``mesh`` option): FACS unit -> intensity 0-1, 0.5 meaning present
    (:mod:`mobilefer.action_units`: MediaPipe's estimates, not a FACS coder's), and the angles
    come from the face mesh; ``blendshapes`` (the ``blendshapes`` option): MediaPipe's 52 scores,
    0-1. Both ``None`` without the mesh, or where the mesh saw no face in the box.
    """

    box: tuple[int, int, int, int]
    label: str | None
    scores: dict[str, float] | None
    detector: str | None = None
    detector_score: float | None = None
    track_id: int | None = None
    landmarks: tuple[tuple[float, float], ...] | None = None
    yaw: float | None = None
    pitch: float | None = None
    roll: float | None = None
    calibrated: bool = False
    action_units: dict[str, float] | None = None
    blendshapes: dict[str, float] | None = None

    @property
    def score(self) -> float | None:
        """The probability of ``label`` (``None`` for a face not scored)."""
        return None if self.label is None else self.scores[self.label]

    @property
    def scored(self) -> bool:
        """Whether the face was classified (False: turned beyond ``max_yaw``)."""
        return self.label is not None

    @classmethod
    def from_probs(
        cls,
        probs,
        labels,
        detection,
        detector: str | None,
        track_id=None,
        max_yaw: float | None = None,
    ) -> Face:
        """The face of a detection (anything with ``box``, ``score`` and ``landmarks``) given
        its probabilities in ``labels`` order; the label is the most likely one. Its angles come
        from the landmarks; with ``max_yaw``, a face whose ``|yaw|`` is larger is not scored."""
        marks = getattr(detection, "landmarks", None)
        angles = head_pose(marks) or (None, None, None)
        box = tuple(int(v) for v in detection.box)
        if max_yaw is not None and angles[0] is not None and abs(angles[0]) > max_yaw:
            return cls(box, None, None, detector, detection.score, track_id, marks, *angles)
        scores = {name: float(v) for name, v in zip(labels, probs, strict=True)}
        return cls(
            box,
            labels[int(np.argmax(probs))],
            scores,
            detector,
            detection.score,
            track_id,
            marks,
            *angles,
        )

    def with_mesh(
        self, mesh, blendshapes: bool = False, max_yaw: float | None = None, fusion=None
    ) -> Face:
        """This face with its mesh (a :class:`mobilefer.mesh.MeshFace`; ``None`` where the mesh
        saw no face: the face keeps its five-point angles, which then decide ``max_yaw``): the
        mesh's angles replace the five-point ones, its action units are added (and its 52
        blendshapes, with ``blendshapes``); with ``max_yaw``, a face the mesh finds turned
        further is not scored; with a ``fusion``
        (:class:`mobilefer.fusion.Fusion`), its scores become the network's and the
        blendshapes' together."""
        if mesh is None:  # its five-point angles stand, and decide ``max_yaw``
            if max_yaw is not None and self.yaw is not None and abs(self.yaw) > max_yaw:
                return replace(self, label=None, scores=None)
            return self
        yaw, pitch, roll = mesh.angles
        changes: dict = {"yaw": yaw, "pitch": pitch, "roll": roll}
        changes["action_units"] = action_units(mesh.blendshapes)
        if blendshapes:
            changes["blendshapes"] = dict(mesh.blendshapes)
        if max_yaw is not None and abs(yaw) > max_yaw:
            changes |= {"label": None, "scores": None}
        elif fusion is not None and self.scores is not None:
            scores = fusion.face_scores(self.scores, mesh.blendshapes)
            changes |= {"scores": scores, "label": max(scores, key=scores.get)}
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain JSON-ready data (every field; landmarks as lists)."""
        marks = None if self.landmarks is None else [list(p) for p in self.landmarks]
        return asdict(self) | {"box": list(self.box), "landmarks": marks, "score": self.score}


@dataclass(frozen=True)
class Result:
    """The faces of one frame of one source.

    ``kind``: image, video, webcam, array, error (a spec that names nothing), or skipped (a
    file that is neither image nor video, or a link to a folder, which is not followed:
    ``skip`` says which, ``"other"`` or ``"link"``, and ``reason`` in words). ``reason`` of an
    image: a note on what was read (the first page of a multi-page file).
    ``image``: the BGR frame (None when it could not be read). ``frame`` and ``time`` (s) count
    video, webcam and array frames (None for images). ``root``: the folder given as input that
    the source was found in. ``error``: why the input could not be read (then no faces).
    ``fps``: the video's frame rate where known. ``detector``: the detector's name.
    """

    source: str
    kind: Kind
    faces: tuple[Face, ...] = ()
    image: np.ndarray | None = None
    frame: int | None = None
    time: float | None = None
    root: str | None = None
    error: str | None = None
    fps: float | None = None
    detector: str | None = None
    reason: str | None = None
    skip: str | None = None

    def records(self) -> list[dict]:
        """JSON-ready records, one per face, or one no-face record (see :mod:`mobilefer.records`).
        Errors and skipped files give none."""
        if self.error or self.kind == "skipped":
            return []
        return records(self.source, self.faces, self.frame, self.time, self.detector)

    def draw(self, fps: float | None = None) -> np.ndarray:
        """A copy of the frame with boxes, labels and scores drawn (and frames/s, if given)."""
        from .annotate import draw

        if self.image is None:
            from .errors import InputError

            raise InputError(f"{self.source}: no image to draw ({self.error or self.kind})")
        return draw(self.image, list(self.faces), fps)
