"""The named training recipes (``mobilefer train --recipe NAME``) and the sources from elsewhere
that the mixture recipes read (``{shared}``: ``$MOBILEFER_SHARED``, the project's data)."""

from __future__ import annotations

from dataclasses import replace

from ..errors import OptionError
from .config import TrainConfig

OOD = "{shared}/data/ood/"
LFW = "{shared}/data/lfw-expressions"
#: Sources of the mixture recipes ({shared}: $MOBILEFER_SHARED, which must be set).
MIXTURE_SOURCES = (
    {"name": "taiwanese", "path": OOD + "taiwanese", "weight": 4.0, "detect": True},
    {"name": "sfew", "path": OOD + "sfew", "weight": 2.0},
)
#: The val folds: studio photos through the detector; film stills whole and through the detector.
VAL_SOURCES = (
    {"name": "taiwanese", "path": OOD + "taiwanese", "detect": True},
    {"name": "sfew", "path": OOD + "sfew"},
    {"name": "sfew_detected", "path": OOD + "sfew", "detect": True},
)

RECIPES: dict[str, TrainConfig] = {
    # The paper: 224 px, x/255 only, no augmentation, Adam, 25 epochs, head 128-64-7.
    "paper": TrainConfig(
        recipe="paper",
        input_size=224,
        mean=(0.0,) * 3,
        std=(1.0,) * 3,
        epochs=25,
        optimizer="adam",
        lr=1e-3,
        weight_decay=0.0,
        warmup_epochs=0.0,
        schedule="constant",
        label_smoothing=0.0,
        dropout=0.0,
        augment=False,
        freeze_blocks=0,
        ferplus_weight=0.0,
    ),
    # Ours for 2 CPU cores, chosen on PublicTest.
    "default": TrainConfig(),
    # What trained the shipped files (their cards hold the whole config). mobilefer_fer2013.onnx
    # is two of these runs, --seed 8 and --seed 9, exported together; mobilefer_ferplus.onnx is
    # one "ferplus" run, exported with --head ferplus. docs/experiments.md has the history.
    "fer2013": TrainConfig(recipe="fer2013", epochs=60, threads=2, seed=8),
    "ferplus": TrainConfig(
        recipe="ferplus", epochs=60, threads=2, seed=7, ferplus_weight=3.0, freeze_blocks=0
    ),
    # One network learning a teacher file's probabilities (give it with --set teacher=FILE) on
    # Training faces and on the LFW faces (their crowd labels unused), over a wider range of
    # framings; docs/experiments.md says how it was chosen.
    "distill": TrainConfig(
        recipe="distill",
        distill_weight=0.7,
        zoom=(0.65, 1.3),
        epochs=24,
        sources=({"name": "lfw", "path": LFW, "targets": "teacher"},),
    ),
    # One network of the shipped pair fine-tuned on every labelled face we may train on:
    # FER2013 Training, the studio photos (cut by the detector) and film stills of
    # ood/ fold=train, and the LFW pool; chosen each epoch by the domain score on the val
    # folds and PublicTest. docs/experiments.md gives the runs and the rule.
    "mixture": TrainConfig(
        recipe="mixture",
        init="fer2013",
        backbone=None,
        epochs=6,
        lr=1e-4,
        warmup_epochs=0.3,
        threads=2,
        seed=30,
        ferplus_weight=0.0,
        sources=MIXTURE_SOURCES,
        val_sources=VAL_SOURCES,
    ),
    # The FER+ head by the same rule, from the shipped FER+ network.
    "mixture_ferplus": TrainConfig(
        recipe="mixture_ferplus",
        init="ferplus",
        backbone=None,
        epochs=6,
        lr=1e-4,
        warmup_epochs=0.3,
        threads=2,
        seed=31,
        ferplus_weight=3.0,
        freeze_blocks=0,
        sources=MIXTURE_SOURCES,
        val_sources=VAL_SOURCES,
    ),
}


def recipe(name: str, **overrides) -> TrainConfig:
    """The named recipe with some settings replaced."""
    if name not in RECIPES:
        raise OptionError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")
    return replace(RECIPES[name], **overrides)
