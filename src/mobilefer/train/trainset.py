"""The training tensors of a run: FER2013 Training's faces and those of its sources, with the
targets each learns (labels, FER+ votes, a teacher's probabilities) and how often each group is
seen per epoch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data import FerData, ferplus_targets
from ..errors import OptionError
from ..labels import EMOTIONS
from .config import TrainConfig
from .sources import Faces, Source


@dataclass
class TrainSet:
    """Training tensors on the training device: faces uint8 N x 48 x 48, labels int64 N, and
    for a FER+ head the vote distributions (N x 8) with the mask of rows that have one."""

    faces: torch.Tensor
    labels: torch.Tensor
    soft: torch.Tensor | None = None
    soft_mask: torch.Tensor | None = None
    log_prior: torch.Tensor | None = None  # FER2013 Training prior, for the logit-adjusted loss
    teacher: torch.Tensor | None = None  # N x 7 teacher probabilities, for distillation
    teacher_mask: torch.Tensor | None = None  # N: faces that learn the teacher's targets
    groups: tuple[int, ...] = ()  # faces per source, laid end to end (FER2013 first)
    weights: tuple[float, ...] = ()  # each group's expected times per epoch


def make_train_set(
    train: FerData, cfg: TrainConfig, device, extra: list[tuple[Source, Faces]] | None = None
) -> TrainSet:
    """The training tensors: ``train``'s faces, then each source's faces (found ones only).
    A source's faces learn its labels (and, for a FER+ head, the one-hot vote of that class) or,
    with ``targets="teacher"``, the teacher's targets alone (label -1). FER2013's faces learn
    the teacher too when the recipe distils."""
    extra = extra or []
    parts = [(src, f.pixels[f.found], f.labels[f.found]) for src, f in extra]
    pixels = np.concatenate([train.pixels, *(p for _, p, _ in parts)])
    own = [y if src.targets == "labels" else np.full(len(y), -1, np.int64) for src, _, y in parts]
    labels = np.concatenate([train.labels.astype(np.int64), *own])
    taught = np.concatenate(
        [
            np.full(len(train), cfg.distill_weight > 0),
            *(np.full(len(y), src.targets == "teacher") for src, _, y in parts),
        ]
    )
    prior = np.bincount(train.labels, minlength=len(EMOTIONS)) / max(len(train.labels), 1)
    out = TrainSet(
        faces=torch.from_numpy(pixels).to(device),
        labels=torch.from_numpy(labels).to(device),
        log_prior=torch.from_numpy(np.log(np.maximum(prior, 1e-8))).float().to(device),
        teacher_mask=torch.from_numpy(taught).float().to(device),
        groups=(len(train), *(len(y) for _, _, y in parts)),
        weights=(cfg.fer2013_weight, *(src.weight for src, _, _ in parts)),
    )
    if cfg.ferplus_weight > 0:
        if train.votes is None:
            raise OptionError(
                "this recipe trains a FER+ head (ferplus_weight > 0) but no FER+ votes were "
                "given: pass --ferplus ferplus.npz, or --ferplus-weight 0"
            )
        soft, mask = ferplus_targets(train.votes)
        extra_soft = np.zeros((len(pixels) - len(train), soft.shape[1]), soft.dtype)
        extra_labels = labels[len(train) :]
        rows = np.flatnonzero(extra_labels >= 0)
        extra_soft[rows, extra_labels[rows]] = 1  # FER+'s first seven classes are FER2013's
        soft = np.concatenate([soft, extra_soft])
        mask = np.concatenate([mask, extra_labels >= 0])
        out.soft = torch.from_numpy(soft).to(device)
        out.soft_mask = torch.from_numpy(mask).to(device)
    if taught.any():
        from .distill import teacher_probs

        if not cfg.teacher or cfg.distill_weight <= 0:
            raise OptionError(
                "teacher targets need a teacher and a weight: "
                "--set teacher=MODEL.onnx --set distill_weight=0.7"
            )
        probs = teacher_probs(cfg.teacher, pixels, threads=cfg.threads or None)
        out.teacher = torch.from_numpy(probs).to(device)
    return out
