"""Fine-tune MobileNetV2 on FER2013: train_one_epoch, evaluate, fit (with checkpoints and
resume), after torchvision's reference training script.

Reads top to bottom: the hardware switches, one epoch, evaluation, the model and optimizer of a
config, the training tensors, then ``fit``, which checkpoints every epoch and keeps the epoch
with the best PublicTest accuracy. The settings live in :mod:`.config`, the augmentation in
:mod:`.augment`. PrivateTest is never looked at here; it is scored once, on the exported file,
by ``mobilefer evaluate``.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data import FerData, ferplus_majority, load_fer2013
from ..errors import OptionError
from ..evaluate import scores
from ..labels import FERPLUS_LABELS
from ..sinks import write_atomic
from .augment import augment, jpeg_faces, normalise
from .checkpoints import init_is_model_file, initial_weights, load_checkpoint, save_checkpoint
from .config import TrainConfig, check_config, check_resume, config_from_dict
from .model import FerNet
from .scoring import HEAD_LABELS, predict_heads, predict_probs
from .sources import Faces, Source, epoch_indices, load_source, source_of
from .trainset import TrainSet, make_train_set

log = logging.getLogger(__name__)


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


def set_train_mode(model: FerNet, cfg: TrainConfig) -> None:
    """Train mode, except the frozen backbone blocks: their BatchNorm layers keep ImageNet's
    running statistics, as their weights keep ImageNet's values. A network started from a
    model file keeps every BatchNorm in eval mode: the file's statistics were folded away."""
    model.train()
    model.features[: cfg.freeze_blocks].eval()
    if init_is_model_file(cfg):
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eval()


def train_one_epoch(model, optimizer, scheduler, data: TrainSet, cfg, device, gen) -> dict:
    """One pass over the training faces in a random order; returns mean loss and accuracy.

    Nothing in the loop waits for the device: the running sums stay tensors until the end.
    """
    set_train_mode(model, cfg)
    if data.groups:
        order = epoch_indices(list(data.groups), list(data.weights), gen)
    else:
        order = torch.randperm(len(data.labels), generator=gen, device=device)
    n = len(order)
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
        hard = (
            F.cross_entropy(
                adjusted, y.clamp_min(0), label_smoothing=cfg.label_smoothing, reduction="none"
            )
            * labelled
        )
        if data.teacher is not None and cfg.distill_weight > 0:
            taught = data.teacher_mask[idx]
            loss = ((1 - cfg.distill_weight * taught) * hard).sum() / labelled.sum().clamp_min(1)
            soft = distill_loss(logits, data.teacher[idx], cfg) * taught
            loss = loss + cfg.distill_weight * soft.sum() / taught.sum().clamp_min(1)
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
    """Per face, the KL divergence of the student's tempered softmax from the teacher's
    tempered probabilities, times T^2 (Hinton et al. 2015), so its gradients keep their size
    across T."""
    t = cfg.distill_temperature
    target = teacher.clamp_min(1e-8).log() / t
    target = torch.softmax(target, 1)
    student = F.log_softmax(logits / t, 1)
    return F.kl_div(student, target, reduction="none").sum(1) * t * t


def evaluate(model, data: FerData, cfg: TrainConfig, device) -> dict:
    """Loss and accuracy on a labelled split (the same preprocessing as inference, single
    crop); with a FER+ head and votes, also its majority-vote accuracy (``ferplus_accuracy``)."""
    probs, aux = predict_heads(model, data.pixels, cfg, device)
    y = torch.from_numpy(data.labels)
    loss = F.nll_loss(torch.log(probs.clamp_min(1e-12)), y).item()
    acc = (probs.argmax(1) == y).float().mean().item()
    out = {
        "loss": loss,
        "accuracy": acc,
        "probs": probs.numpy(),
        "macro_f1": scores(data.labels, probs.argmax(1).numpy())["macro_f1"],
    }
    if aux is not None and data.votes is not None:
        majority = torch.from_numpy(ferplus_majority(data.votes))
        keep = majority >= 0
        out["ferplus_accuracy"] = (aux.argmax(1)[keep] == majority[keep]).float().mean().item()
        out["ferplus_macro_f1"] = scores(
            majority[keep].numpy(), aux.argmax(1)[keep].numpy(), labels=FERPLUS_LABELS
        )["macro_f1"]
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
        hidden=cfg.hidden,
        dropout=cfg.dropout,
        width_mult=cfg.width_mult,
        backbone=cfg.backbone,
        ferplus_classes=len(FERPLUS_LABELS) if cfg.ferplus_weight > 0 else 0,
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


