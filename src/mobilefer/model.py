"""The expression model apart from the pipeline: :class:`ExpressionModel` opens a model file
(ONNX Runtime, no torch) and gives probabilities for face crops; :func:`tta_proba` is the one
scoring path (flip TTA, class-prior correction, the broken-model check) that it and training's
torch scorer share.

Conventions: crops are gray, BGR or BGRA arrays of any size (FER2013's 48x48 faces, or faces
cut from photos); probabilities are N x len(labels), in the model's label order, rows summing
to 1.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import ModelError, OptionError
from .modelcard import METADATA_KEY, ModelCard
from .options import DEVICES, check_option
from .preprocess import prepare

log = logging.getLogger(__name__)

#: Faces per ONNX Runtime call: larger batches are split into runs of this size.
RUN_BATCH = 32

#: Models shipped inside the package, by name: ``ExpressionModel(NAME)``, ``--model NAME``.
MODELS: dict[str, str] = {
    "fer2013": "mobilefer_fer2013.int8.onnx",  # FER2013's 7 classes, int8 (the default)
    "ferplus": "mobilefer_ferplus.onnx",  # FER+'s 8 classes: the 7 and contempt (float)
    "fer2013-float": "mobilefer_fer2013.onnx",  # the default's float file, which it was made of
}
#: The float file of each shipped name (what training starts from and int8 is made of).
FLOAT_MODELS: dict[str, str] = {"fer2013": "fer2013-float", "ferplus": "ferplus"}


#: The sha256 of each shipped model file: a damaged or altered file is refused.
SHIPPED_SHA256: dict[str, str] = {
    "mobilefer_fer2013.onnx": "39f8dae60b0666d308f59da78723c0418bec087f37ac274f1a5bb877d3461fd0",
    "mobilefer_ferplus.onnx": "d75909fa9663ff3a5d386158b04f7e5574a2e178c4d9fd9f3b7fa219772733c4",
    "mobilefer_fer2013.int8.onnx": (
        "b201fd16f07dd38b7aa1cd10f06cc83c279d275671b70449d956418c907c5920"
    ),
}


def models_dir() -> Path:
    """The package's folder of shipped model files."""
    return Path(str(resources.files("mobilefer") / "models"))


