"""Accuracy, macro-F1, per-class recall and the confusion matrix of any model file on a split."""

from __future__ import annotations

import numpy as np

from .data import FerData
from .labels import EMOTIONS


def scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = len(EMOTIONS)) -> dict:
    """Metrics of predicted class indices against true ones (both length N)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    tp = np.diag(cm).astype(float)
    support, predicted = cm.sum(1), cm.sum(0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {
        "n": int(len(y_true)),
        "accuracy": float(tp.sum() / max(len(y_true), 1)),
        "macro_f1": float(f1.mean()),
        "per_class_recall": {EMOTIONS[i]: float(r) for i, r in enumerate(recall)},
        "per_class_f1": {EMOTIONS[i]: float(v) for i, v in enumerate(f1)},
        "confusion_matrix": cm.tolist(),
    }


def evaluate_model(recognizer, data: FerData, batch_size: int = 256, progress=None) -> dict:
    """Score a :class:`mobilefer.Recognizer` on labelled 48x48 faces (FER2013 crops as given)."""
    preds = []
    for start in range(0, len(data), batch_size):
        probs = recognizer.predict_proba(list(data.pixels[start : start + batch_size]))
        preds.append(probs.argmax(1))
        if progress:
            progress(min(start + batch_size, len(data)), len(data))
    y_pred = np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)
    return scores(data.labels, y_pred)


def format_report(result: dict) -> str:
    """A human-readable report: headline figures, per-class recall, confusion matrix."""
    lines = [
        f"faces      {result['n']}",
        f"accuracy   {result['accuracy']:.4f}",
        f"macro-F1   {result['macro_f1']:.4f}",
        "",
        "recall per class:",
        *(f"  {k:<9}{v:.4f}" for k, v in result["per_class_recall"].items()),
        "",
        "confusion matrix (rows: true, columns: predicted):",
        "          " + " ".join(f"{k[:7]:>7}" for k in EMOTIONS),
        *(
            f"  {EMOTIONS[i][:7]:<8}" + " ".join(f"{v:>7}" for v in row)
            for i, row in enumerate(result["confusion_matrix"])
        ),
    ]
    return "\n".join(lines)