def evaluate_sources(model, val: list[tuple[Source, Faces]], public: dict, cfg, device) -> dict:
    """Macro-F1 of each head on each val source (a photo with no face found counts wrong),
    beside PublicTest's, and their mean: the domain score of the rule in docs/experiments.md.
    ``public`` holds PublicTest's macro-F1 per head (``fer2013``, ``ferplus``)."""
    out: dict = {}
    for head in public:
        labels = HEAD_LABELS[head]
        f1s = {"public": public[head]}
        for src, faces in val:
            probs = predict_probs(model, faces.pixels, cfg, device, head=head).numpy()
            pred = np.where(faces.found, probs.argmax(1), len(labels))
            f1s[src.name] = scores(faces.labels, pred, labels=[*labels, "no face"])["macro_f1"]
        out[head] = {"macro_f1": f1s, "domain_score": float(np.mean(list(f1s.values())))}
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
    check_config(cfg)
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
    extra = [(s, load_source(s, "train", cfg.margin, out)) for s in map(source_of, cfg.sources)]
    val = [(s, load_source(s, "val", cfg.margin, out)) for s in map(source_of, cfg.val_sources)]
    if cfg.limit_train:
        extra = [
            (
                src,
                Faces(
                    f.pixels[: cfg.limit_train],
                    f.labels[: cfg.limit_train],
                    f.found[: cfg.limit_train],
                ),
            )
            for src, f in extra
        ]
    train_set = make_train_set(train, cfg, dev, extra)
    pixels = train_set.faces.cpu().numpy()
    steps = math.ceil(
        sum(n * w for n, w in zip(train_set.groups, train_set.weights, strict=True))
        / cfg.batch_size
    )

    seed_everything(cfg.seed)
    model, opt, sched = build(cfg, steps, dev)
    if cfg.init and ck is None:
        initial_weights(model, cfg, dev)
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
    write_atomic(out / "config.json", json.dumps(asdict(cfg), indent=2))
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
        if val and len(public):  # the domain score chooses the epoch (one per head)
            f1 = {"fer2013": ev["macro_f1"]}
            if "ferplus_macro_f1" in ev:
                f1["ferplus"] = ev["ferplus_macro_f1"]
            for head, d in evaluate_sources(model, val, f1, cfg, dev).items():
                prefix = "" if head == "fer2013" else "ferplus_"
                row[prefix + "domain_score"] = d["domain_score"]
                row[prefix + "val_macro_f1"] = d["macro_f1"]
        history.append(row)
        score = row.get("domain_score", ev["accuracy"])
        if not score <= best.get("score", best["public_accuracy"]):  # true for the first NaN
            best = {"epoch": epoch, "public_accuracy": ev["accuracy"], "score": score}
            save_checkpoint(
                {"model": model.state_dict(), "epoch": epoch, "config": asdict(cfg)},
                out / "best.pt",
            )
        fp = row.get("ferplus_domain_score", ev.get("ferplus_accuracy"))
        if fp is not None and fp > best_ferplus.get("score", -1.0):
            best_ferplus = {
                "epoch": epoch,
                "public_ferplus_accuracy": ev["ferplus_accuracy"],
                "score": fp,
            }
            save_checkpoint(
                {"model": model.state_dict(), "epoch": epoch, "config": asdict(cfg)},
                out / "best_ferplus.pt",
            )
        ck = {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "epoch": epoch,
            "config": asdict(cfg),
            "history": history,
            "best": best,
            "best_ferplus": best_ferplus,
            "generator": gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }
        save_checkpoint(ck, last)
        metrics = {"config": asdict(cfg), "history": history, "best": best}
        if fp is not None:
            metrics["best_ferplus"] = best_ferplus
        write_atomic(out / "metrics.json", json.dumps(metrics, indent=2))
        if on_epoch:
            on_epoch(row)
    return metrics


__all__ = ["build", "evaluate", "fit", "load_checkpoint", "train_one_epoch"]
