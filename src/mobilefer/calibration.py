"""A person's own neutral face as the reference for their other faces (participant calibration).

A face that looks sad at rest reads sad all session. With a :class:`Calibration` made of that
person's neutral faces, each of their other faces' probabilities ``p`` become

    p / max(reference, floor) ** beta, renormalised to sum to 1,

where ``reference`` is the geometric mean of the neutral faces' probabilities with the model
file's prior correction undone (so the file's own correction is kept whole, whatever ``beta``).
``beta`` and ``floor`` were chosen on the Taiwanese val performers (docs/experiments.md, rule
c1). It is a few lines of numpy, here only: :meth:`Calibration.apply` for arrays of
probabilities and :meth:`Calibration.face` for a :class:`mobilefer.results.Face`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .errors import InputError

#: How strongly the reference is divided out (0: not at all; 1: fully). Rule c1.
BETA = 0.75
#: The smallest a reference probability counts as: a near-zero one cannot explode a score.
FLOOR = 0.01


@dataclass(frozen=True)
class Calibration:
    """A person's reference: ``reference`` (one probability per label of ``labels``, raw: the
    model's prior correction undone; they sum to 1), made of ``faces`` neutral faces, for the
    model file whose sha256 is ``model`` (a calibration applies to that model only);
    ``beta`` and ``floor`` as the module docstring says."""

    labels: tuple[str, ...]
    reference: tuple[float, ...]
    faces: int
    model: str
    beta: float = BETA
    floor: float = FLOOR

    def apply(self, probs: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of rows of probabilities (N x labels, in ``labels``
        order): each row divided by the reference to the power ``beta``, renormalised."""
        p = np.asarray(probs, np.float64)
        weight = np.maximum(np.asarray(self.reference), self.floor) ** -self.beta
        out = p * weight
        return out / out.sum(axis=-1, keepdims=True)

    def face(self, face):
        """A :class:`mobilefer.results.Face` with calibrated ``scores`` and ``label`` and
        ``calibrated`` True (a face not scored, turned away, is returned as it is)."""
        if face.scores is None:
            return face
        if tuple(face.scores) != self.labels:
            raise InputError(
                f"a face with labels {', '.join(face.scores)} and a calibration "
                f"for {', '.join(self.labels)}: calibrate with this model"
            )
        p = self.apply(np.array([list(face.scores.values())]))[0]
        scores = {k: float(v) for k, v in zip(self.labels, p, strict=True)}
        return replace(face, label=self.labels[int(np.argmax(p))], scores=scores, calibrated=True)

    def check(self, labels, model: str) -> Calibration:
        """This calibration, checked to belong to the model with these ``labels`` and sha256
        ``model``: :class:`InputError` otherwise."""
        if tuple(labels) != self.labels or model != self.model:
            raise InputError(
                "the calibration was made with another model; calibrate again "
                "with this one (rec.calibrate(neutral_faces))"
            )
        return self


def reference_of(probs: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The reference of neutral faces' probabilities (N x labels, as the model gives them):
    their geometric mean, with the prior correction ``weights`` (the model file's class
    weights; None: none) undone first; sums to 1."""
    p = np.asarray(probs, np.float64)
    if p.ndim != 2 or not len(p):
        raise InputError("no neutral face to calibrate with; give at least one")
    if weights is not None:
        p = p / np.asarray(weights, np.float64)
        p = p / p.sum(axis=1, keepdims=True)
    ref = np.exp(np.log(np.maximum(p, 1e-12)).mean(axis=0))
    return ref / ref.sum()
