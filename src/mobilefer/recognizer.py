"""The Recognizer: a face detector (:mod:`mobilefer.detectors`) and an expression model
(:mod:`mobilefer.model`) together, for images, crops and streams.

Conventions: images are BGR uint8 H x W x 3 (gray and BGRA are accepted and converted); boxes
are ``(x, y, w, h)`` in input-image pixels; ``scores`` maps each label of the model (its file
says which: :data:`mobilefer.EMOTIONS` for the default) to a probability; they sum to 1.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .detectors import DETECT_SIZE, Detection, Detector, create_detector, image_detect_size
from .errors import InputError, MissingExtraError, OptionError
from .image import as_image, to_bgr
from .model import ExpressionModel, model_digest
from .options import Options, check_option
from .preprocess import crop
from .results import Face

if TYPE_CHECKING:
    from .calibration import Calibration
    from .results import Result


def calibrated(result: Result, calibration: Calibration) -> Result:
    """``result`` with every scored face calibrated (:meth:`Calibration.face`)."""
    return replace(result, faces=tuple(calibration.face(f) for f in result.faces))


class Recognizer:
    """Finds faces with a detector and classifies their expressions with a model (no torch).

    ``model``: an :class:`ExpressionModel`, or what it opens: a shipped model by name
    (``"fer2013"``, the default, or ``"ferplus"``) or a model file from ``mobilefer export``.
    ``detector``: ``"auto"`` (yunet if available, else haar), ``"haar"`` or ``"yunet"``, or any
    :class:`mobilefer.detectors.Detector`. ``threads``, ``flip_tta``, ``prior_tau`` and ``device``
    (``cpu``, ``cuda`` or ``auto``) open the model (see :class:`ExpressionModel`; with a model
    object, set them there). ``margin``: grow detector boxes by this fraction of their size on
    each side before cropping, -0.4 to 1 (below 0 they shrink: a closer view; ``None``: as the
    model file says).
    ``detect_size`` (the detector's own detection size: the longest side video and live frames
    are shrunk to where a call gives none; photos are searched by their own size,
    :func:`mobilefer.detectors.image_detect_size`) and ``yunet`` (a local YuNet file) set up a
    detector given by name.
    ``max_yaw``: faces turned further than this (degrees, either way; :mod:`mobilefer.pose`) are
    found but not scored (their label and scores are ``None``); yunet gives the angles.
    ``mesh``: each face found also gets MediaPipe's face mesh (:mod:`mobilefer.mesh`, the
    ``[mesh]`` extra): its angles replace the five-point ones, and its ``action_units`` are set
    (``blendshapes``: its 52 scores too; implies ``mesh``).
    """

    def __init__(
        self,
        model: ExpressionModel | str | Path | None = None,
        detector: Detector | str = "auto",
        threads: int | None = None,
        flip_tta: bool | None = None,
        margin: float | None = None,
        detect_size: int = DETECT_SIZE,
        yunet: str | Path | None = None,
        prior_tau: float | None = None,
        device: str = "cpu",
        max_yaw: float | None = None,
        mesh: bool = False,
        blendshapes: bool = False,
    ) -> None:
        check_option("margin", margin)
        check_option("mesh", mesh)
        check_option("blendshapes", blendshapes)
        check_option("max_yaw", max_yaw)
        #: Faces turned further than this (degrees) are not scored; None: all are.
        self.max_yaw = max_yaw
        check_option("detect_size", detect_size)
        if isinstance(model, ExpressionModel):
            given = [
                n
                for n, v in (
                    ("threads", threads),
                    ("flip_tta", flip_tta),
                    ("prior_tau", prior_tau),
                    ("device", None if device == "cpu" else device),
                )
                if v is not None
            ]
            if given:
                raise OptionError(
                    f"{', '.join(given)}: set them on the ExpressionModel passed as model"
                )
        else:
            model = ExpressionModel(
                model, threads=threads, flip_tta=flip_tta, prior_tau=prior_tau, device=device
            )
        #: The expression model: card, labels, ``predict_proba``.
        self.model = model
        self.margin = self.card.preprocessing.margin if margin is None else margin
        if isinstance(detector, str):
            options = {"detect_size": detect_size}
            if yunet and detector != "haar":
                options["model"] = yunet
            detector = create_detector(detector, **options)
        elif not isinstance(detector, Detector):
            raise OptionError(
                f"detector {type(detector).__name__}: pass auto, haar, yunet, or "
                "an object with a name and detect(image, detect_size)"
            )
        #: The face detector.
        self.detector = detector
        #: The face mesh (:class:`mobilefer.mesh.FaceMesh`) when ``mesh`` or ``blendshapes``
        #: is on, else None; ``blendshapes``: whether faces keep its 52 scores.
        self.mesh = None
        self.blendshapes = bool(blendshapes)
        #: With the mesh, the model file's shipped fusion of its scores with the blendshapes
        #: (:mod:`mobilefer.fusion`), or None.
        self.fusion = None
        if mesh or blendshapes:
            try:
                from .mesh import FaceMesh

                self.mesh = FaceMesh()
            except ImportError as e:
                raise MissingExtraError(
                    "the face mesh (mesh option, --mesh)", "mesh", e.name
                ) from None
            from .fusion import shipped_fusion

            self.fusion = shipped_fusion(self.model_path)

    @classmethod
    def from_options(cls, options: Options) -> Recognizer:
        """The Recognizer of an :class:`mobilefer.options.Options` record (checked first)."""
        return cls(**options.check().recognizer_options())

    @property
    def card(self):
        """The model's :class:`mobilefer.modelcard.ModelCard`."""
        return self.model.card

    @property
    def model_path(self) -> str:
        """The model file's path."""
        return self.model.path

    @property
    def flip_tta(self) -> bool:
        """Whether each face is averaged with its mirror image."""
        return self.model.flip_tta

    @property
    def labels(self) -> tuple[str, ...]:
        """The model's class names, in output order (from its model file)."""
        return self.card.labels

    def predict_proba(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """The model's probabilities for face crops (see :meth:`ExpressionModel.predict_proba`)."""
        return self.model.predict_proba(crops)

    def classify(
        self, crops: Sequence[np.ndarray], calibration: Calibration | None = None
    ) -> list[Face]:
        """Classify faces that are already cropped: one :class:`Face` per crop, in order.

        ``crops`` is a list of images (gray, BGR or BGRA, any dtype :func:`to_bgr` takes), or
        one N x H x W array of gray crops. Each face's box is the whole crop, ``(0, 0, w, h)``,
        and its detector is ``None``. ``calibration`` (:meth:`calibrate`): the person's.
        """
        cal = self._checked(calibration)
        if isinstance(crops, np.ndarray) and (
            crops.ndim == 2 or (crops.ndim == 3 and crops.shape[2] in (3, 4))
        ):
            raise InputError(
                f"classify takes a list of crops, got one image of shape {crops.shape}; pass [crop]"
            )
        crops = [to_bgr(as_image(c, f"crop {i}")) for i, c in enumerate(crops)]
        whole = [Detection((0, 0, c.shape[1], c.shape[0])) for c in crops]
        faces = [
            Face.from_probs(p, self.labels, d, None)
            for p, d in zip(self.predict_proba(crops), whole, strict=True)
        ]
        return [cal.face(f) for f in faces] if cal else faces

    def boxes_proba(self, image: np.ndarray, detections) -> np.ndarray:
        """Probabilities (N x len(labels), rows sum to 1) of the faces at ``detections`` of a
        BGR ``image``, each cropped with the margin, in one batched call."""
        image = to_bgr(image)
        return self.predict_proba([crop(image, d.box, self.margin) for d in detections])

    def classify_boxes(self, image: np.ndarray, detections) -> list[Face]:
        """Classify the faces at given detections of ``image`` in one batched call; each
        :class:`Face` keeps its detection's box, score and landmarks."""
        probs = self.boxes_proba(image, detections)
        turn = None if self.mesh is not None else self.max_yaw  # with the mesh: its yaw decides
        faces = [
            Face.from_probs(p, self.labels, d, self.detector.name, max_yaw=turn)
            for p, d in zip(probs, detections, strict=True)
        ]
        return self.with_mesh(image, faces)

    def with_mesh(self, image: np.ndarray, faces: Sequence[Face]) -> list[Face]:
        """``faces`` of the BGR ``image``, each with its face mesh when the ``mesh`` option is
        on (:meth:`Face.with_mesh`); as they are otherwise."""
        if self.mesh is None:
            return list(faces)
        image = to_bgr(image)
        return [
            f.with_mesh(
                self.mesh(image, f.box, f.landmarks), self.blendshapes, self.max_yaw, self.fusion
            )
            for f in faces
        ]

    def analyze(
        self, image, detect_size: int | None = None, calibration: Calibration | None = None
    ) -> list[Face]:
        """Find every face in an image and classify it; ``[]`` when there is none.

        ``image``: a path (read upright, as :func:`mobilefer.image.read_image` does) or an
        array (gray, BGR or BGRA; see :func:`to_bgr`). ``detect_size``: longest side the image
        is shrunk to for detection (None: the detector's setting, 640 by default; 0: never).
        ``calibration`` (:meth:`calibrate`): the person's, applied to every face found.
        """
        check_option("detect_size", detect_size)
        cal = self._checked(calibration)
        if isinstance(image, str) or hasattr(image, "__fspath__"):
            from .image import read_image

            image = read_image(image)
        image = to_bgr(image)
        if detect_size is None:
            detect_size = image_detect_size(*image.shape[:2])
        faces = self.classify_boxes(image, self.detector.detect(image, detect_size))
        return [cal.face(f) for f in faces] if cal else faces

    @property
    def model_digest(self) -> str:
        """The sha256 of the model file: what a :class:`Calibration` belongs to."""
        return model_digest(self.model_path)

    def calibrate(self, neutral) -> Calibration:
        """A person's :class:`mobilefer.calibration.Calibration` from their neutral face(s).

        ``neutral``: one image (a path or an array) holding one face, a list of them, or the
        person's :class:`Face` objects or :class:`mobilefer.stream.Result` frames (the largest
        scored face of each). The faces are classified as every face is; their probabilities'
        geometric mean is the reference. :class:`InputError` for an image with no face or with
        several (crop it), a face already calibrated, or nothing usable.
        """
        from .calibration import Calibration, reference_of
        from .results import Result

        items = neutral if isinstance(neutral, (list, tuple)) else [neutral]
        probs = []
        for i, item in enumerate(items):
            if isinstance(item, Result):
                scored = [f for f in item.faces if f.scores is not None]
                item = max(scored, key=lambda f: f.box[2] * f.box[3]) if scored else None
                if item is None:
                    continue  # a frame without a scored face adds nothing
            if isinstance(item, Face):
                if item.scores is None:
                    continue
                if item.calibrated:
                    raise InputError(
                        f"neutral face {i}: already calibrated; give the faces "
                        "as the model read them"
                    )
                if tuple(item.scores) != self.labels:
                    raise InputError(
                        f"neutral face {i}: its labels are another model's; "
                        "classify it with this Recognizer"
                    )
                probs.append(list(item.scores.values()))
                continue
            name = str(item) if isinstance(item, (str, Path)) else f"neutral image {i}"
            faces = [f for f in self.analyze(item) if f.scores is not None]
            if not faces:
                raise InputError(
                    f"{name}: no face found; give a photo of the person's neutral face"
                )
            if len(faces) > 1:
                raise InputError(
                    f"{name}: {len(faces)} faces; calibration needs one person's: "
                    "crop the photo to their face"
                )
            probs.append(list(faces[0].scores.values()))
        if not probs:
            raise InputError(
                "no neutral face to calibrate with: give an image, faces or frames "
                "of the person at rest"
            )
        ref = reference_of(np.array(probs), self.card.class_weights())
        return Calibration(self.labels, tuple(float(v) for v in ref), len(probs), self.model_digest)

    def _checked(self, calibration):
        if calibration is None:
            return None
        from .calibration import Calibration

        if not isinstance(calibration, Calibration):
            raise InputError(
                f"calibration {type(calibration).__name__}: pass what Recognizer.calibrate returns"
            )
        return calibration.check(self.labels, self.model_digest)

    def stream(self, source, calibration: Calibration | None = None, **options) -> Iterator[Result]:
        """A generator of :class:`mobilefer.stream.Result`, one per frame of ``source``: an
        image, folder, glob, video, webcam index, a list of these, one array or an iterable of
        arrays. Options: ``detect_every``, ``smoothing``, ``detect_size``, ``max_frames``,
        ``max_pixels`` (see :func:`mobilefer.stream.stream`). ``calibration``
        (:meth:`calibrate`): one person's, applied to every face."""
        from .stream import stream

        cal = self._checked(calibration)
        results = stream(self, source, **options)
        return (calibrated(r, cal) for r in results) if cal else results

    def session(self, source: str = "array", kind: str = "array", **options):
        """A :class:`mobilefer.stream.Session`: one tracked stream fed a frame at a time
        (``session.update(image, frame, time)`` -> ``Result``), for live connections and
        camera loops. Options: ``detect_every``, ``smoothing``, ``detect_size``, ``fps``."""
        from .stream import Session

        return Session(
            self.detector.detect,
            self.boxes_proba,
            self.labels,
            self.detector.name,
            source,
            kind,
            max_yaw=None if self.mesh is not None else self.max_yaw,  # the mesh's yaw decides
            describe=self.with_mesh if self.mesh is not None else None,
            **options,
        )
