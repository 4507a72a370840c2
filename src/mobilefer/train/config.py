"""The training config: every setting of a run in one commented dataclass, the named recipes,
``--set KEY=VALUE`` parsing and the checks that a resumed run keeps its settings.

A run's config is saved in its checkpoints and, through export, in the model file's card, so a
model can be traced back to the settings that made it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..errors import OptionError
from ..preprocess import Preprocessing

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class TrainConfig:
    recipe: str = "default"  # name, saved into the model file
    input_size: int = 96  # px; 2x FER2013's 48; fp32 training runs 90 img/s on AVX2, 112 px only 44
    mean: tuple[float, ...] = IMAGENET_MEAN  # the backbone was trained with ImageNet statistics
    std: tuple[float, ...] = IMAGENET_STD
    epochs: int = 40  # ~105 s each with bf16 on AVX-512-BF16 cores (70 min); 20 scored 1 pt less
    batch_size: int = 64
    optimizer: str = "adamw"  # adamw | adam
    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 0.05  # decoupled (AdamW); regularises the small head and the backbone
    warmup_epochs: float = 1.0  # linear warm-up protects the ImageNet features from the random head
    schedule: str = "cosine"  # cosine (to 0 after warm-up) | constant
    label_smoothing: float = 0.1  # FER2013 labels are noisy (FER+ relabels ~1 in 4)
    dropout: float = 0.2  # before each dense layer of the head
    hidden: tuple[int, ...] = (128, 64)  # the paper's head widths
    ferplus_weight: float = 1.0  # loss weight of a 2nd head on FER+ vote distributions; 0: none
    logit_adjust: float = 0.0  # tau of the logit-adjusted loss; 0: balance is fixed post hoc
    teacher: str | None = None  # a model file whose probabilities are soft targets (distill.py)
    distill_weight: float = 0.0  # share of the loss on the teacher's targets, 0-1; 0: no teacher
    distill_temperature: float = 2.0  # both sides' logits divided by it; the loss is scaled by T^2
    extra_faces: str | None = None  # a folder of faces (labels.csv) trained on the teacher only
    # Augmentation (augment.py reads these and nothing else): everything up to freeze_blocks,
    # batched on tensors. Ranges are (low, high), drawn uniformly unless a comment says else.
    augment: bool = True
    max_rotation: float = 20.0  # degrees either way; webcam faces tilt more than FER2013's
    zoom: tuple[float, float] = (0.8, 1.3)  # crop side / face side, log-uniform: the face
    #   fills 77-125% (below 1: a closer view, as a tight detector box on a whole photo gives)
    max_shift: float = 0.08  # fraction of the image, either way on each axis
    flip_prob: float = 0.5  # chance to mirror a face
    erase_prob: float = 0.25  # chance to blank one random rectangle of a face with its mean
    erase_area: tuple[float, float] = (0.02, 0.2)  # the rectangle's share of the face
    erase_aspect: tuple[float, float] = (0.3, 3.3)  # its height / width, log-uniform
    photometric_prob: float = 0.5  # chance of the three changes below, together
    contrast: tuple[float, float] = (0.6, 1.4)  # factor about the face's mean
    brightness: tuple[float, float] = (0.6, 1.5)  # factor, log-uniform
    gamma: tuple[float, float] = (0.7, 1.4)  # exponent, log-uniform
    blur_prob: float = 0.3  # chance of a Gaussian blur; 0.15 lost 4 pts on blurred faces
    blur_sigma: tuple[float, float] = (0.3, 1.5)  # px at 48 px
    jpeg_prob: float = 0.3  # chance of a JPEG round trip, redrawn every epoch
    jpeg_quality: tuple[int, int] = (15, 60)  # inclusive
    freeze_blocks: int = 4  # first backbone blocks (and their BatchNorm statistics) kept as is
    amp: bool = True  # bf16 autocast where the hardware has bf16: 1.8x faster on AVX-512-BF16
    channels_last: bool = True
    width_mult: float = 1.0  # <1 only for tests (no ImageNet weights then)
    backbone: str | None = "imagenet"  # "imagenet" (torch hub cache), a file path, or None
    init: str | None = None  # start from this checkpoint's weights (fine-tune a finished run)
    seed: int = 0
    threads: int = 0  # torch threads; 0 keeps torch's default
    limit_train: int = 0  # use only the first N training faces (tests, smoke runs); 0 = all
    extra: dict = field(default_factory=dict)  # free-form notes kept with the run

    def preprocessing(self) -> Preprocessing:
        return Preprocessing(input_size=self.input_size, mean=self.mean, std=self.std)


RECIPES: dict[str, TrainConfig] = {
    # The paper: 224 px, x/255 only, no augmentation, Adam, 25 epochs, head 128-64-7.
    "paper": TrainConfig(
        recipe="paper", input_size=224, mean=(0.0,) * 3, std=(1.0,) * 3, epochs=25,
        optimizer="adam", lr=1e-3, weight_decay=0.0, warmup_epochs=0.0, schedule="constant",
        label_smoothing=0.0, dropout=0.0, augment=False, freeze_blocks=0, ferplus_weight=0.0,
    ),
    # Ours for 2 CPU cores, chosen on PublicTest.
    "default": TrainConfig(),
    # What trained the shipped files (their cards hold the whole config). mobilefer_fer2013.onnx
    # is two of these runs, --seed 8 and --seed 9, exported together; mobilefer_ferplus.onnx is
    # one "ferplus" run, exported with --head ferplus. docs/experiments.md has the history.
    "fer2013": TrainConfig(recipe="fer2013", epochs=60, threads=2, seed=8),
    "ferplus": TrainConfig(recipe="ferplus", epochs=60, threads=2, seed=7, ferplus_weight=3.0,
                           freeze_blocks=0),
    # One network learning a teacher file's probabilities (give it with --set teacher=FILE) on
    # Training faces and on extra real-photo faces (--set extra_faces=FOLDER), over a wider
    # range of framings; docs/experiments.md says how it was chosen.
    "distill": TrainConfig(recipe="distill", distill_weight=0.7, zoom=(0.65, 1.3), epochs=24),
}  # fmt: skip


def config_from_dict(d: dict) -> TrainConfig:
    """A config back from JSON (lists become tuples again)."""
    return TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def recipe(name: str, **overrides) -> TrainConfig:
    """The named recipe with some settings replaced."""
    if name not in RECIPES:
        raise OptionError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")
    return replace(RECIPES[name], **overrides)


#: Settings that ``--set`` does not reach: the run's identity, or named options of their own.
NOT_SETTABLE = ("recipe", "mean", "std", "extra")


def parse_setting(text: str) -> tuple[str, object]:
    """``"blur_prob=0.3"`` -> ``("blur_prob", 0.3)``: one :class:`TrainConfig` field, typed
    like its default (numbers, true/false, comma-separated pairs, ``none`` for optional
    names)."""
    fields = {k: v for k, v in asdict(TrainConfig()).items() if k not in NOT_SETTABLE}
    key, sep, raw = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or key not in fields:
        raise OptionError(f"--set {text!r}: expected KEY=VALUE with KEY one of {', '.join(fields)}")
    default = fields[key]
    try:
        if isinstance(default, bool):
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(raw)
            value: object = raw.lower() in ("true", "1")
        elif isinstance(default, (int, float)):
            value = type(default)(raw)
            if not math.isfinite(value) or value < 0:
                raise ValueError(raw)
        elif isinstance(default, (tuple, list)):
            value = tuple(type(default[0])(v) for v in raw.split(","))
        else:  # optional names (backbone, init)
            value = None if raw.lower() == "none" else raw
    except ValueError:
        kind = type(default).__name__ if default is not None else "name"
        raise OptionError(f"--set {text!r}: {raw!r} is not a valid {kind} for {key}") from None
    return key, value


#: Settings that may differ when a run is resumed: they change neither the data nor the schedule
#: already followed. ``epochs`` may only grow (an extension on purpose).
RESUMABLE_CHANGES = ("epochs", "threads")


def check_resume(saved: TrainConfig, given: TrainConfig, done_epochs: int) -> TrainConfig:
    """The config to resume with: ``given``, if it differs from ``saved`` only in
    :data:`RESUMABLE_CHANGES`; raises :class:`OptionError` naming every other change."""
    changed = [
        f"{k} {getattr(saved, k)!r} -> {getattr(given, k)!r}"
        for k in asdict(saved)
        if k not in RESUMABLE_CHANGES and getattr(saved, k) != getattr(given, k)
    ]
    if changed:
        raise OptionError(
            "--resume keeps the run's settings, but these differ: "
            + "; ".join(changed)
            + ". Drop those options, or train into a new --out folder"
        )
    if given.epochs < done_epochs:
        raise OptionError(
            f"--epochs {given.epochs}: the run already trained {done_epochs} epochs; "
            "pass a larger --epochs to extend it"
        )
    if given.epochs != saved.epochs:
        log.info("extending the run from %d to %d epochs (the cosine schedule is stretched)",
                 saved.epochs, given.epochs)  # fmt: skip
    return given


def read_run_config(out_dir: str | Path) -> tuple[TrainConfig, int]:
    """The config and the number of finished epochs of ``out_dir/last.pt``."""
    last = Path(out_dir) / "last.pt"
    if not last.is_file():
        raise OptionError(f"{last}: no checkpoint to resume; run without --resume")
    import torch

    ck = torch.load(last, map_location="cpu", weights_only=True)
    return config_from_dict(ck["config"]), int(ck["epoch"])
