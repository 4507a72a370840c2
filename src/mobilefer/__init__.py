"""mobilefer: facial expression recognition with MobileNetV2, run by ONNX Runtime.

Conventions everywhere: images are BGR uint8 H x W x 3 numpy arrays (as OpenCV reads them);
boxes are ``(x, y, w, h)`` in input-image pixels; ``scores`` maps the 7 labels of
:data:`EMOTIONS` to probabilities that sum to 1.

    >>> import mobilefer
    >>> faces = mobilefer.analyze("photo.jpg")
    >>> faces[0].label, faces[0].to_dict()

Importing this package loads numpy, OpenCV and Pillow (for reading records and images) and
neither torch nor ONNX Runtime nor a model: the Recognizer, the model and the result types
load on first use (module ``__getattr__``), and the first call does the work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import (
    DataError,
    InputError,
    LimitError,
    MobileferError,
    ModelError,
    OptionError,
    WeightsError,
)
from .labels import EMOTIONS
from .options import Options
from .records import read_records
from .study import ClipSummary, EventSummary, Study, TrackSummary, compare, summarize
from .study.plan import read_events, read_participants

if TYPE_CHECKING:
    from .calibration import Calibration
    from .model import ExpressionModel
    from .recognizer import Recognizer
    from .results import Face, Result

__all__ = [
    "EMOTIONS",
    "Face",
    "Recognizer",
    "ExpressionModel",
    "Result",
    "Options",
    "Calibration",
    "analyze",
    "summarize",
    "read_records",
    "ClipSummary",
    "TrackSummary",
    "compare",
    "read_events",
    "read_participants",
    "EventSummary",
    "Study",
    "MobileferError",
    "InputError",
    "LimitError",
    "ModelError",
    "DataError",
    "WeightsError",
    "OptionError",
]
__version__ = "0.3.0"

#: The Recognizer of each detector name ``analyze`` was called with, made on first use.
_recognizers: dict[str, Recognizer] = {}


def __getattr__(name: str):
    # Recognizer, ExpressionModel, Face and Result live in modules that import numpy (and ONNX
    # Runtime on use); load them on first use.
    if name == "Recognizer":
        from .recognizer import Recognizer

        return Recognizer
    if name == "ExpressionModel":
        from .model import ExpressionModel

        return ExpressionModel
    if name == "Calibration":
        from .calibration import Calibration

        return Calibration
    if name in ("Face", "Result"):
        from . import results

        return getattr(results, name)
    raise AttributeError(f"module 'mobilefer' has no attribute {name!r}")


def analyze(image, detector: str = "auto") -> list[Face]:
    """Find and classify the faces in an image: a path, or a BGR uint8 H x W x 3 array.

    Uses the shipped model and ``detector`` (``auto``, ``haar`` or ``yunet``); one
    :class:`Face` per face found, ``[]`` when there is none. Each detector's Recognizer is
    made once and kept.
    """
    from .recognizer import Recognizer

    key = detector.strip().lower() if isinstance(detector, str) else detector
    if key not in _recognizers:
        _recognizers[key] = Recognizer(detector=detector)
    return _recognizers[key].analyze(image)
