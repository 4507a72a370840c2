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

from ..data import FerData, load_fer2013
from ..errors import OptionError
from ..preprocess import Preprocessing, prepare
from .model import FerNet

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class TrainConfig:
    recipe: str = "default"  # name, saved into the model file
    input_size: int = 96  # px; 2x FER2013's 48; fp32 training runs 90 img/s here, 112 px only 44
    mean: tuple[float, ...] = IMAGENET_MEAN  # the backbone was trained with ImageNet statistics
    std: tuple[float, ...] = IMAGENET_STD
    epochs: int = 16  # ~4.5 min each at 96 px with 4 frozen blocks: fits ~90 min on 2 cores
    batch_size: int = 64
    optimizer: str = "adamw"  # adamw | adam
    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 0.05  # decoupled (AdamW); regularises the small head and the backbone
    warmup_epochs: float = 1.0  # linear warm-up protects the ImageNet features from the random head
    schedule: str = "cosine"  # cosine (to 0 after warm-up) | constant
    label_smoothing: float = 0.1  # FER2013 labels are noisy (FER+ relabels ~1 in 4)
    dropout: float = 0.2  # before each dense layer of the head
    hidden: tuple[int, ...] = (128, 64)  # the paper's head widths
    augment: bool = True  # random crop/zoom, flip, rotation, erasing, done batched on tensors
    max_rotation: float = 10.0  # degrees
    zoom: tuple[float, float] = (0.85, 1.05)  # fraction of the face kept; <1 zooms in
    max_shift: float = 0.08  # fraction of the image
    erase_prob: float = 0.25  # chance to blank one random rectangle of a face
    freeze_blocks: int = 4  # first backbone blocks kept at ImageNet values: 92 vs 44 img/s here
    amp: bool = True  # bf16 autocast on GPU only: on AVX2 CPUs (no bf16 units) it ran 10x slower
    channels_last: bool = True
    width_mult: float = 1.0  # <1 only for tests (no ImageNet weights then)
    backbone: str | None = "imagenet"  # "imagenet" (torch hub cache), a file path, or None
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
        label_smoothing=0.0, dropout=0.0, augment=False, freeze_blocks=0,
    ),
    # Ours for 2 CPU cores, chosen on PublicTest.
    "default": TrainConfig(),
}  # fmt: skip


def config_from_dict(d: dict) -> TrainConfig:
    """A config back from JSON (lists become tuples again)."""
    return TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def recipe(name: str, **overrides) -> TrainConfig:
    """The named recipe with some settings replaced."""
    if name not in RECIPES:
        raise OptionError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")
    return replace(RECIPES[name], **overrides)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def augment(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Random affine (zoom, shift, rotation, flip) and resize in one grid_sample, then erasing.

    ``x`` is N x 1 x 48 x 48 in 0-1; the result is N x 1 x S x S. With ``cfg.augment`` off this
    is the plain bilinear resize that :func:`mobilefer.preprocess.prepare` does.
    """
    n, size = x.shape[0], cfg.input_size
    if not cfg.augment:
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n, generator=gen) * (hi - lo) + lo

    angle = uniform(-cfg.max_rotation, cfg.max_rotation) * math.pi / 180
    scale = uniform(*cfg.zoom)
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
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
        top = (torch.rand(n, generator=gen) * (size - eh + 1)).long()
        left = (torch.rand(n, generator=gen) * (size - ew + 1)).long()
        rows = torch.arange(size).view(1, size, 1)
        cols = torch.arange(size).view(1, 1, size)
        box = (
            (rows >= top.view(-1, 1, 1)) & (rows < (top + eh).view(-1, 1, 1))
            & (cols >= left.view(-1, 1, 1)) & (cols < (left + ew).view(-1, 1, 1))
        )  # fmt: skip
        chosen = (torch.rand(n, generator=gen) < cfg.erase_prob).view(-1, 1, 1)
        mask = (box & chosen).unsqueeze(1)
        out = torch.where(mask, out.mean(dim=(2, 3), keepdim=True), out)
    return out


def normalise(x: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """N x 1 x S x S in 0-1 -> N x 3 x S x S normalised with the recipe's mean/std."""
    mean = torch.tensor(cfg.mean, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(cfg.std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x.expand(-1, len(cfg.mean), -1, -1) - mean) / std


def _autocast(cfg: TrainConfig, device: torch.device):
    return torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=cfg.amp and device.type == "cuda"
    )


def train_one_epoch(model, optimizer, scheduler, faces, labels, cfg, device, gen) -> dict:
    """One pass over the training faces in a random order; returns mean loss and accuracy."""
    model.train()
    order = torch.randperm(len(labels), generator=gen)
    total_loss, correct, seen = 0.0, 0, 0
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    for start in range(0, len(order), cfg.batch_size):
        idx = order[start : start + cfg.batch_size]
        if len(idx) < 2:  # BatchNorm needs two samples
            continue
        x = normalise(augment(faces[idx], cfg, gen), cfg).to(device, memory_format=fmt)
        y = labels[idx].to(device)
        with _autocast(cfg, device):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total_loss += loss.item() * len(idx)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(idx)
    return {"loss": total_loss / max(seen, 1), "accuracy": correct / max(seen, 1)}


@torch.no_grad()
def predict_probs(model, pixels: np.ndarray, cfg: TrainConfig, device, flip: bool = False):
    """Softmax probabilities for 48x48 faces, preprocessed exactly as inference does."""
    model.eval()
    pre = cfg.preprocessing()
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    out = []
    for start in range(0, len(pixels), 256):
        batch = pixels[start : start + 256]
        if flip:
            batch = batch[:, :, ::-1]
        x = torch.from_numpy(prepare(list(batch), pre)).to(device, memory_format=fmt)
        with _autocast(cfg, device):
            out.append(torch.softmax(model(x).float(), 1).cpu())
    return torch.cat(out) if out else torch.empty(0, 7)


def evaluate(model, data: FerData, cfg: TrainConfig, device, flip_tta: bool = False) -> dict:
    """Loss and accuracy on a labelled split (the same preprocessing as inference)."""
    probs = predict_probs(model, data.pixels, cfg, device)
    if flip_tta:
        probs = (probs + predict_probs(model, data.pixels, cfg, device, flip=True)) / 2
    y = torch.from_numpy(data.labels)
    loss = F.nll_loss(torch.log(probs.clamp_min(1e-12)), y).item()
    acc = (probs.argmax(1) == y).float().mean().item()
    return {"loss": loss, "accuracy": acc, "probs": probs.numpy()}


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
        hidden=cfg.hidden, dropout=cfg.dropout, width_mult=cfg.width_mult, backbone=cfg.backbone
    ).to(device)
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


