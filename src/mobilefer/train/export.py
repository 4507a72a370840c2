"""Export a trained model to one self-contained ONNX file that carries its own settings.

The file holds the softmax probabilities of one head as output and, under the ``mobilefer``
metadata key, its :class:`~mobilefer.modelcard.ModelCard`: labels, input size, channels,
mean/std, crop margin, flip TTA, class prior and its correction, recipe and test scores. Every
export checks itself: the ONNX checker, then ONNX Runtime against PyTorch on a batch.

:func:`export_checkpoint` is the whole workflow behind ``mobilefer export``: test-time settings
chosen on PublicTest, the file written and checked, then scored through ONNX Runtime.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data import FerData, ferplus_targets
from ..errors import ModelError, OptionError
from ..evaluate import scores, split_metrics
from ..model import ExpressionModel, combine
from ..modelcard import ModelCard, update_card, write_card
from ..preprocess import SOURCE_SIZE, ZOOM_RANGE, prepare
from ..sinks import atomic_output
from .checkpoints import load_checkpoint
from .config import TrainConfig
from .model import FerNet, Probabilities
from .scoring import HEAD_LABELS, TorchScorer

log = logging.getLogger(__name__)

#: Largest allowed difference between ONNX Runtime's and PyTorch's probabilities.
PARITY_TOLERANCE = 1e-4
#: Faces in the parity batch (PublicTest's first, or random ones without data).
PARITY_FACES = 64
#: The post-hoc prior corrections tried on PublicTest (``prior_tau="auto"``).
TAU_GRID = tuple(round(0.1 * i, 1) for i in range(11))
#: The views tried on PublicTest (``zoom="auto"``): the central 1/zoom of the 48x48 face. One
#: view each, so the choice never changes the cost of inference.
ZOOM_GRID = (1.0, 1.05, 1.1, 1.15, 1.2)


def export_onnx(
    model: FerNet | list[FerNet],
    cfg: TrainConfig | list[TrainConfig],
    path: str | Path,
    *,
    head: str = "fer2013",
    margin: float = 0.0,
    zoom: float = 1.0,
    flip_tta: bool = False,
    prior: tuple[float, ...] | None = None,
    prior_tau: float = 0.0,
    metrics: dict | None = None,
    check_faces: np.ndarray | None = None,
) -> dict:
    """Write one head of ``model`` (logits) as ``path`` (probabilities) with its card, then
    verify it. A list of models with a list of their configs is exported as one ensemble: the
    file averages their probabilities (the members must share their preprocessing).

    ``check_faces`` (N x 48 x 48 uint8) are used for the parity check; random faces otherwise.
    Returns ``{"path", "bytes", "max_abs_diff"}``; raises :class:`ModelError` if a check fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    members = model if isinstance(model, list) else [model]
    configs = cfg if isinstance(cfg, list) else [cfg]
    cfg = check_members(configs)
    net = Probabilities(members, head).eval().float()
    net = net.to(memory_format=torch.contiguous_format)
    size = cfg.input_size
    dummy = torch.zeros(2, len(cfg.mean), size, size)
    torch.onnx.export(
        net,
        (dummy,),
        str(path),
        input_names=["input"],
        output_names=["probs"],
        dynamic_axes={"input": {0: "batch"}, "probs": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    card = ModelCard(
        labels=HEAD_LABELS[head],
        preprocessing=replace(cfg.preprocessing(), margin=margin, zoom=zoom),
        flip_tta=flip_tta,
        prior=None if prior is None else tuple(float(v) for v in prior),
        prior_tau=prior_tau,
        recipe=asdict(cfg)
        | {"head": head}
        | ({"members": [asdict(c) for c in configs]} if len(configs) > 1 else {}),
        metrics=metrics or {},
    )
    write_card(path, card)
    diff = parity(net, cfg, path, check_faces)
    if diff > PARITY_TOLERANCE:
        raise ModelError(
            f"{path}: ONNX Runtime differs from PyTorch by {diff:.2e} (> {PARITY_TOLERANCE})"
        )
    log.info("exported %s (%d bytes), parity %.2e", path, path.stat().st_size, diff)
    return {"path": str(path), "bytes": path.stat().st_size, "max_abs_diff": diff}


def check_members(configs: list[TrainConfig]) -> TrainConfig:
    """The config that describes an ensemble's input: its members must all see the same one."""
    first = configs[0]
    for c in configs[1:]:
        if c.preprocessing() != first.preprocessing():
            raise OptionError(
                f"ensemble members need the same input: {first.preprocessing()} vs "
                f"{c.preprocessing()}; export them separately"
            )
    return first


@torch.no_grad()
def parity(net: nn.Module, cfg: TrainConfig, path: Path, faces: np.ndarray | None = None) -> float:
    """Max absolute difference of probabilities, ONNX Runtime vs PyTorch, on a batch of faces."""
    import onnxruntime as ort

    if faces is None:
        shape = (PARITY_FACES, SOURCE_SIZE, SOURCE_SIZE)
        faces = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    x = prepare(list(faces), cfg.preprocessing())
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    want = net(torch.from_numpy(x)).numpy()
    return float(np.abs(got - want).max())


def head_targets(data: FerData, head: str) -> tuple[np.ndarray, np.ndarray]:
    """The labels a head is judged by, as (targets, mask of rows that have one).

    ``fer2013``: FER2013's labels (every row). ``ferplus``: the FER+ majority vote (rows whose
    votes name an emotion; see :func:`mobilefer.data.ferplus_targets`).
    """
    if head == "fer2013":
        return data.labels, np.ones(len(data), dtype=bool)
    if data.votes is None:
        raise OptionError("the ferplus head is judged on FER+ votes: pass --ferplus ferplus.npz")
    soft, mask = ferplus_targets(data.votes)
    return soft.argmax(1), mask


def training_prior(train: FerData, head: str) -> np.ndarray:
    """The class prior of the targets a head was trained on (Training split)."""
    if head == "fer2013":
        counts = train.class_counts().astype(np.float64)
        return counts / counts.sum()
    soft, mask = ferplus_targets(train.votes)
    prior = soft[mask].astype(np.float64).mean(0)
    return prior / prior.sum()


#: Every class should be recalled at least this often (PublicTest) by the chosen correction.
MIN_RECALL = 0.55


def choose_tau(
    probs: np.ndarray,
    y: np.ndarray,
    prior: np.ndarray,
    taus=TAU_GRID,
    min_recall=MIN_RECALL,
    balanced: bool = True,
):
    """The post-hoc correction ``probs / prior**tau`` chosen on (PublicTest) ``y``: among the
    taus that recall every class at least ``min_recall`` of the time (all taus, if none does),
    the one with the largest mean of accuracy and macro-F1 (``balanced``) or accuracy alone.
    Returns ``(tau, rows)`` with one row of scores per tau."""

    rows = []
    for tau in taus:
        r = scores(y, (probs * prior**-tau).argmax(1), n_classes=probs.shape[1])
        rows.append(
            {
                "tau": tau,
                "accuracy": r["accuracy"],
                "macro_f1": r["macro_f1"],
                "min_recall": min(r["per_class_recall"].values()),
            }
        )
    return best_row(rows, min_recall, balanced)["tau"], rows


def best_row(rows: list[dict], min_recall: float = MIN_RECALL, balanced: bool = True) -> dict:
    """The row (``accuracy``, ``macro_f1``, ``min_recall``) that :func:`choose_tau` and the
    zoom choice prefer: among those that recall every class at least ``min_recall`` of the time
    (all, if none does), the largest mean of accuracy and macro-F1 (``balanced``) or accuracy."""
    floor = [r for r in rows if r["min_recall"] >= min_recall] or rows
    return max(
        floor, key=lambda r: (r["accuracy"] + r["macro_f1"]) / 2 if balanced else r["accuracy"]
    )


def export_checkpoint(
    checkpoint: str | Path | list[str | Path],
    out: str | Path,
    *,
    data: FerData | None = None,
    head: str = "fer2013",
    flip_tta: bool | str = "auto",
    prior_tau: float | str = "auto",
    zoom: float | str = "auto",
    margin: float = 0.0,
    int8: bool = False,
    report_private: bool = False,
) -> dict:
    """``mobilefer export``: one head of a checkpoint -> a checked, self-describing ONNX file.
    Several checkpoints make one ensemble file (their probabilities averaged).

    With ``data`` (FER2013, with FER+ votes for the ferplus head): ``"auto"`` settings are chosen
    on PublicTest (for each zoom of :data:`ZOOM_GRID`, flip TTA when it raises accuracy and the
    prior correction by :func:`choose_tau`; then the zoom whose choice :func:`best_row` prefers),
    PublicTest faces make the parity batch, Training faces calibrate int8, and the written file
    is scored through ONNX Runtime on PublicTest (stored in its card). PrivateTest is scored
    too only with ``report_private``: once, for the file that ships, after every choice is made,
    so that candidates are never compared on it. Returns a report dict (path, bytes, parity,
    choices, scores, the tau table).
    """

    if head not in HEAD_LABELS:
        raise OptionError(f"unknown head {head!r}; choose from {', '.join(HEAD_LABELS)}")
    checkpoints = checkpoint if isinstance(checkpoint, (list, tuple)) else [checkpoint]
    for ck in checkpoints:
        if not Path(ck).is_file():
            raise OptionError(f"{ck}: no such checkpoint; pass best.pt or last.pt of a run")
    needs_data = [
        n
        for n, v in (
            ("--int8", int8),
            ("--flip-tta auto", flip_tta == "auto"),
            ("--prior-tau auto", prior_tau == "auto"),
            ("--zoom auto", zoom == "auto"),
            ("--report-private", report_private),
        )
        if v
    ]
    if data is None and needs_data:
        raise OptionError(f"{', '.join(needs_data)} need --data (choices are made on PublicTest)")
    lo, hi = ZOOM_RANGE
    if zoom != "auto" and not (isinstance(zoom, (int, float)) and lo <= zoom <= hi):
        raise OptionError(
            f"zoom {zoom!r}: expected a number from {lo} to {hi} (1 shows the "
            "whole 48x48 face), or 'auto'"
        )
    loaded = [load_checkpoint(ck) for ck in checkpoints]
    models, configs = [m for m, _ in loaded], [c for _, c in loaded]
    check_members(configs)  # before any work

    report: dict = {"head": head}
    faces, prior = None, None
    if data is not None:
        public = data.split("public")
        y, keep = head_targets(public, head)
        faces = public.pixels[:PARITY_FACES]
        y = y[keep]
        prior = training_prior(data.split("train"), head)
        # FER2013's head must recall every class and balance accuracy with macro-F1; FER+'s is
        # judged by its majority-vote accuracy, where contempt (0.7% of faces) cannot set a bar.
        fer = head == "fer2013"
        floor = MIN_RECALL if fer else 0
        views = []
        for z in ZOOM_GRID if zoom == "auto" else (float(zoom),):
            # as the written file will give them, before the prior: single view and flip TTA
            single, mirror = TorchScorer(loaded, head, zoom=z).views(list(public.pixels))
            plain = combine(single, None, None, "checkpoint")[keep]
            both = combine(single, mirror, None, "checkpoint")[keep]
            acc_plain = scores(y, plain.argmax(1), labels=HEAD_LABELS[head])["accuracy"]
            acc_flip = scores(y, both.argmax(1), labels=HEAD_LABELS[head])["accuracy"]
            flip = acc_flip > acc_plain if flip_tta == "auto" else bool(flip_tta)
            probs = both if flip else plain
            taus = TAU_GRID if prior_tau == "auto" else (float(prior_tau),)
            tau, rows = choose_tau(probs, y, prior, taus=taus, min_recall=floor, balanced=fer)
            views.append(
                {
                    "zoom": z,
                    "flip_tta": flip,
                    "public_accuracy_single": acc_plain,
                    "public_accuracy_flip": acc_flip,
                    "tau_table": rows,
                    **next(r for r in rows if r["tau"] == tau),
                }
            )
        view = best_row(views, floor, balanced=fer)
        zoom, flip_tta, prior_tau = view["zoom"], view["flip_tta"], view["tau"]
        report |= {
            k: view[k] for k in ("public_accuracy_single", "public_accuracy_flip", "tau_table")
        }
        report["zoom_table"] = [{k: v for k, v in r.items() if k != "tau_table"} for r in views]
    flip_tta, prior_tau, zoom = bool(flip_tta), float(prior_tau), float(zoom)
    # written whole beside --out, then renamed: a full disk or a kill never leaves half a model
    # (nor a float file whose card says int8); --int8's float file is a temporary one
    with atomic_output(out) as tmp:
        report |= export_onnx(
            models,
            configs,
            tmp,
            head=head,
            margin=margin,
            zoom=zoom,
            flip_tta=flip_tta,
            prior=None if prior is None else tuple(prior),
            prior_tau=prior_tau if prior is not None else 0.0,
            check_faces=faces,
        )
        if int8:
            from ..quantize import calibration_faces, quantize_file

            with tempfile.TemporaryDirectory(prefix="mobilefer-export-") as folder:
                fp32 = Path(folder) / "fp32.onnx"
                tmp.replace(fp32)
                report |= quantize_file(fp32, tmp, calibration_faces(data.split("train").pixels))
        report |= {
            "flip_tta": flip_tta,
            "prior_tau": prior_tau if prior is not None else 0.0,
            "zoom": zoom,
        }
        if data is not None:
            # The scores stored in the file are those of the file itself, through ONNX Runtime.
            splits = ("public", "private") if report_private else ("public",)
            metrics = split_metrics(ExpressionModel(tmp), data, splits)
            update_card(tmp, metrics=metrics)
            report["metrics"] = metrics
        report["bytes"] = tmp.stat().st_size
    report["path"] = str(out)
    return report
