"""int8 model files: static quantization with ONNX Runtime's own tool, and the parity check.

``mobilefer quantize MODEL.onnx`` (and ``mobilefer export --int8``) turns an exported float file
into an int8 one: ``quant_pre_process`` (shape inference and graph clean-up), then
``quantize_static`` in QDQ format with per-channel int8 weights and uint8 activations, whose
ranges are calibrated on FER2013 Training faces and their mirror images (the views flip TTA
shows the model). The card is carried over and marked (``precision: int8`` and how it was
calibrated). :func:`parity` scores the float and int8 files side by side on PublicTest and the
``fold=val`` sets from elsewhere, so the cost of int8 is known before a file ships.

Needs the ``[train]`` extra (onnx, which ONNX Runtime's quantization tool imports); inference of
the written file needs only ONNX Runtime.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from .errors import OptionError
from .modelcard import read_card_file, write_card
from .preprocess import prepare
from .sinks import atomic_output

#: ONNX Runtime's calibration methods, by the names the CLI takes.
CALIBRATIONS = ("minmax", "entropy", "percentile", "distribution")
#: Faces per calibration batch.
CALIBRATION_BATCH = 32
#: Training faces used to calibrate by default (each also mirrored: twice as many views).
CALIBRATION_FACES = 512


def calibration_faces(train_pixels: np.ndarray, n: int = CALIBRATION_FACES) -> np.ndarray:
    """``n`` Training faces spread evenly over the split (every k-th face), N x 48 x 48."""
    if n < 1 or len(train_pixels) == 0:
        raise OptionError(f"calibration needs at least one Training face (asked for {n})")
    step = max(1, len(train_pixels) // n)
    return train_pixels[::step][:n]


def end_nodes(path: str | Path) -> list[str]:
    """The first convolution and the dense layers of each network of a model file: the layers
    ``float_ends`` keeps in float (their inputs quantize worst; under 1% of the work)."""
    import onnx

    graph = onnx.load(str(path)).graph
    convs = [n for n in graph.node if n.op_type == "Conv"]
    firsts = {n.name for n in convs if n.input[0] == graph.input[0].name}
    return sorted(firsts | {n.name for n in graph.node if n.op_type == "Gemm"})


def quantize_file(
    src: str | Path,
    dst: str | Path,
    faces: np.ndarray,
    calibration: str = "minmax",
    float_ends: bool = False,
    extra_options: dict | None = None,
) -> dict:
    """Write an int8 copy of the model file ``src`` to ``dst``, calibrated on ``faces`` (N x 48
    x 48 uint8 Training faces) and their mirrors with ONNX Runtime's ``calibration`` method;
    with ``float_ends``, the first convolution and the dense head stay float
    (:func:`end_nodes`); ``extra_options`` go to ``quantize_static`` as they are (its
    ``CalibMovingAverage``, ``CalibPercentile``, ...). Returns ``{"path", "bytes",
    "calibration", "faces", ...}``."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
        "distribution": CalibrationMethod.Distribution,
    }
    if calibration not in methods:
        raise OptionError(f"calibration {calibration!r}; choose from {', '.join(CALIBRATIONS)}")
    src, dst = Path(src), Path(dst)
    card = read_card_file(src)
    batches = []
    for i in range(0, len(faces), CALIBRATION_BATCH):
        x = prepare(list(faces[i : i + CALIBRATION_BATCH]), card.preprocessing)
        batches += [x, np.ascontiguousarray(x[..., ::-1])]  # the face and its mirror

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(batches)

        def get_next(self):
            x = next(self._it, None)
            return None if x is None else {"input": x}

    how = {
        "calibration": calibration,
        "faces": int(len(faces)),
        "views": "face and mirror",
        "data": "FER2013 Training, evenly spaced",
        "weights": "int8 per channel (7 bits)",
        "activations": "uint8",
        "format": "QDQ",
        "float": "first convolution and dense head" if float_ends else "none",
        "options": dict(extra_options or {}),
    }
    # written whole beside dst, then renamed: a full disk or a kill never leaves half a model
    # ONNX Runtime's tool prints its progress to stdout, where a command's results go
    with (
        atomic_output(dst) as out,
        tempfile.TemporaryDirectory() as tmp,
        contextlib.redirect_stdout(io.StringIO()),
    ):
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre))
        quantize_static(
            str(pre),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[calibration],
            calibration_cache_path=Path(tmp) / "calibration",
            nodes_to_exclude=end_nodes(pre) if float_ends else None,
            extra_options=dict(extra_options or {}),
        )
        write_card(out, replace(card, precision="int8", quantization=how))
    return {"path": str(dst), "bytes": dst.stat().st_size, **how}


def parity(files: dict[str, str | Path], public, val: list | None = None) -> list[dict]:
    """Accuracy of each model file (``{name: path}``) on PublicTest (``public``: FerData) and on
    ``val`` (``[(name, faces)]`` from :func:`mobilefer.train.sources.load_source`; a photo with
    no face found counts wrong), side by side. One row per file."""
    from .evaluate import evaluate_model
    from .model import ExpressionModel

    rows = []
    for name, path in files.items():
        model = ExpressionModel(path)
        r = evaluate_model(model, public)
        target = "ferplus" if len(model.labels) > 7 and "ferplus" in r else "fer2013"
        row = {"file": name, "path": str(path), "public": r[target]["accuracy"]}
        for set_name, faces in val or []:
            pred = model.predict_proba(list(faces.pixels)).argmax(1)
            row[set_name] = float(np.mean((pred == faces.labels) & faces.found))
        rows.append(row)
    return rows
