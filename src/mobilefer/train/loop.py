"""Fine-tune MobileNetV2 on FER2013: config, train_one_epoch, evaluate, fit (with resume).

Reads top to bottom: the recipes, batch augmentation, one epoch, evaluation, then ``fit``, which
checkpoints every epoch and keeps the epoch with the best PublicTest accuracy. PrivateTest is
never looked at here; it is scored once, on the exported file, by ``mobilefer evaluate``.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data import FerData, ferplus_majority, ferplus_targets, load_fer2013
from ..errors import OptionError
from ..labels import EMOTIONS, FERPLUS_LABELS
from ..preprocess import Preprocessing, prepare
from .model import FerNet

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
    augment: bool = True  # everything below up to freeze_blocks; batched on tensors
    max_rotation: float = 20.0  # degrees; webcam faces tilt more than FER2013's
    zoom: tuple[float, float] = (0.8, 1.3)  # crop side / face side: the face fills 77-125%
    #   (smaller than 1: a closer view, as a tight detector box on a whole photo gives)
    max_shift: float = 0.08  # fraction of the image
    erase_prob: float = 0.25  # chance to blank one random rectangle of a face
    photometric_prob: float = 0.5  # brightness x0.6-1.5, contrast x0.6-1.4, gamma 0.7-1.4
    blur_prob: float = 0.3  # Gaussian blur, sigma 0.3-1.5 px at 48 px; 0.15 lost 4 pts to blur
    jpeg_prob: float = 0.3  # JPEG round trip at quality 15-60, redrawn every epoch
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
    ck = torch.load(last, map_location="cpu", weights_only=True)
    return config_from_dict(ck["config"]), int(ck["epoch"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic (AVX-512 BF16 or AMX); Linux only, else False."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def use_bf16(cfg: TrainConfig, device: torch.device) -> bool:
    """bf16 autocast for training: on CUDA, and on CPUs with bf16 units. Without such units
    (AVX2) bf16 ran 10x slower than fp32; with them, 1.8x faster (64 x 96 px steps)."""
    if not cfg.amp:
        return False
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) * (hi - lo) + lo


def photometric(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Random contrast, brightness and gamma for a share of the faces (N x 1 x H x W, 0-1)."""
    n, dev = x.shape[0], x.device
    if cfg.photometric_prob <= 0:
        return x
    contrast = _uniform(n, 0.6, 1.4, gen, dev).view(-1, 1, 1, 1)
    bright = _uniform(n, math.log(0.6), math.log(1.5), gen, dev).exp().view(-1, 1, 1, 1)
    gamma = _uniform(n, math.log(0.7), math.log(1.4), gen, dev).exp().view(-1, 1, 1, 1)
    on = (torch.rand(n, generator=gen, device=dev) < cfg.photometric_prob).view(-1, 1, 1, 1)
    mean = x.mean(dim=(2, 3), keepdim=True)
    y = (((x - mean) * contrast + mean) * bright).clamp(0, 1).pow(gamma)
    return torch.where(on, y, x)


