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
from ..preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

log = logging.getLogger(__name__)


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
    # Faces beyond FER2013 Training (sources.py): dicts of Source fields, read once, cut once.
    sources: tuple = ()  # trained on, each face `weight` times an epoch; fold=train rows only
    val_sources: tuple = ()  # chosen by: fold=val rows; with them best.pt has the best domain score
    fer2013_weight: float = 1.0  # each FER2013 Training face's expected times per epoch
    margin: float = 0.0  # crop margin of whole photos (as the card's, which export writes)
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
    init: str | None = None  # start from a checkpoint, a model file or a shipped model's name
    init_member: int = 0  # which network of a model file (an ensemble holds several)
    seed: int = 0
    threads: int = 0  # torch threads; 0 keeps torch's default
    limit_train: int = 0  # use only the first N training faces (tests, smoke runs); 0 = all
    notes: dict = field(default_factory=dict)  # free-form notes kept with the run

    def preprocessing(self) -> Preprocessing:
        return Preprocessing(input_size=self.input_size, mean=self.mean, std=self.std)


def config_from_dict(d: dict) -> TrainConfig:
    """A config back from JSON (lists become tuples again); configs of older runs are read
    with their renamed fields (``extra`` notes, ``extra_faces`` as a teacher source)."""
    d = dict(d)
    if "extra" in d:
        d["notes"] = d.pop("extra")
    folder = d.pop("extra_faces", None)
    if folder:
        d["sources"] = [
            *d.get("sources", ()),
            {"name": "extra_faces", "path": folder, "targets": "teacher"},
        ]
    return TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


#: Settings that ``--set`` does not reach: the run's identity, or named options of their own.
NOT_SETTABLE = ("recipe", "mean", "std", "notes", "sources", "val_sources")


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


#: The range of each number of a config (tuples: each element; pairs are also low <= high), and
#: the choices of its words. A run's numbers are checked once, before any work: a batch of
#: 10^9 faces or 100,000 threads would fail only after the data was loaded, or hang.
BOUNDS: dict[str, tuple[float, float]] = {
    "input_size": (32, 1024),
    "epochs": (1, 10_000),
    "batch_size": (2, 65_536),
    "lr": (0, 10),
    "weight_decay": (0, 10),
    "warmup_epochs": (0, 10_000),
    "label_smoothing": (0, 0.99),
    "dropout": (0, 0.99),
    "hidden": (1, 65_536),
    "ferplus_weight": (0, 100),
    "logit_adjust": (0, 2),
    "distill_weight": (0, 1),
    "distill_temperature": (0.1, 100),
    "fer2013_weight": (0, 1000),
    "margin": (-0.4, 1),
    "max_rotation": (0, 180),
    "zoom": (0.1, 10),
    "max_shift": (0, 1),
    "flip_prob": (0, 1),
    "erase_prob": (0, 1),
    "erase_area": (0, 1),
    "erase_aspect": (0.01, 100),
    "photometric_prob": (0, 1),
    "contrast": (0, 10),
    "brightness": (0.01, 100),
    "gamma": (0.01, 100),
    "blur_prob": (0, 1),
    "blur_sigma": (0, 20),
    "jpeg_prob": (0, 1),
    "jpeg_quality": (1, 100),
    "freeze_blocks": (0, 19),
    "width_mult": (0.05, 4),
    "init_member": (0, 1000),
    "seed": (0, 2**32 - 1),
    "threads": (0, 256),
    "limit_train": (0, 10**9),
}
CHOICES = {"optimizer": ("adamw", "adam"), "schedule": ("cosine", "constant")}
#: Tuples whose two values are a range (low, high).
PAIRS = (
    "zoom",
    "erase_area",
    "erase_aspect",
    "contrast",
    "brightness",
    "gamma",
    "blur_sigma",
    "jpeg_quality",
)


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def check_config(cfg: TrainConfig) -> TrainConfig:
    """``cfg``, every number within :data:`BOUNDS` and every word one of :data:`CHOICES`;
    :class:`OptionError` names the first setting that is not, and what it takes."""
    for key, choices in CHOICES.items():
        if getattr(cfg, key) not in choices:
            raise OptionError(f"{key}={getattr(cfg, key)!r}: choose from {', '.join(choices)}")
    for key, (lo, hi) in BOUNDS.items():
        value = getattr(cfg, key)
        values = value if isinstance(value, tuple) else (value,)
        ok = all(
            isinstance(v, (int, float))
            and not isinstance(v, bool)
            and math.isfinite(v)
            and lo <= v <= hi
            for v in values
        )
        if key in PAIRS:
            ok = ok and len(values) == 2 and values[0] <= values[1]
        if key == "hidden":
            ok = ok and 1 <= len(values) <= 8
        if not ok:
            pair = " (low,high)" if key in PAIRS else ""
            raise OptionError(f"{key}={value!r}: expected {_num(lo)} to {_num(hi)}{pair}")
    return cfg


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
        log.info(
            "extending the run from %d to %d epochs (the cosine schedule is stretched)",
            saved.epochs,
            given.epochs,
        )
    return given


