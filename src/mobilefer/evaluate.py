"""Accuracy, macro-F1, per-class recall and the confusion matrix of any model file on a split,
against FER2013's labels and, where FER+ votes are given, against FER+'s majority vote."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .data import FerData, ferplus_majority
from .labels import EMOTIONS, FERPLUS_LABELS


def scores(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    n_classes: int | None = None,
    labels: Sequence[str] | None = None,
) -> dict:
    """Metrics of predicted class indices against true ones (both length N).

    ``labels`` name the classes (default: :data:`EMOTIONS`, or FER+'s eight beyond seven).
    """
    if labels is None:
        n = n_classes or len(EMOTIONS)
        labels = EMOTIONS[:n] if n <= len(EMOTIONS) else FERPLUS_LABELS[:n]
    labels = list(labels)
    k = len(labels)
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    tp = np.diag(cm).astype(float)
    support, predicted = cm.sum(1), cm.sum(0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    present = support > 0  # macro-F1 over the classes that occur
    return {
        "n": int(len(y_true)),
        "accuracy": float(tp.sum() / max(len(y_true), 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "labels": labels,
        "per_class_recall": {labels[i]: float(r) for i, r in enumerate(recall)},
        "per_class_f1": {labels[i]: float(v) for i, v in enumerate(f1)},
        "confusion_matrix": cm.tolist(),
    }


def score_probs(probs: np.ndarray, data: FerData, labels: Sequence[str]) -> dict:
    """Scores of probabilities (N x len(labels), in ``labels`` order) on ``data``.

    ``fer2013``: against FER2013's labels (classes matched by name). ``ferplus`` (only where
    ``data`` has votes): against the FER+ majority vote, on the faces whose votes name an
    emotion that the model has (a 7-class model is not scored on FER+'s contempt faces).
    """
    labels = list(labels)
    pred = probs.argmax(1)
    fer = np.array([labels.index(EMOTIONS[i]) for i in data.labels], dtype=np.int64)
    out = {"fer2013": scores(fer, pred, labels=labels)}
    if data.votes is not None:
        majority = ferplus_majority(data.votes)
        index = {name: i for i, name in enumerate(labels)}
        plus = np.array(
            [index.get(FERPLUS_LABELS[m], -1) if m >= 0 else -1 for m in majority], dtype=np.int64
        )
        keep = plus >= 0
        out["ferplus"] = scores(plus[keep], pred[keep], labels=labels)
    return out


def evaluate_model(recognizer, data: FerData, batch_size: int = 256) -> dict:
    """Score a :class:`mobilefer.Recognizer` on labelled 48x48 faces (FER2013 crops as given).

    Returns the FER2013 scores (:func:`scores`) with ``fer2013`` and, with votes, ``ferplus``
    holding the scores against each set of labels.
    """
    probs = []
    for start in range(0, len(data), batch_size):
        probs.append(recognizer.predict_proba(list(data.pixels[start : start + batch_size])))
    labels = recognizer.labels
    p = np.concatenate(probs) if probs else np.zeros((0, len(labels)))
    result = score_probs(p, data, labels)
    return {**result["fer2013"], **result}


def format_scores(result: dict) -> str:
    """A human-readable report: headline figures, per-class recall, confusion matrix."""
    lines = []
    for target, title in (("fer2013", "FER2013 labels"), ("ferplus", "FER+ majority vote")):
        r = result.get(target)
        if r is None:
            continue
        labels = r["labels"]
        lines += [
            f"== against {title}",
            f"faces      {r['n']}",
            f"accuracy   {r['accuracy']:.4f}",
            f"macro-F1   {r['macro_f1']:.4f}",
            "",
            "recall per class:",
            *(f"  {k:<9}{v:.4f}" for k, v in r["per_class_recall"].items()),
            "",
            "confusion matrix (rows: true, columns: predicted):",
            "          " + " ".join(f"{k[:7]:>7}" for k in labels),
            *(
                f"  {labels[i][:7]:<8}" + " ".join(f"{v:>7}" for v in row)
                for i, row in enumerate(r["confusion_matrix"])
            ),
            "",
        ]
    return "\n".join(lines).rstrip()


def split_metrics(recognizer, data: FerData, splits=("public",)) -> dict:
    """The scores a model file's card stores: ``{split}_{target}_accuracy`` and ``_macro_f1``
    for each split and each set of labels the data has (FER2013's; FER+'s with votes)."""
    metrics = {}
    for split in splits:
        r = evaluate_model(recognizer, data.split(split))
        for target in ("fer2013", "ferplus"):
            if target in r:
                metrics[f"{split}_{target}_accuracy"] = round(r[target]["accuracy"], 4)
                metrics[f"{split}_{target}_macro_f1"] = round(r[target]["macro_f1"], 4)
    return metrics