def blur(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Gaussian blur (sigma 0.3-1.5 px, one per face) for a share of the faces."""
    n, dev = x.shape[0], x.device
    if cfg.blur_prob <= 0:
        return x
    sigma = _uniform(n, 0.3, 1.5, gen, dev).view(-1, 1)
    on = (torch.rand(n, generator=gen, device=dev) < cfg.blur_prob).view(-1, 1)
    taps = torch.arange(-3, 4, device=dev, dtype=x.dtype).view(1, -1)
    w = torch.exp(-(taps**2) / (2 * sigma**2))
    w = torch.where(on, w / w.sum(1, keepdim=True), (taps == 0).to(x.dtype))
    h, wd = x.shape[2:]
    y = F.pad(x.view(1, n, h, wd), (3, 3, 0, 0), mode="replicate")
    y = F.conv2d(y, w.view(n, 1, 1, 7), groups=n)
    y = F.pad(y, (0, 0, 3, 3), mode="replicate")
    y = F.conv2d(y, w.view(n, 1, 7, 1), groups=n)
    return y.view(n, 1, h, wd)


def jpeg_faces(pixels: np.ndarray, cfg: TrainConfig, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the faces to JPEG-compress this epoch and their compressed copies.

    Drawn from (seed, epoch) alone, so a resumed run compresses the same faces.
    """
    import cv2

    rng = np.random.default_rng([cfg.seed, epoch])
    idx = np.flatnonzero(rng.random(len(pixels)) < cfg.jpeg_prob) if cfg.augment else []
    quality = rng.integers(15, 61, size=len(idx))
    out = np.empty((len(idx), *pixels.shape[1:]), dtype=np.uint8)
    for j, (i, q) in enumerate(zip(idx, quality, strict=True)):
        ok, buf = cv2.imencode(".jpg", pixels[i], [cv2.IMWRITE_JPEG_QUALITY, int(q)])
        out[j] = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return np.asarray(idx, dtype=np.int64), out


def augment(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Photometric changes and blur at 48 px, then a random affine (zoom, shift, rotation,
    flip) and the resize in one grid_sample, then erasing. JPEG artefacts come from
    :func:`jpeg_faces`, before this.

    ``x`` is N x 1 x 48 x 48 in 0-1, on any device (``gen`` lives there too); the result is
    N x 1 x S x S. With ``cfg.augment`` off this is the plain bilinear resize that
    :func:`mobilefer.preprocess.prepare` does.
    """
    n, size, dev = x.shape[0], cfg.input_size, x.device
    if not cfg.augment:
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return _uniform(n, lo, hi, gen, dev)

    x = blur(photometric(x, cfg, gen), cfg, gen)
    angle = uniform(-cfg.max_rotation, cfg.max_rotation) * math.pi / 180
    scale = uniform(math.log(cfg.zoom[0]), math.log(cfg.zoom[1])).exp()
    flip = torch.where(torch.rand(n, generator=gen, device=dev) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin, uniform(-cfg.max_shift, cfg.max_shift) * 2], 1),
            torch.stack([sin * flip, cos, uniform(-cfg.max_shift, cfg.max_shift) * 2], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, [n, 1, size, size], align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if cfg.erase_prob > 0:
        # One rectangle of 2-20% of the area per chosen face, filled with the face's mean.
        area = uniform(0.02, 0.2) * size * size
        aspect = torch.exp(uniform(math.log(0.3), math.log(3.3)))
        eh = (area * aspect).sqrt().clamp(1, size).long()
        ew = (area / aspect).sqrt().clamp(1, size).long()
        top = (torch.rand(n, generator=gen, device=dev) * (size - eh + 1)).long()
        left = (torch.rand(n, generator=gen, device=dev) * (size - ew + 1)).long()
        rows = torch.arange(size, device=dev).view(1, size, 1)
        cols = torch.arange(size, device=dev).view(1, 1, size)
        box = (
            (rows >= top.view(-1, 1, 1)) & (rows < (top + eh).view(-1, 1, 1))
            & (cols >= left.view(-1, 1, 1)) & (cols < (left + ew).view(-1, 1, 1))
        )  # fmt: skip
        chosen = (torch.rand(n, generator=gen, device=dev) < cfg.erase_prob).view(-1, 1, 1)
        mask = (box & chosen).unsqueeze(1)
        out = torch.where(mask, out.mean(dim=(2, 3), keepdim=True), out)
    return out


def normalise(x: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """N x 1 x S x S in 0-1 -> N x 3 x S x S normalised with the recipe's mean/std."""
    mean = torch.tensor(cfg.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(cfg.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x.expand(-1, len(cfg.mean), -1, -1) - mean) / std


def set_train_mode(model: FerNet, cfg: TrainConfig) -> None:
    """Train mode, except the frozen backbone blocks: their BatchNorm layers keep ImageNet's
    running statistics, as their weights keep ImageNet's values."""
    model.train()
    model.features[: cfg.freeze_blocks].eval()


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


def train_one_epoch(model, optimizer, scheduler, data: TrainSet, cfg, device, gen) -> dict:
    """One pass over the training faces in a random order; returns mean loss and accuracy.

    Nothing in the loop waits for the device: the running sums stay tensors until the end.
    """
    set_train_mode(model, cfg)
    n = len(data.labels)
    order = torch.randperm(n, generator=gen, device=device)
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = torch.zeros((), device=device, dtype=torch.long)  # labelled faces
    faces_seen = 0
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    bf16 = use_bf16(cfg, device)
    for start in range(0, n, cfg.batch_size):
        idx = order[start : start + cfg.batch_size]
        if len(idx) < 2:  # BatchNorm needs two samples
            continue
        faces = data.faces[idx].float().div_(255).unsqueeze(1)
        x = normalise(augment(faces, cfg, gen), cfg).contiguous(memory_format=fmt)
        y = data.labels[idx]  # -1 for extra faces, which learn from the teacher alone
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits, ferplus_logits = model.forward_heads(x)
        logits = logits.float()
        adjusted = logits
        if cfg.logit_adjust and data.log_prior is not None:
            adjusted = logits + cfg.logit_adjust * data.log_prior
        labelled = y >= 0
        hard = F.cross_entropy(adjusted, y.clamp_min(0), label_smoothing=cfg.label_smoothing,
                               reduction="none") * labelled  # fmt: skip
        if data.teacher is not None and cfg.distill_weight > 0:
            loss = ((1 - cfg.distill_weight) * hard).sum() / labelled.sum().clamp_min(1)
            loss = loss + cfg.distill_weight * distill_loss(logits, data.teacher[idx], cfg)
        else:
            loss = hard.sum() / labelled.sum().clamp_min(1)
        if ferplus_logits is not None and data.soft is not None:
            mask = data.soft_mask[idx].float()
            per_face = -(data.soft[idx] * F.log_softmax(ferplus_logits.float(), 1)).sum(1)
            loss = loss + cfg.ferplus_weight * (per_face * mask).sum() / mask.sum().clamp_min(1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total_loss += loss.detach() * len(idx)
        correct += (logits.detach().argmax(1) == y).sum()
        seen += labelled.sum()
        faces_seen += len(idx)
    return {
        "loss": total_loss.item() / max(faces_seen, 1),
        "accuracy": correct.item() / max(seen.item(), 1),
    }


def distill_loss(logits: torch.Tensor, teacher: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """Mean KL divergence of the student's tempered softmax from the teacher's tempered
    probabilities, times T^2 (Hinton et al. 2015), so its gradients keep their size across T."""
    t = cfg.distill_temperature
    target = teacher.clamp_min(1e-8).log() / t
    target = torch.softmax(target, 1)
    student = F.log_softmax(logits / t, 1)
    return F.kl_div(student, target, reduction="batchmean") * t * t


@torch.no_grad()
def predict_heads(
    model, pixels: np.ndarray, cfg: TrainConfig, device, flip: bool = False, zoom: float = 1.0
):
    """Softmax probabilities of both heads (the second ``None`` without a FER+ head) for
    48x48 faces, preprocessed exactly as inference does (``zoom``: see :class:`Preprocessing`),
    in fp32."""
    model.eval()
    pre = replace(cfg.preprocessing(), zoom=zoom)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    main, aux = [], []
    for start in range(0, len(pixels), 256):
        batch = pixels[start : start + 256]
        if flip:
            batch = batch[:, :, ::-1]
        x = torch.from_numpy(prepare(list(batch), pre)).to(device, memory_format=fmt)
        a, b = model.forward_heads(x)
        main.append(torch.softmax(a.float(), 1).cpu())
        if b is not None:
            aux.append(torch.softmax(b.float(), 1).cpu())
    empty = torch.empty(0, 7)
    return (torch.cat(main) if main else empty), (torch.cat(aux) if aux else None)


def predict_probs(
    model, pixels, cfg, device, flip: bool = False, head: str = "fer2013", zoom: float = 1.0
):
    """Softmax probabilities of one head (``fer2013`` or ``ferplus``); see :func:`predict_heads`."""
    main, aux = predict_heads(model, pixels, cfg, device, flip, zoom)
    if head == "ferplus":
        if aux is None:
            raise OptionError("this model has no FER+ head; train it with FER+ votes")
        return aux
    return main


def evaluate(model, data: FerData, cfg: TrainConfig, device) -> dict:
    """Loss and accuracy on a labelled split (the same preprocessing as inference, single
    crop); with a FER+ head and votes, also its majority-vote accuracy (``ferplus_accuracy``)."""
    probs, aux = predict_heads(model, data.pixels, cfg, device)
    y = torch.from_numpy(data.labels)
    loss = F.nll_loss(torch.log(probs.clamp_min(1e-12)), y).item()
    acc = (probs.argmax(1) == y).float().mean().item()
    out = {"loss": loss, "accuracy": acc, "probs": probs.numpy()}
    if aux is not None and data.votes is not None:
        majority = torch.from_numpy(ferplus_majority(data.votes))
        keep = majority >= 0
        out["ferplus_accuracy"] = (aux.argmax(1)[keep] == majority[keep]).float().mean().item()
    return out


def _lr_lambda(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    warm = int(cfg.warmup_epochs * steps_per_epoch)
    total = cfg.epochs * steps_per_epoch

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if cfg.schedule == "constant":
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    return f


def build(cfg: TrainConfig, steps_per_epoch: int, device):
    """The model, optimizer and per-step scheduler of a recipe."""
    model = FerNet(
        hidden=cfg.hidden, dropout=cfg.dropout, width_mult=cfg.width_mult, backbone=cfg.backbone,
        ferplus_classes=len(FERPLUS_LABELS) if cfg.ferplus_weight > 0 else 0,
    ).to(device)  # fmt: skip
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    for p in model.features[: cfg.freeze_blocks].parameters():
        p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        raise OptionError(f"unknown optimizer {cfg.optimizer!r}; choose from adamw, adam")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg, steps_per_epoch))
    return model, opt, sched


def make_train_set(
    train: FerData, cfg: TrainConfig, device, extra: np.ndarray | None = None
) -> TrainSet:
    """The training tensors: ``train``'s faces, then the ``extra`` faces (N x 48 x 48), which
    get label -1, no FER+ votes and, like every face, the teacher's targets when there is one."""
    extra = np.zeros((0, 48, 48), np.uint8) if extra is None else extra
    pixels = np.concatenate([train.pixels, extra])
    labels = np.concatenate([train.labels, np.full(len(extra), -1, dtype=train.labels.dtype)])
    prior = np.bincount(train.labels, minlength=len(EMOTIONS)) / max(len(train.labels), 1)
    out = TrainSet(
        faces=torch.from_numpy(pixels).to(device),
        labels=torch.from_numpy(labels).to(device),
        log_prior=torch.from_numpy(np.log(np.maximum(prior, 1e-8))).float().to(device),
    )
    if cfg.ferplus_weight > 0:
        if train.votes is None:
            raise OptionError(
                "this recipe trains a FER+ head (ferplus_weight > 0) but no FER+ votes were "
                "given: pass --ferplus ferplus.npz, or --ferplus-weight 0"
            )
        soft, mask = ferplus_targets(train.votes)
        soft = np.concatenate([soft, np.zeros((len(extra), soft.shape[1]), soft.dtype)])
        mask = np.concatenate([mask, np.zeros(len(extra), dtype=bool)])
        out.soft = torch.from_numpy(soft).to(device)
        out.soft_mask = torch.from_numpy(mask).to(device)
    if cfg.distill_weight > 0:
        from .distill import teacher_probs

        if not cfg.teacher:
            raise OptionError("distill_weight > 0 needs a teacher: --set teacher=MODEL.onnx")
        probs = teacher_probs(cfg.teacher, pixels, threads=cfg.threads or None)
        out.teacher = torch.from_numpy(probs).to(device)
    return out


def fit(
    cfg: TrainConfig,
    data: FerData | str | Path,
    out_dir: str | Path,
    resume: bool = False,
    on_epoch: Callable[[dict], None] | None = None,
    device: str | None = None,
) -> dict:
    """Train ``cfg`` on the Training split, scoring PublicTest after every epoch.

    ``data`` carries FER+ votes (:meth:`FerData.with_ferplus`) when ``cfg.ferplus_weight`` > 0.
    Writes into ``out_dir``: ``config.json``, ``last.pt`` (model, optimizer, scheduler, epoch,
    config, history, RNG states; every epoch), ``best.pt`` (best PublicTest accuracy),
    ``best_ferplus.pt`` (best PublicTest FER+ accuracy, with a FER+ head), ``metrics.json``.
    With ``resume``, continues from ``last.pt``: the saved config must equal ``cfg`` but for
    :data:`RESUMABLE_CHANGES` (see :func:`check_resume`). Returns the metrics dict.
    """
    out = Path(out_dir)
    last = out / "last.pt"
    ck = None
    if resume:  # the checkpoint's config decides before anything is built from it
        if not last.is_file():
            raise OptionError(f"{last}: no checkpoint to resume; run without --resume")
        ck = torch.load(last, map_location="cpu", weights_only=True)
        cfg = check_resume(config_from_dict(ck["config"]), cfg, int(ck["epoch"]))
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if not isinstance(data, FerData):
        data = load_fer2013(data)
    train, public = data.split("train"), data.split("public")
    if cfg.limit_train:
        train = train.head(cfg.limit_train)
    extra = None
    if cfg.extra_faces:
        from .distill import load_extra_faces

        if cfg.distill_weight <= 0:
            raise OptionError("extra_faces learn from a teacher alone: set distill_weight > 0")
        extra = load_extra_faces(cfg.extra_faces)
        if cfg.limit_train:
            extra = extra[: cfg.limit_train]
    train_set = make_train_set(train, cfg, dev, extra)
    pixels = train_set.faces.cpu().numpy()
    steps = math.ceil(len(pixels) / cfg.batch_size)

    seed_everything(cfg.seed)
    model, opt, sched = build(cfg, steps, dev)
    if cfg.init and ck is None:
        weights = torch.load(cfg.init, map_location=dev, weights_only=True)["model"]
        missing, _ = model.load_state_dict(weights, strict=False)
        log.info("started from %s (new: %s)", cfg.init, ", ".join(missing) or "nothing")
    gen = torch.Generator(device=dev).manual_seed(cfg.seed)
    history: list[dict] = []
    best = {"epoch": 0, "public_accuracy": -1.0}
    best_ferplus = {"epoch": 0, "public_ferplus_accuracy": -1.0}
    start_epoch = 1
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        gen.set_state(ck["generator"])
        torch.set_rng_state(ck["torch_rng"])
        if ck.get("cuda_rng") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ck["cuda_rng"])
        history, best, start_epoch = ck["history"], ck["best"], ck["epoch"] + 1
        best_ferplus = ck.get("best_ferplus", best_ferplus)
        log.info("resumed %s at epoch %d", last, start_epoch)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    metrics = {"config": asdict(cfg), "history": history, "best": best}

    for epoch in range(start_epoch, cfg.epochs + 1):
        t0 = time.perf_counter()
        idx, jpeg = jpeg_faces(pixels, cfg, epoch)
        epoch_set = replace(train_set, faces=train_set.faces.clone()) if len(idx) else train_set
        if len(idx):
            epoch_set.faces[torch.from_numpy(idx).to(dev)] = torch.from_numpy(jpeg).to(dev)
        tr = train_one_epoch(model, opt, sched, epoch_set, cfg, dev, gen)
        ev = (
            evaluate(model, public, cfg, dev)
            if len(public)
            else {"loss": math.nan, "accuracy": math.nan}
        )
        row = {
            "epoch": epoch,
            "train_loss": tr["loss"],
            "train_accuracy": tr["accuracy"],
            "public_loss": ev["loss"],
            "public_accuracy": ev["accuracy"],
            "lr": opt.param_groups[0]["lr"],
            "seconds": time.perf_counter() - t0,
        }
        if "ferplus_accuracy" in ev:
            row["public_ferplus_accuracy"] = ev["ferplus_accuracy"]
        history.append(row)
        if not ev["accuracy"] <= best["public_accuracy"]:  # also true for the first NaN
            best = {"epoch": epoch, "public_accuracy": ev["accuracy"]}
            _save({"model": model.state_dict(), "epoch": epoch, "config": asdict(cfg)},
                  out / "best.pt")  # fmt: skip
        fp = ev.get("ferplus_accuracy")
        if fp is not None and fp > best_ferplus["public_ferplus_accuracy"]:
            best_ferplus = {"epoch": epoch, "public_ferplus_accuracy": fp}
            _save({"model": model.state_dict(), "epoch": epoch, "config": asdict(cfg)},
                  out / "best_ferplus.pt")  # fmt: skip
        ck = {
            "model": model.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "epoch": epoch, "config": asdict(cfg),
            "history": history, "best": best, "best_ferplus": best_ferplus,
            "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }  # fmt: skip
        _save(ck, last)
        metrics = {"config": asdict(cfg), "history": history, "best": best}
        if fp is not None:
            metrics["best_ferplus"] = best_ferplus
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        if on_epoch:
            on_epoch(row)
    return metrics


def _save(obj: dict, path: Path) -> None:
    """Write through a temporary file: a kill mid-write never leaves a broken checkpoint."""
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[FerNet, TrainConfig]:
    """The model (eval mode) and config of a ``best.pt`` / ``last.pt`` checkpoint."""
    ck = torch.load(path, map_location=device, weights_only=True)
    cfg = config_from_dict(ck["config"])
    has_ferplus = any(k.startswith("ferplus_head.") for k in ck["model"])
    model = FerNet(
        hidden=cfg.hidden, dropout=cfg.dropout, width_mult=cfg.width_mult, backbone=None,
        ferplus_classes=len(FERPLUS_LABELS) if has_ferplus else 0,
    )  # fmt: skip
    model.load_state_dict(ck["model"])
    return model.eval(), cfg
