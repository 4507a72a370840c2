"""The expression model (an ONNX file that carries its own preprocessing) and the Recognizer.

Conventions: images are BGR uint8 H x W x 3 (gray and BGRA are accepted and converted); boxes
are ``(x, y, w, h)`` in input-image pixels; ``scores`` maps each label of the model (its file
says which: :data:`mobilefer.EMOTIONS` for the default) to a probability; they sum to 1.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import InputError, ModelError, OptionError
from .image import as_image, to_bgr
from .modelcard import METADATA_KEY, ModelCard
from .preprocess import MARGIN_RANGE, crop, prepare
from .results import Face
from .validate import check_number, is_whole

log = logging.getLogger(__name__)


#: Faces per ONNX Runtime call: larger batches are split into runs of this size.
RUN_BATCH = 32

#: Models shipped inside the package, by name: ``Recognizer(model=NAME)``, ``--model NAME``.
MODELS: dict[str, str] = {
    "fer2013": "mobilefer_fer2013.onnx",  # FER2013's 7 classes (the default)
    "ferplus": "mobilefer_ferplus.onnx",  # FER+'s 8 classes: the 7 and contempt
}


def model_path(model: str | Path | None = None) -> Path:
    """The file of a shipped model name (``None``: the default), or ``model`` as a path.

    Raises :class:`ModelError` for a name that is neither a shipped model nor an existing file.
    """
    if model is None or str(model) in MODELS:
        name = MODELS[str(model) if model is not None else "fer2013"]
        path = Path(str(resources.files("mobilefer") / "models" / name))
        if not path.is_file():
            raise ModelError(f"{path}: shipped model missing; reinstall mobilefer")
        return path
    path = Path(model).expanduser()
    if not path.is_file():
        raise ModelError(
            f"{model}: no such model; choose from {', '.join(MODELS)} or pass a .onnx file "
            "written by 'mobilefer export'"
        )
    return path


def default_model_path() -> Path:
    """The model file that ships inside the package as the default."""
    return model_path(None)


def read_card(session, path: str) -> ModelCard:
    """The :class:`ModelCard` of an ONNX Runtime session opened on ``path``."""
    meta = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in meta:
        raise ModelError(
            f"{path}: not a mobilefer model (no '{METADATA_KEY}' metadata); "
            "use a file written by 'mobilefer export'"
        )
    card = ModelCard.from_json(meta[METADATA_KEY], path)
    shape = session.get_outputs()[0].shape
    classes = shape[-1] if len(shape) == 2 else None
    if isinstance(classes, int) and classes != len(card.labels):
        raise ModelError(
            f"{path}: the model gives {classes} scores but its metadata names "
            f"{len(card.labels)} labels; re-export the model"
        )
    return card


class Recognizer:
    """Finds faces and classifies their expressions, with ONNX Runtime (no torch).

    ``model``: a shipped model by name (``"fer2013"``, the default, or ``"ferplus"``; see
    :data:`MODELS`) or a model file from ``mobilefer export``.
    ``detector``: ``"auto"`` (yunet if available, else haar), ``"haar"`` or ``"yunet"``, or an
    object with a ``detect(image)`` method and a ``name``. ``threads``: ONNX Runtime intra-op
    threads (``None``: ONNX Runtime's choice). ``flip_tta``: average each face with its mirror
    image (``None``: as the model file says). ``margin``: grow detector boxes by this fraction
    of their size on each side before cropping, -0.4 to 1 (below 0 they shrink: a closer view;
    ``None``: as the model file says). ``prior_tau``: divide the probabilities by the training
    prior to this power, 0 to 2 (0: no correction; ``None``: as the model file says).
    """

    def __init__(
        self,
        model: str | Path | None = None,
        detector: object = "auto",
        threads: int | None = None,
        flip_tta: bool | None = None,
        margin: float | None = None,
        detect_max_side: int = 640,
        yunet: str | Path | None = None,
        prior_tau: float | None = None,
    ) -> None:
        import onnxruntime as ort

        check_number("margin", margin, *MARGIN_RANGE)
        check_number("prior_tau", prior_tau, 0, 2)
        if threads is not None and not (is_whole(threads) and threads >= 1):
            raise OptionError(f"threads={threads!r}: expected a whole number >= 1, or None")
        if not (is_whole(detect_max_side) and detect_max_side >= 0):
            raise OptionError(f"detect_max_side={detect_max_side!r}: expected a whole number >= 0")

        path = model_path(model)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # errors only: graph-fusion notices are not the user's business
        # Idle ONNX Runtime threads would spin between calls and starve OpenCV's detector, which
        # runs in between: measured on 2 cores, yunet at 320 px went from 64 to 81 frames/s.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(
                str(path), opts, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own exception types
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(f"{path}: not a valid ONNX model ({first})") from None
        self.model_path = str(path)
        self.card = read_card(self._session, str(path))
        self._input = self._session.get_inputs()[0].name
        if prior_tau is not None:
            self.card = replace(self.card, prior_tau=float(prior_tau))
        self._weights = self.card.class_weights()
        self.flip_tta = self.card.flip_tta if flip_tta is None else flip_tta
        self.margin = self.card.preprocessing.margin if margin is None else margin
        if isinstance(detector, str):
            from .faces import create_detector

            options = {"max_side": detect_max_side}
            if yunet and detector != "haar":
                options["model"] = yunet
            self.detector = create_detector(detector, **options)
        else:
            self.detector = detector

    @property
    def labels(self) -> tuple[str, ...]:
        """The model's class names, in output order (from its model file)."""
        return self.card.labels

    def predict_proba(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities (N x len(labels), rows sum to 1) for face crops, in one batched call.

        Crops are 2-D gray or BGR/BGRA arrays of any size, e.g. FER2013's 48x48 faces. The
        model file's flip TTA and class-prior correction (:class:`ModelCard`) are applied.
        """
        if len(crops) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        x = prepare(crops, self.card.preprocessing)
        if self.flip_tta:
            n = len(x)
            both = self._run(np.concatenate([x, x[..., ::-1]]))
            probs = (both[:n] + both[n:]) / 2
        else:
            probs = self._run(x)
        probs = probs.astype(np.float64)
        if self._weights is not None:
            probs = probs * self._weights
        total = probs.sum(axis=1, keepdims=True)
        if not (np.isfinite(probs).all() and (total > 0).all() and (probs >= 0).all()):
            raise ModelError(
                f"{self.model_path}: the model gives non-finite, negative or all-zero "
                "probabilities, so it is broken; re-export it, or use a shipped model"
            )
        return probs / total

    def _run(self, x: np.ndarray) -> np.ndarray:
        # In runs of RUN_BATCH: a batch of 256 ran 20% slower per face than one of 32, its
        # activations no longer fitting the caches (benchmarks/speed.py).
        return np.concatenate(
            [self._session.run(None, {self._input: x[i : i + RUN_BATCH]})[0]
             for i in range(0, len(x), RUN_BATCH)]
        )  # fmt: skip

    def _faces(self, probs: np.ndarray, boxes, detector, det_scores) -> list[Face]:
        out = []
        for p, box, s in zip(probs, boxes, det_scores, strict=True):
            scores = {name: float(v) for name, v in zip(self.labels, p, strict=True)}
            label = self.labels[int(np.argmax(p))]
            out.append(Face(tuple(int(v) for v in box), label, scores, detector, s))
        return out

    def classify(self, crops: Sequence[np.ndarray]) -> list[Face]:
        """Classify faces that are already cropped: one :class:`Face` per crop, in order.

        ``crops`` is a list of images (gray, BGR or BGRA, any dtype :func:`to_bgr` takes), or
        one N x H x W array of gray crops. Each face's box is the whole crop, ``(0, 0, w, h)``,
        and its detector is ``None``.
        """
        if isinstance(crops, np.ndarray) and (
            crops.ndim == 2 or (crops.ndim == 3 and crops.shape[2] in (3, 4))
        ):
            raise InputError(
                f"classify takes a list of crops, got one image of shape {crops.shape}; pass [crop]"
            )
        crops = [to_bgr(as_image(c, f"crop {i}")) for i, c in enumerate(crops)]
        boxes = [(0, 0, c.shape[1], c.shape[0]) for c in crops]
        return self._faces(self.predict_proba(crops), boxes, None, [None] * len(crops))

    def classify_boxes(self, image: np.ndarray, detections) -> list[Face]:
        """Classify the faces at given detections of ``image`` in one batched call."""
        image = to_bgr(image)
        crops = [crop(image, d.box, self.margin) for d in detections]
        return self._faces(
            self.predict_proba(crops),
            [d.box for d in detections],
            self.detector.name,
            [d.score for d in detections],
        )

    def analyze(self, image, detect_size: int | None = None) -> list[Face]:
        """Find every face in an image and classify it; ``[]`` when there is none.

        ``image``: a path (read upright, as :func:`mobilefer.sources.read_image` does) or an
        array (gray, BGR or BGRA; see :func:`to_bgr`). ``detect_size``: longest side the image
        is shrunk to for detection (None: the detector's setting, 640 by default; 0: never).
        """
        if detect_size is not None and not (is_whole(detect_size) and detect_size >= 0):
            raise OptionError(f"detect_size={detect_size!r}: expected a whole number >= 0, or None")
        if isinstance(image, str) or hasattr(image, "__fspath__"):
            from .image import read_image

            image = read_image(image)
        image = to_bgr(image)
        return self.classify_boxes(image, self.detector.detect(image, detect_size))

    def stream(self, source, **options):
        """A generator of :class:`mobilefer.stream.Result`, one per frame of ``source``: an
        image, folder, glob, video, webcam index, a list of these, one array or an iterable of
        arrays. Options: ``detect_every``, ``smoothing``, ``detect_size``, ``max_frames``,
        ``max_pixels`` (see :func:`mobilefer.stream.stream`)."""
        from .stream import stream

        return stream(self, source, **options)
