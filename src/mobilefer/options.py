"""Every inference and stream option in one record: its default, its range or choices and its
help, checked in one place (:func:`check_option`, :meth:`Options.check`).

The library checks its arguments with it (``Recognizer``, ``ExpressionModel``, ``stream``,
``Session``, ``FaceTracker``), and every front end is a thin consumer of it: the CLI builds the
flags of ``predict``, ``webcam``, ``report``, ``serve`` and ``--engine ray`` from it, ``serve``'s
app and the Ray engine take an :class:`Options`, so that they all take the same options.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from .errors import OptionError
from .image import MAX_PIXELS
from .preprocess import MARGIN_RANGE

#: Face detectors by name (``auto``: yunet, else haar with one warning).
DETECTOR_CHOICES = ("auto", "haar", "yunet")
#: Where a model may run.
DEVICES = ("cpu", "cuda", "auto")
#: Defaults for video, webcams and arrays: full detection every 10th frame, and the weight of
#: the past in each face's moving average of scores.
DETECT_EVERY = 10
SMOOTHING = 0.6
#: The most threads a model may be given: more than cores only adds contention, and 100,000
#: made ONNX Runtime hang at 3.6 GB.
MAX_THREADS = 256


@dataclass(frozen=True)
class Spec:
    """What an option takes: ``kind`` (``str``, ``int``, ``float``, ``choice``, ``switch``:
    auto/on/off for None/True/False, or ``flag``: True or False, off by default), its range
    (``lo``-``hi``, ``hi_open``: ``hi`` excluded) or ``choices``, and its ``help``; ``scope``
    says which part uses it (model, detector, stream)."""

    kind: str
    help: str
    scope: str
    lo: float | None = None
    hi: float | None = None
    hi_open: bool = False
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind in ("choice", "switch"):
            return "one of " + ", ".join(self.choices)
        if self.kind == "flag":
            return "True or False"
        if self.lo is None:
            return "a path or name"
        what = "a whole number" if self.kind == "int" else "a number"
        upper = f"below {self.hi:g}" if self.hi_open else f"{self.hi:g}"
        return f"{what} from {self.lo:g} to {upper}"


def _opt(default, kind, help, scope, **limits):
    return field(default=default, metadata={"spec": Spec(kind, help, scope, **limits)})


@dataclass(frozen=True)
class Options:
    """The options of a Recognizer and of its streams, with their defaults (``None``: the model
    file's or the detector's own setting). Build one and call :meth:`check`, or let a front end
    build it from its flags; :meth:`recognizer_options` and :meth:`stream_options`
    gives what ``Recognizer.stream`` takes; ``Recognizer.from_options`` makes the Recognizer."""

    model: str | None = _opt(
        None,
        "str",
        "a shipped model by name (fer2013: 7 classes, the "
        "default; ferplus: 8 classes) or a model file from 'mobilefer "
        "export'",
        "model",
    )
    threads: int | None = _opt(
        None, "int", "ONNX Runtime threads (default: all cores)", "model", lo=1, hi=MAX_THREADS
    )
    device: str = _opt(
        "cpu",
        "choice",
        "where the model runs: cuda needs the [gpu] extra "
        "(onnxruntime-gpu); auto uses it where it is there",
        "model",
        choices=DEVICES,
    )
    flip_tta: bool | None = _opt(
        None,
        "switch",
        "average each face with its mirror image (auto: as the model file says)",
        "model",
        choices=("auto", "on", "off"),
    )
    prior_tau: float | None = _opt(
        None,
        "float",
        "divide scores by the training class prior to "
        "this power, 0-2 (default: as the model file says)",
        "model",
        lo=0,
        hi=2,
    )
    detector: str = _opt(
        "auto",
        "choice",
        "face detector (auto: yunet, which ships inside)",
        "detector",
        choices=DETECTOR_CHOICES,
    )
    yunet: str | None = _opt(
        None, "str", "another copy of face_detection_yunet_2023mar.onnx", "detector"
    )
    margin: float | None = _opt(
        None,
        "float",
        "grow face boxes by this fraction per side, "
        "below 0 shrink them (default: as the model file says)",
        "detector",
        lo=MARGIN_RANGE[0],
        hi=MARGIN_RANGE[1],
    )
    max_yaw: float | None = _opt(
        None,
        "float",
        "faces turned further than this many degrees "
        "left or right are found but not scored (yunet only; default: "
        "all are scored)",
        "detector",
        lo=0,
        hi=90,
    )
    mesh: bool = _opt(
        False,
        "flag",
        "each face also gets MediaPipe's face mesh: head angles from it and "
        "action units (needs the [mesh] extra)",
        "detector",
    )
    blendshapes: bool = _opt(
        False,
        "flag",
        "with the mesh, keep its 52 blendshape scores in the records as well (implies --mesh)",
        "detector",
    )
    detect_size: int | None = _opt(
        None,
        "int",
        "shrink frames to this longest side before "
        "detection (default: photos by size, 640-2048 px; video "
        "and webcam 320; 0: never)",
        "stream",
        lo=0,
        hi=16384,
    )
    detect_every: int = _opt(
        DETECT_EVERY,
        "int",
        "video/webcam: full-frame detection every N frames, tracking between (1: always)",
        "stream",
        lo=1,
        hi=100_000,
    )
    smoothing: float = _opt(
        SMOOTHING,
        "float",
        "video/webcam: weight of past scores per tracked face (0: off)",
        "stream",
        lo=0,
        hi=1,
        hi_open=True,
    )
    max_frames: int = _opt(
        0, "int", "video/webcam: stop after N frames (0: all)", "stream", lo=0, hi=10**9
    )
    max_pixels: int = _opt(
        MAX_PIXELS,
        "int",
        "refuse images with more pixels than this",
        "stream",
        lo=1,
        hi=MAX_PIXELS * 8,
    )

    def check(self) -> Options:
        """This record, every value checked once (:class:`OptionError` names the first bad one
        and what it takes); a record already checked is trusted (it is frozen)."""
        if not self.__dict__.get("_checked"):
            for f in fields(self):
                check_option(f.name, getattr(self, f.name))
            object.__setattr__(self, "_checked", True)
        return self

    def recognizer_options(self) -> dict:
        """The keyword arguments of :class:`mobilefer.Recognizer`."""
        d = {k: v for k, v in asdict(self).items() if SPECS[k].scope in ("model", "detector")}
        return d

    def stream_options(self) -> dict:
        """The keyword arguments of ``Recognizer.stream``."""
        return {k: v for k, v in asdict(self).items() if SPECS[k].scope == "stream"}

    def session_options(self) -> dict:
        """The keyword arguments of ``Recognizer.session`` (a live stream)."""
        keep = ("detect_every", "smoothing", "detect_size")
        return {k: v for k, v in self.stream_options().items() if k in keep}

    def record_extras(self) -> tuple[str, ...]:
        """The optional record fields these options fill (``action_units``, ``blendshapes``),
        for writers that set their columns up front (CSV, Arrow)."""
        mesh = self.mesh or self.blendshapes
        return ("action_units",) * mesh + ("blendshapes",) * bool(self.blendshapes)

    def replace(self, **changes) -> Options:
        """A copy with some options changed (unknown names are refused, listing the valid)."""
        unknown = sorted(set(changes) - set(SPECS))
        if unknown:
            raise OptionError(
                f"unknown option {', '.join(unknown)}; choose from {', '.join(SPECS)}"
            )
        return replace(self, **changes)


#: Each option's :class:`Spec`, by name, in the record's order.
SPECS: dict[str, Spec] = {f.name: f.metadata["spec"] for f in fields(Options)}
#: The defaults, by name.
DEFAULTS: dict[str, object] = {f.name: f.default for f in fields(Options)}


def _whole(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_option(name: str, value) -> None:
    """Raise :class:`OptionError` unless ``value`` is what option ``name`` takes (``None`` is
    taken where the default is ``None``)."""
    spec = SPECS[name]
    if value is None and DEFAULTS[name] is None:
        return
    if spec.kind == "switch":
        ok = value is None or isinstance(value, (bool, np.bool_))
    elif spec.kind == "flag":
        ok = isinstance(value, (bool, np.bool_))
    elif spec.kind == "choice":
        ok = isinstance(value, str) and value in spec.choices
    elif spec.kind == "str":
        ok = isinstance(value, (str, bytes)) or hasattr(value, "__fspath__")
    else:
        number = (
            _whole(value)
            if spec.kind == "int"
            else (
                isinstance(value, (int, float, np.integer, np.floating))
                and not isinstance(value, (bool, np.bool_))
            )
        )
        ok = bool(number) and math.isfinite(value) and spec.lo <= value
        ok = ok and (value < spec.hi if spec.hi_open else value <= spec.hi)
    if not ok:
        raise OptionError(f"{name}={value!r}: expected {spec.describe()}")
