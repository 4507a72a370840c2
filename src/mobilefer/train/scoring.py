"""Probabilities from torch models, preprocessed exactly as inference does: both heads at once
for the per-epoch evaluation, and :class:`TorchScorer`, which has the ``predict_proba`` contract
of :class:`mobilefer.ExpressionModel` (the same :func:`mobilefer.model.tta_proba` path) so that
export and evaluation score a checkpoint as the exported file will be scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from ..errors import OptionError
from ..labels import EMOTIONS, FERPLUS_LABELS
from ..model import mirror_views, tta_proba
from ..preprocess import prepare
from .config import TrainConfig

#: Faces per forward pass when scoring.
SCORE_BATCH = 256
#: The labels of each head, in output order.
HEAD_LABELS = {"fer2013": EMOTIONS, "ferplus": FERPLUS_LABELS}


def _layout(cfg: TrainConfig):
    return torch.channels_last if cfg.channels_last else torch.contiguous_format


@torch.no_grad()
def head_probs(model, x: np.ndarray, cfg: TrainConfig, device):
    """Softmax probabilities (fp32, on the CPU) of both heads for a prepared batch ``x``; the
    second is ``None`` without a FER+ head."""
    model.eval()
    a, b = model.forward_heads(torch.from_numpy(x).to(device, memory_format=_layout(cfg)))
    main = torch.softmax(a.float(), 1).cpu()
    return main, None if b is None else torch.softmax(b.float(), 1).cpu()


def predict_heads(model, pixels: np.ndarray, cfg: TrainConfig, device, zoom: float = 1.0):
    """Softmax probabilities of both heads (the second ``None`` without a FER+ head) for
    48x48 faces, preprocessed exactly as inference does (``zoom``: see
    :class:`mobilefer.preprocess.Preprocessing`), one view each, in fp32."""
    pre = replace(cfg.preprocessing(), zoom=zoom)
    main, aux = [], []
    for start in range(0, len(pixels), SCORE_BATCH):
        a, b = head_probs(
            model, prepare(list(pixels[start : start + SCORE_BATCH]), pre), cfg, device
        )
        main.append(a)
        if b is not None:
            aux.append(b)
    empty = torch.empty(0, len(EMOTIONS))
    return (torch.cat(main) if main else empty), (torch.cat(aux) if aux else None)


def predict_probs(model, pixels, cfg, device, head: str = "fer2013", zoom: float = 1.0):
    """Softmax probabilities of one head (``fer2013`` or ``ferplus``); see :func:`predict_heads`."""
    main, aux = predict_heads(model, pixels, cfg, device, zoom)
    if head == "ferplus":
        if aux is None:
            raise OptionError("this model has no FER+ head; train it with FER+ votes")
        return aux
    return main


class TorchScorer:
    """Checkpoints scored like an exported file: one head of one model, or the mean of several
    (an ensemble), with the file's zoom, flip TTA and class weights. ``predict_proba(crops)``
    gives N x len(labels) probabilities, rows summing to 1, as
    :meth:`mobilefer.ExpressionModel.predict_proba` does.

    ``members``: ``(model, config)`` pairs, as :func:`mobilefer.train.loop.load_checkpoint`
    returns them; their preprocessing must agree (export checks it). ``weights``: the factor
    applied to each class's probability (the card's prior correction), or ``None``.
    """

    def __init__(
        self,
        members: Sequence[tuple[torch.nn.Module, TrainConfig]],
        head: str = "fer2013",
        zoom: float = 1.0,
        flip_tta: bool = False,
        weights: np.ndarray | None = None,
        device: str = "cpu",
    ) -> None:
        if head not in HEAD_LABELS:
            raise OptionError(f"unknown head {head!r}; choose from {', '.join(HEAD_LABELS)}")
        self.members, self.head = list(members), head
        self.flip_tta, self.weights = flip_tta, weights
        self.labels = HEAD_LABELS[head]
        self.preprocessing = replace(self.members[0][1].preprocessing(), zoom=zoom)
        self.device = torch.device(device)

    def _run(self, x: np.ndarray) -> np.ndarray:
        total = 0
        for model, cfg in self.members:
            main, aux = head_probs(model, x, cfg, self.device)
            if self.head == "ferplus" and aux is None:
                raise OptionError("this model has no FER+ head; train it with FER+ votes")
            total = total + (aux if self.head == "ferplus" else main).numpy()
        return total / len(self.members)

    def predict_proba(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities (N x len(labels), rows sum to 1) for face crops (gray or BGR, any
        size), through :func:`mobilefer.model.tta_proba`."""
        out = []
        for start in range(0, len(crops), SCORE_BATCH):
            x = prepare(list(crops[start : start + SCORE_BATCH]), self.preprocessing)
            out.append(tta_proba(self._run, x, self.flip_tta, self.weights, "checkpoint"))
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)))

    def views(self, crops: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The raw probabilities of the crops and of their mirror images
        (:func:`mobilefer.model.mirror_views`), before flip TTA, weights and checks: for
        choosing flip TTA without scoring the plain view twice (:func:`mobilefer.model.combine`
        makes :meth:`predict_proba`'s figures of them)."""
        plain, mirror = [], []
        for start in range(0, len(crops), SCORE_BATCH):
            x = prepare(list(crops[start : start + SCORE_BATCH]), self.preprocessing)
            p, m = mirror_views(self._run, x)
            plain.append(p)
            mirror.append(m)
        empty = np.zeros((0, len(self.labels)))
        return (np.concatenate(plain), np.concatenate(mirror)) if plain else (empty, empty)
