"""int8 model files: static quantization with ONNX Runtime's own tool, and the parity check.

``mobilefer quantize MODEL.onnx`` (and ``mobilefer export --int8``) turns an exported float file
into an int8 one: ``quant_pre_process`` (shape inference and graph clean-up), then
``quantize_static`` in QDQ format with per-channel int8 weights and uint8 activations, whose
ranges are calibrated on FER2013 Training faces (and, with ``--folds``, the ``fold=train`` faces
from elsewhere: :func:`fold_faces`) and their mirror images (the views flip TTA shows the
model). Weights are 7-bit (``reduce_range``): ONNX Runtime's u8s8 kernels cannot saturate on
AVX2 CPUs without VNNI. The card is carried over and marked (``precision: int8`` and how it was
calibrated). :func:`parity` scores the float and int8 files side by side on PublicTest and the
``fold=val`` sets from elsewhere, and :func:`rule_q4` says whether an int8 file may ship.

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
    """The first convolution, the dense layers and the softmax of each network of a model file:
    the layers ``float_ends`` keeps in float (their inputs quantize worst; under 1% of the
    work). The softmax is among them so that the logits and probabilities stay float (quantized,
    every probability moved in steps of 1/255)."""
    import onnx

    graph = onnx.load(str(path)).graph
    convs = [n for n in graph.node if n.op_type == "Conv"]
    firsts = {n.name for n in convs if n.input[0] == graph.input[0].name}
    head = {n.name for n in graph.node if n.op_type in ("Gemm", "Softmax")}
    return sorted(firsts | head)


def quantize_file(
    src: str | Path,
    dst: str | Path,
    faces: np.ndarray,
    calibration: str = "minmax",
    float_ends: bool = False,
    extra_options: dict | None = None,
    data: str = "FER2013 Training, evenly spaced",
) -> dict:
    """Write an int8 copy of the model file ``src`` to ``dst``, calibrated on ``faces`` (N x 48
    x 48 uint8 Training faces) and their mirrors with ONNX Runtime's ``calibration`` method;
    with ``float_ends``, the first convolution and the dense head stay float
    (:func:`end_nodes`); ``extra_options`` go to ``quantize_static`` as they are (its
    ``CalibMovingAverage``, ``CalibPercentile``, ...); ``data`` says where the faces came from
    (for the card). Returns ``{"path", "bytes",
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
    batches = view_batches(faces, card.preprocessing)

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
        "data": data,
        "weights": "int8 per channel (7 bits)",
        "activations": "uint8",
        "format": "QDQ",
        "float": "first convolution, dense head and softmax" if float_ends else "none",
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


def view_batches(faces: np.ndarray, preprocessing) -> list[np.ndarray]:
    """The model inputs of ``faces`` (N x 48 x 48) and their mirrors, in batches: the views
    calibration sees."""
    batches = []
    for i in range(0, len(faces), CALIBRATION_BATCH):
        x = prepare(list(faces[i : i + CALIBRATION_BATCH]), preprocessing)
        batches += [x, np.ascontiguousarray(x[..., ::-1])]  # the face and its mirror
    return batches


def logits_of(proto, batches: list[np.ndarray]) -> np.ndarray:
    """The softmax's input (the logits) of a model for every view, by adding it as an output."""
    import onnxruntime as ort

    softmax = next(n for n in proto.graph.node if n.op_type == "Softmax")
    copy = type(proto)()
    copy.CopyFrom(proto)
    copy.graph.output.add(name=softmax.input[0])
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(copy.SerializeToString(), options)
    name = session.get_inputs()[0].name
    return np.concatenate([session.run([softmax.input[0]], {name: b})[0] for b in batches])


def bias_correct(float_file: str | Path, int8_file: str | Path, dst: str | Path, faces) -> dict:
    """Write to ``dst`` the int8 file with its float dense head's last bias moved by the mean
    difference of the float and int8 files' logits over ``faces`` (N x 48 x 48 calibration
    faces) and their mirrors: the shift common to every face that quantizing the layers before
    it left (rule q5). The head must be float (``float_ends``). Returns the correction."""
    import onnx
    from onnx import numpy_helper

    card = read_card_file(int8_file)
    float_proto, int8_proto = onnx.load(str(float_file)), onnx.load(str(int8_file))
    batches = view_batches(faces, card.preprocessing)
    delta = (logits_of(float_proto, batches) - logits_of(int8_proto, batches)).mean(axis=0)
    graph = int8_proto.graph
    softmax = next(n for n in graph.node if n.op_type == "Softmax")
    gemm = next((n for n in graph.node if softmax.input[0] in n.output), None)
    inits = {t.name: t for t in graph.initializer}
    if gemm is None or gemm.op_type != "Gemm" or len(gemm.input) < 3 or gemm.input[2] not in inits:
        raise OptionError(
            f"{int8_file}: its last dense layer is not float; quantize it with --float-ends"
        )
    bias = inits[gemm.input[2]]
    bias.CopyFrom(
        numpy_helper.from_array(numpy_helper.to_array(bias) + delta.astype(np.float32), bias.name)
    )
    how = dict(card.quantization or {}) | {
        "bias_correction": "the last bias moved by the mean float-int8 logit difference "
        "over the calibration faces and mirrors"
    }
    with atomic_output(dst) as out:
        onnx.save(int8_proto, str(out))
        write_card(out, replace(card, quantization=how))
    return {"path": str(dst), "correction": [round(float(v), 4) for v in delta]}


#: Rule q4 (docs/experiments.md, issue #41): the most an int8 file may lose against its float
#: file on PublicTest, on the val folds pooled, and in any one class's recall over both together.
MAX_PUBLIC_FALL = 0.005
MAX_POOLED_FALL = 0.010
MAX_CLASS_FALL = 0.030


def fold_faces(sources, fold: str = "train") -> np.ndarray:
    """The 48x48 faces found in ``fold`` of each source (``mobilefer.train.sources.Source``),
    one N x 48 x 48 array: more kinds of face for calibration than FER2013 alone holds."""
    from .train.sources import load_source

    parts = [load_source(s, fold, 0.0, None) for s in sources]
    return np.concatenate([f.pixels[f.found] for f in parts]) if parts else np.zeros((0, 48, 48))


def _counts(counts: dict, labels, truth: np.ndarray, pred: np.ndarray) -> None:
    for i, name in enumerate(labels):
        hit, seen = counts.get(name, (0, 0))
        counts[name] = (
            hit + int(((truth == i) & (pred == i)).sum()),
            seen + int((truth == i).sum()),
        )


def parity(files: dict[str, str | Path], public, val: list | None = None) -> list[dict]:
    """Accuracy of each model file (``{name: path}``) on PublicTest (``public``: FerData; FER+
    labels for a FER+ file), on each of ``val`` (``[(name, faces)]`` from
    :func:`mobilefer.train.sources.load_source`; a photo with no face found counts wrong), on
    the val sets pooled (``pooled_val``), and each class's recall over PublicTest and the pooled
    val sets together (``recall``, by label; classes with no face left out). One row per file."""
    from .evaluate import evaluate_model
    from .model import ExpressionModel

    rows = []
    for name, path in files.items():
        model = ExpressionModel(path)
        r = evaluate_model(model, public)
        target = "ferplus" if len(model.labels) > 7 and "ferplus" in r else "fer2013"
        row = {"file": name, "path": str(path), "public": r[target]["accuracy"]}
        counts: dict[str, tuple[int, int]] = {}
        cm = np.asarray(r[target]["confusion_matrix"])
        for i, label in enumerate(r[target]["labels"]):
            counts[label] = (int(cm[i, i]), int(cm[i].sum()))
        hits = seen = 0
        for set_name, faces in val or []:
            pred = model.predict_proba(list(faces.pixels)).argmax(1)
            pred = np.where(faces.found, pred, -1)  # no face found: wrong
            row[set_name] = float(np.mean(pred == faces.labels))
            hits, seen = hits + int((pred == faces.labels).sum()), seen + len(faces)
            _counts(counts, model.labels, faces.labels, pred)
        if seen:
            row["pooled_val"] = hits / seen
        row["recall"] = {k: h / n for k, (h, n) in counts.items() if n}
        rows.append(row)
    return rows


def rule_q4(float_row: dict, int8_row: dict) -> list[str]:
    """The clauses of rule q4 an int8 file's :func:`parity` row fails against its float
    file's row (empty: it may ship)."""
    failed = []
    fall = float_row["public"] - int8_row["public"]
    if fall > MAX_PUBLIC_FALL:
        failed.append(f"PublicTest falls {fall * 100:.2f} pt (at most {MAX_PUBLIC_FALL * 100:g})")
    if "pooled_val" in float_row:
        fall = float_row["pooled_val"] - int8_row["pooled_val"]
        if fall > MAX_POOLED_FALL:
            failed.append(
                f"pooled val falls {fall * 100:.2f} pt (at most {MAX_POOLED_FALL * 100:g})"
            )
    name, fall = worst_class(float_row, int8_row)
    if fall > MAX_CLASS_FALL:
        failed.append(f"{name} recall falls {fall * 100:.2f} pt (at most {MAX_CLASS_FALL * 100:g})")
    return failed


def worst_class(float_row: dict, int8_row: dict) -> tuple[str, float]:
    """The class whose recall falls most from ``float_row`` to ``int8_row``, and by how much."""
    falls = {k: v - int8_row["recall"].get(k, 0.0) for k, v in float_row["recall"].items()}
    name = max(falls, key=lambda k: falls[k])
    return name, falls[name]