def read_run_config(out_dir: str | Path) -> tuple[TrainConfig, int]:
    """The config and the number of finished epochs of ``out_dir/last.pt``."""
    last = Path(out_dir) / "last.pt"
    if not last.is_file():
        raise OptionError(f"{last}: no checkpoint to resume; run without --resume")
    import torch

    ck = torch.load(last, map_location="cpu", weights_only=True)
    return config_from_dict(ck["config"]), int(ck["epoch"])


def apply_settings(cfg: TrainConfig, texts: list[str]) -> TrainConfig:
    """``cfg`` with each ``--set`` applied in order: a field (:func:`parse_setting`);
    ``extra=DIR``, a folder of class-named subfolders trained on with its labels (a source
    named ``extra``; ``extra_weight=W`` sets how often); or ``source.NAME.FIELD=VALUE``, one
    field of a training source of the recipe (``weight``, ``targets``, ``path``, ``detect``)."""
    from .sources import source_of

    for text in texts:
        key, sep, raw = text.partition("=")
        key = key.strip().replace("-", "_")
        if key in ("extra", "extra_weight") and sep:
            sources = [dict(s) for s in cfg.sources]
            found = next((s for s in sources if s["name"] == "extra"), None)
            if found is None:
                found = {"name": "extra", "path": "", "reader": "folder"}
                sources.append(found)
            try:
                found.update({"path": raw} if key == "extra" else {"weight": float(raw)})
            except ValueError:
                raise OptionError(f"--set {text!r}: {raw!r} is not a number") from None
            cfg = replace(cfg, sources=tuple(sources))
        elif key.startswith("source.") and sep:
            _, name, attr = (key.split(".") + ["", ""])[:3]
            sources = [dict(s) for s in cfg.sources]
            found = next((s for s in sources if s["name"] == name), None)
            if found is None or attr not in ("weight", "targets", "path", "detect"):
                names = ", ".join(s["name"] for s in sources) or "none in this recipe"
                raise OptionError(
                    f"--set {text!r}: expected source.NAME.FIELD=VALUE with NAME "
                    f"one of {names} and FIELD weight, targets, path or detect"
                )
            try:
                value: object = (
                    float(raw)
                    if attr == "weight"
                    else raw.lower() in ("true", "1")
                    if attr == "detect"
                    else raw
                )
            except ValueError:
                raise OptionError(f"--set {text!r}: {raw!r} is not a number") from None
            found[attr] = value
            source_of(found)
            cfg = replace(cfg, sources=tuple(sources))
        else:
            k, v = parse_setting(text)
            cfg = replace(cfg, **{k: v})
    for s in cfg.sources:
        if not source_of(s).path:
            raise OptionError(f"source {s['name']}: no path; give it with --set extra=DIR")
    return cfg