@functools.lru_cache(maxsize=8)
def _digest(path: str, size: int, mtime: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def model_digest(path: str | Path) -> str:
    """The sha256 (hex) of a model file, read once per version of the file."""
    stat = Path(path).stat()
    return _digest(str(path), stat.st_size, stat.st_mtime_ns)


def model_path(model: str | Path | None = None) -> Path:
    """The file of a shipped model name (``None``: the default), checked against its sha256,
    or ``model`` as a path.

    Raises :class:`ModelError` for a name that is neither a shipped model nor an existing file,
    and for a shipped file whose bytes are not the ones shipped.
    """
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise ModelError(
            f"model {model!r}: expected a name ({', '.join(MODELS)}) or the path of a .onnx file"
        )
    if model is None or str(model) in MODELS:
        name = MODELS[str(model) if model is not None else "fer2013"]
        path = models_dir() / name
        if not path.is_file():
            raise ModelError(f"{path}: shipped model missing; reinstall mobilefer")
        if model_digest(path) != SHIPPED_SHA256[name]:
            raise ModelError(
                f"{path}: not the file that shipped (its sha256 differs: damaged "
                "or altered); reinstall mobilefer"
            )
        return path
    path = Path(model).expanduser()
    if path.exists() and not path.is_file():
        raise ModelError(
            f"{model}: not a regular file (a folder, pipe or device); pass a .onnx "
            "file written by 'mobilefer export'"
        )
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


def mirror_views(
    run: Callable[[np.ndarray], np.ndarray], x: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The probabilities of a prepared batch ``x`` (N x C x H x W, as
    :func:`mobilefer.preprocess.prepare` makes it) and of its mirror image, through ``run`` (a
    batch -> N x classes probabilities) in one call. The flip comes after preprocessing, so
    both views see the same pixels."""
    n = len(x)
    both = np.asarray(run(np.concatenate([x, x[..., ::-1]])))
    return both[:n], both[n:]


def tta_proba(
    run: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    flip: bool,
    weights: np.ndarray | None,
    name: str,
) -> np.ndarray:
    """The one scoring path: probabilities for a prepared batch ``x`` through ``run``, each
    face averaged with its mirror image when ``flip`` (:func:`mirror_views`), then
    :func:`combine`."""
    plain, mirror = mirror_views(run, x) if flip else (np.asarray(run(x)), None)
    return combine(plain, mirror, weights, name)


def combine(
    plain: np.ndarray, mirror: np.ndarray | None, weights: np.ndarray | None, name: str
) -> np.ndarray:
    """Probabilities from the views of a batch: ``plain`` alone, or its mean with ``mirror``;
    ``weights`` (the card's class-prior correction) multiply them before they are renormalised
    to sum to 1.

    Raises :class:`ModelError` naming ``name`` when the probabilities are not finite, negative
    or all zero: a broken model must not give labels.
    """
    probs = plain if mirror is None else (plain + mirror) / 2
    probs = probs.astype(np.float64)
    if weights is not None:
        probs = probs * weights
    total = probs.sum(axis=1, keepdims=True)
    if not (np.isfinite(probs).all() and (total > 0).all() and (probs >= 0).all()):
        raise ModelError(
            f"{name}: the model gives non-finite, negative or all-zero probabilities, so it "
            "is broken; re-export it, or use a shipped model"
        )
    return probs / total


def execution_providers(device: str, available: Sequence[str]) -> list[str]:
    """ONNX Runtime's providers for ``device`` (see :data:`DEVICES`), given those ``available``.
    ``cuda`` without the CUDA provider falls back to the CPU with one warning."""
    if device not in DEVICES:
        raise OptionError(f"device {device!r}; choose from {', '.join(DEVICES)}")
    if device != "cpu" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        log.warning(
            "no CUDA provider in this ONNX Runtime, running on the CPU: "
            "pip install 'mobilefer[gpu]' (onnxruntime-gpu) for the GPU"
        )
    return ["CPUExecutionProvider"]


class ExpressionModel:
    """An expression model file, run by ONNX Runtime: its card, labels and probabilities.

    ``model``: a shipped model by name (``"fer2013"``, the default, or ``"ferplus"``; see
    :data:`MODELS`) or a model file from ``mobilefer export``. ``threads``: ONNX Runtime
    intra-op threads (``None``: ONNX Runtime's choice). ``flip_tta``: average each face with
    its mirror image (``None``: as the model file says). ``prior_tau``: divide the
    probabilities by the training prior to this power, 0 to 2 (0: no correction; ``None``: as
    the model file says). ``device``: ``"cpu"`` (the default), ``"cuda"`` (ONNX Runtime's CUDA
    provider, from the ``[gpu]`` extra's ``onnxruntime-gpu``; without it, the CPU with one
    warning) or ``"auto"`` (CUDA where it is available, else the CPU, silently).

        >>> model = ExpressionModel("ferplus")
        >>> model.predict_proba([face_48x48]).shape   # (1, 8)
    """

    def __init__(
        self,
        model: str | Path | None = None,
        threads: int | None = None,
        flip_tta: bool | None = None,
        prior_tau: float | None = None,
        device: str = "cpu",
    ) -> None:
        import onnxruntime as ort

        for name, value in (
            ("prior_tau", prior_tau),
            ("threads", threads),
            ("device", device),
            ("flip_tta", flip_tta),
        ):
            check_option(name, value)
        providers = execution_providers(device, ort.get_available_providers())
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
            self._session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(f"{path}: not a valid ONNX model ({first})") from None
        #: The model file's path.
        self.path = str(path)
        #: Where it runs: ``"cuda"`` or ``"cpu"``.
        self.device = "cuda" if "CUDAExecutionProvider" in self._session.get_providers() else "cpu"
        card = read_card(self._session, self.path)
        #: The model file's card (labels, preprocessing, TTA, prior), with ``prior_tau`` applied.
        self.card = card if prior_tau is None else replace(card, prior_tau=float(prior_tau))
        #: Whether each face is averaged with its mirror image.
        self.flip_tta = self.card.flip_tta if flip_tta is None else bool(flip_tta)
        self._input = self._session.get_inputs()[0].name
        self._weights = self.card.class_weights()

    @property
    def labels(self) -> tuple[str, ...]:
        """The model's class names, in output order (from its model file)."""
        return self.card.labels

    def predict_proba(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities (N x len(labels), rows sum to 1) for face crops, in one batched call.

        Crops are 2-D gray or BGR/BGRA arrays of any size, e.g. FER2013's 48x48 faces. The
        model file's preprocessing, flip TTA and class-prior correction are applied
        (:func:`tta_proba`).
        """
        if len(crops) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float64)
        x = prepare(crops, self.card.preprocessing)
        return tta_proba(self._run, x, self.flip_tta, self._weights, self.path)

    def _run(self, x: np.ndarray) -> np.ndarray:
        # In runs of RUN_BATCH: a batch of 256 ran 20% slower per face than one of 32, its
        # activations no longer fitting the caches (benchmarks/speed.py).
        return np.concatenate(
            [
                self._session.run(None, {self._input: x[i : i + RUN_BATCH]})[0]
                for i in range(0, len(x), RUN_BATCH)
            ]
        )
