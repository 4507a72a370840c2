"""Expression scores from the network and the face mesh together: a multinomial logistic
regression over the network's log-probabilities and MediaPipe's 52 blendshapes
(:mod:`mobilefer.mesh`), fitted on training faces for one model file (rule fu1,
``docs/experiments.md``; ``benchmarks/fusion.py`` fits and scores it).

A :class:`Fusion` belongs to the model file it was fitted on (its sha256): the ``mesh`` option
uses the one that ships beside that file (:func:`shipped_fusion`), and no other. Conventions:
probabilities are rows in the model's label order, summing to 1; blendshapes are name -> 0-1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelError
from .mesh import BLENDSHAPES

#: Probabilities are floored here before their log is taken.
FLOOR = 1e-6


@dataclass(frozen=True, eq=False)
class Fusion:
    """The regression: features are the log of the model's probabilities (floored at
    :data:`FLOOR`) then the 52 blendshapes, standardised by ``mean`` and ``scale``;
    ``weights`` (classes x features) and ``bias`` give the logits of ``labels``."""

    labels: tuple[str, ...]
    model_sha256: str
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: np.ndarray
    notes: dict

    @staticmethod
    def features(probs: np.ndarray, shapes: np.ndarray) -> np.ndarray:
        """N x (labels + 52): log-probabilities, then blendshapes (N x 52, :data:`BLENDSHAPES`
        order)."""
        return np.hstack([np.log(np.clip(probs, FLOOR, 1.0)), shapes])

    def apply(self, probs: np.ndarray, shapes: np.ndarray) -> np.ndarray:
        """Fused probabilities (N x labels, rows sum to 1) of the model's ``probs`` and the
        faces' ``shapes`` (N x 52)."""
        x = (self.features(np.atleast_2d(probs), np.atleast_2d(shapes)) - self.mean) / self.scale
        z = x @ self.weights.T + self.bias
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def face_scores(self, scores: dict[str, float], blendshapes: dict[str, float]) -> dict:
        """One face's fused scores (label -> probability) from its scores and blendshapes."""
        probs = np.array([[scores[k] for k in self.labels]])
        shapes = np.array([[blendshapes[k] for k in BLENDSHAPES]])
        return {k: float(v) for k, v in zip(self.labels, self.apply(probs, shapes)[0], strict=True)}

    def to_json(self) -> str:
        return json.dumps(
            {
                "labels": list(self.labels),
                "model_sha256": self.model_sha256,
                "blendshapes": list(BLENDSHAPES),
                "mean": self.mean.tolist(),
                "scale": self.scale.tolist(),
                "weights": self.weights.tolist(),
                "bias": self.bias.tolist(),
                "notes": self.notes,
            },
            indent=1,
        )

    @classmethod
    def load(cls, path: str | Path) -> Fusion:
        """A fusion written by :meth:`to_json`; :class:`ModelError` if it is not one."""
        try:
            d = json.loads(Path(path).read_text())
            labels = tuple(d["labels"])
            n = len(labels) + len(BLENDSHAPES)
            if d["blendshapes"] != list(BLENDSHAPES):
                raise ValueError("its blendshapes are not MediaPipe's 52 in order")
            arrays = [np.asarray(d[k], np.float64) for k in ("mean", "scale", "weights", "bias")]
            shapes = [(n,), (n,), (len(labels), n), (len(labels),)]
            if [a.shape for a in arrays] != shapes or not all(np.isfinite(a).all() for a in arrays):
                raise ValueError("its arrays have the wrong shapes or are not finite")
            return cls(labels, str(d["model_sha256"]), *arrays, dict(d.get("notes", {})))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ModelError(f"{path}: not a mobilefer fusion file ({e})") from None


#: Fusions that ship, by the model file they belong to.
SHIPPED: dict[str, str] = {}


def shipped_fusion(model_file: str | Path, digest: str | None = None) -> Fusion | None:
    """The fusion shipped for the model file named ``model_file`` whose sha256 is ``digest``
    (None: the file's, read only when a fusion ships under its name), or None (no fusion ships
    for it, or the file is not the one it was fitted on)."""
    from .model import model_digest, models_dir

    name = SHIPPED.get(Path(model_file).name)
    if name is None:
        return None
    fusion = Fusion.load(models_dir() / name)
    digest = model_digest(model_file) if digest is None else digest
    return fusion if fusion.model_sha256 == digest else None
