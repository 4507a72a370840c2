"""evaluate.scores against scikit-learn, on a table of cases, and evaluate_model on any scorer."""

from __future__ import annotations

import numpy as np
import pytest

from mobilefer.evaluate import evaluate_model, scores
from mobilefer.labels import EMOTIONS

metrics = pytest.importorskip("sklearn.metrics")

CASES = {
    "perfect": ([0, 1, 2, 3, 4, 5, 6], [0, 1, 2, 3, 4, 5, 6]),
    "all wrong": ([0, 1, 2, 3], [1, 2, 3, 0]),
    "one class predicted": ([0, 1, 2, 3, 4, 5, 6, 6], [3] * 8),
    "a class never true": ([0, 0, 1, 1, 3], [0, 2, 1, 1, 3]),  # 2 predicted, never true
    "imbalanced": ([3] * 20 + [1, 1, 0], [3] * 18 + [6, 6, 1, 0, 0]),
    "random": tuple(np.random.default_rng(0).integers(0, 7, (2, 500)).tolist()),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_scores_agree_with_scikit_learn(case):
    y_true, y_pred = (np.asarray(v) for v in CASES[case])
    got = scores(y_true, y_pred)
    k = list(range(len(EMOTIONS)))
    assert got["n"] == len(y_true)
    assert got["accuracy"] == pytest.approx(metrics.accuracy_score(y_true, y_pred))
    assert got["confusion_matrix"] == metrics.confusion_matrix(y_true, y_pred, labels=k).tolist()
    recall = metrics.recall_score(y_true, y_pred, labels=k, average=None, zero_division=0)
    assert list(got["per_class_recall"].values()) == pytest.approx(recall)
    f1 = metrics.f1_score(y_true, y_pred, labels=k, average=None, zero_division=0)
    assert list(got["per_class_f1"].values()) == pytest.approx(f1)
    # macro-F1 over the classes that occur in y_true (scikit-learn: labels=those classes)
    present = sorted(set(y_true.tolist()))
    macro = metrics.f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)
    assert got["macro_f1"] == pytest.approx(macro)


class Constant:
    """A scorer (the ExpressionModel contract) that always gives the same probabilities."""

    labels = EMOTIONS

    def __init__(self, probs):
        self.probs = np.asarray(probs, dtype=np.float64)

    def predict_proba(self, crops):
        return np.tile(self.probs, (len(crops), 1))


def test_evaluate_model_takes_any_scorer():
    from mobilefer.data import FerData

    labels = np.array([3, 3, 0, 6], dtype=np.int64)
    data = FerData(np.zeros((4, 48, 48), np.uint8), labels, np.zeros(4, np.int8))
    happy = np.eye(len(EMOTIONS))[EMOTIONS.index("happy")]
    r = evaluate_model(Constant(happy), data)
    assert r["accuracy"] == 0.5 and r["per_class_recall"]["happy"] == 1.0