def fit(
    cfg: TrainConfig,
    data: FerData | str | Path,
    out_dir: str | Path,
    resume: bool = False,
    on_epoch: Callable[[dict], None] | None = None,
    device: str | None = None,
) -> dict:
    """Train ``cfg`` on the Training split, scoring PublicTest after every epoch.

    Writes into ``out_dir``: ``config.json``, ``last.pt`` (model, optimizer, scheduler, epoch,
    config, history; every epoch), ``best.pt`` (best PublicTest accuracy), ``metrics.json``.
    With ``resume``, continues from ``last.pt``. Returns the metrics dict.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if not isinstance(data, FerData):
        data = load_fer2013(data)
    train, public = data.split("train"), data.split("public")
    if cfg.limit_train:
        train = FerData(*(a[: cfg.limit_train] for a in (train.pixels, train.labels, train.usage)))
    faces = torch.from_numpy(train.pixels).float().div_(255).unsqueeze(1)
    labels = torch.from_numpy(train.labels)
    steps = math.ceil(len(labels) / cfg.batch_size)

    seed_everything(cfg.seed)
    model, opt, sched = build(cfg, steps, dev)
    gen = torch.Generator().manual_seed(cfg.seed)
    history: list[dict] = []
    best = {"epoch": 0, "public_accuracy": -1.0}
    start_epoch = 1
    last = out / "last.pt"
    if resume and last.exists():
        ck = torch.load(last, map_location=dev, weights_only=False)
        if ck["config"] != asdict(cfg):
            log.warning("resuming %s with its saved config, not the one given", last)
            cfg = config_from_dict(ck["config"])
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        gen.set_state(ck["generator"])
        torch.set_rng_state(ck["torch_rng"])
        history, best, start_epoch = ck["history"], ck["best"], ck["epoch"] + 1
        log.info("resumed %s at epoch %d", last, start_epoch)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))

    for epoch in range(start_epoch, cfg.epochs + 1):
        t0 = time.perf_counter()
        tr = train_one_epoch(model, opt, sched, faces, labels, cfg, dev, gen)
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
        history.append(row)
        if not ev["accuracy"] <= best["public_accuracy"]:  # also true for the first NaN
            best = {"epoch": epoch, "public_accuracy": ev["accuracy"]}
            torch.save(
                {"model": model.state_dict(), "epoch": epoch, "config": asdict(cfg)},
                out / "best.pt",
            )
        ck = {
            "model": model.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "epoch": epoch, "config": asdict(cfg),
            "history": history, "best": best, "generator": gen.get_state(),
            "torch_rng": torch.get_rng_state(),
        }  # fmt: skip
        torch.save(ck, out / "last.tmp")
        (out / "last.tmp").replace(last)  # a kill mid-write never leaves a broken checkpoint
        metrics = {"config": asdict(cfg), "history": history, "best": best}
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        if on_epoch:
            on_epoch(row)
    return {"config": asdict(cfg), "history": history, "best": best}


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[FerNet, TrainConfig]:
    """The model (eval mode) and config of a ``best.pt`` / ``last.pt`` checkpoint."""
    ck = torch.load(path, map_location=device, weights_only=False)
    cfg = config_from_dict(ck["config"])
    model = FerNet(hidden=cfg.hidden, dropout=cfg.dropout, width_mult=cfg.width_mult, backbone=None)
    model.load_state_dict(ck["model"])
    return model.eval(), cfg
