"""Export a trained model to one self-contained ONNX file that carries its own settings.

The file holds the softmax probabilities as output and, under the ``mobilefer`` metadata key,
the labels, input size, channels, mean/std, crop margin, flip TTA flag, recipe and test scores.
Every export checks itself: the ONNX checker, then ONNX Runtime against PyTorch on a batch.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ModelError
from ..labels import EMOTIONS
from ..recognizer import METADATA_KEY
from .loop import TrainConfig

log = logging.getLogger(__name__)

#: Largest allowed difference between ONNX Runtime's and PyTorch's probabilities.
PARITY_TOLERANCE = 1e-4


def metadata(cfg: TrainConfig, margin: float, flip_tta: bool, metrics: dict | None) -> dict:
    """The settings that inference reads from the model file."""
    return {
        "format": 1,
        "labels": list(EMOTIONS),
        "input_size": cfg.input_size,
        "channels": len(cfg.mean),
        "mean": list(cfg.mean),
        "std": list(cfg.std),
        "margin": margin,
        "flip_tta": flip_tta,
        "recipe": asdict(cfg),
        "metrics": metrics or {},
    }


def export_onnx(
    model: nn.Module,
    cfg: TrainConfig,
    path: str | Path,
    *,
    margin: float = 0.0,
    flip_tta: bool = False,
    metrics: dict | None = None,
    check_faces: np.ndarray | None = None,
) -> dict:
    """Write ``model`` (logits) as ``path`` (probabilities) with metadata, then verify it.

    ``check_faces`` (N x 48 x 48 uint8) are used for the parity check; random faces otherwise.
    Returns ``{"path", "bytes", "max_abs_diff"}``; raises :class:`ModelError` if a check fails.
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = nn.Sequential(model, nn.Softmax(dim=1)).eval().float()
    net = net.to(memory_format=torch.contiguous_format)
    size = cfg.input_size
    dummy = torch.zeros(2, len(cfg.mean), size, size)
    torch.onnx.export(
        net, (dummy,), str(path), input_names=["input"], output_names=["probs"],
        dynamic_axes={"input": {0: "batch"}, "probs": {0: "batch"}},
        opset_version=17, dynamo=False,
    )  # fmt: skip
    proto = onnx.load(str(path))
    meta = metadata(cfg, margin, flip_tta, metrics)
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    proto.doc_string = "mobilefer facial expression model; labels: " + ", ".join(EMOTIONS)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path), save_as_external_data=False)

    diff = parity(net, cfg, path, check_faces)
    if diff > PARITY_TOLERANCE:
        raise ModelError(
            f"{path}: ONNX Runtime differs from PyTorch by {diff:.2e} (> {PARITY_TOLERANCE})"
        )
    log.info("exported %s (%d bytes), parity %.2e", path, path.stat().st_size, diff)
    return {"path": str(path), "bytes": path.stat().st_size, "max_abs_diff": diff}


@torch.no_grad()
def parity(net: nn.Module, cfg: TrainConfig, path: Path, faces: np.ndarray | None = None) -> float:
    """Max absolute difference of probabilities, ONNX Runtime vs PyTorch, on a batch of faces."""
    import onnxruntime as ort

    from ..preprocess import prepare

    if faces is None:
        faces = np.random.default_rng(0).integers(0, 256, (16, 48, 48), dtype=np.uint8)
    x = prepare(list(faces), cfg.preprocessing())
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    want = net(torch.from_numpy(x)).numpy()
    return float(np.abs(got - want).max())


def quantize_int8(src: str | Path, dst: str | Path, calibration_faces: np.ndarray) -> dict:
    """Static int8 quantization (QDQ, per-channel weights) of an exported model file.

    ``calibration_faces`` (N x 48 x 48 uint8, Training faces only) set the activation ranges.
    Weights use 7 bits (reduce_range), which avoids overflow in the u8 x s8 kernels of CPUs
    without VNNI. The metadata of ``src`` is copied over. Returns ``{"path", "bytes"}``.
    """
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from ..preprocess import prepare
    from ..recognizer import read_model_info

    src, dst = Path(src), Path(dst)
    info = read_model_info(
        ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]), str(src)
    )
    batches = [
        prepare(list(calibration_faces[i : i + 32]), info.preprocessing)
        for i in range(0, len(calibration_faces), 32)
    ]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(batches)

        def get_next(self):
            x = next(self._it, None)
            return None if x is None else {"input": x}

    quantize_static(
        str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
        reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
    )  # fmt: skip
    proto, original = onnx.load(str(dst)), onnx.load(str(src))
    del proto.metadata_props[:]
    for p in original.metadata_props:
        entry = proto.metadata_props.add()
        entry.key, entry.value = p.key, p.value
    onnx.checker.check_model(proto)
    onnx.save(proto, str(dst), save_as_external_data=False)
    return {"path": str(dst), "bytes": dst.stat().st_size}


def update_metadata(path: str | Path, **changes) -> dict:
    """Rewrite some keys of a model file's mobilefer metadata in place; returns the new metadata."""
    import onnx

    proto = onnx.load(str(path))
    props = {p.key: p for p in proto.metadata_props}
    meta = json.loads(props[METADATA_KEY].value) | changes
    props[METADATA_KEY].value = json.dumps(meta)
    onnx.save(proto, str(path), save_as_external_data=False)
    return meta
