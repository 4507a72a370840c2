"""Checkpoints: where a run starts from (``init``), and ``best.pt`` / ``last.pt`` written whole
and read back as a model and its config."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..labels import FERPLUS_LABELS
from ..model import FLOAT_MODELS, MODELS, model_path
from .config import TrainConfig, config_from_dict
from .model import FerNet, onnx_state_dict

log = logging.getLogger("mobilefer.train.loop")


def init_is_model_file(cfg: TrainConfig) -> bool:
    """Whether ``cfg.init`` names a model file (or a shipped model) rather than a checkpoint."""
    return bool(cfg.init) and (cfg.init in MODELS or str(cfg.init).endswith(".onnx"))


def initial_weights(model: FerNet, cfg: TrainConfig, device) -> None:
    """Load ``cfg.init`` into ``model``: a checkpoint's weights, or one network
    (``cfg.init_member``) of a model file or shipped model (:func:`.model.onnx_state_dict`)."""
    if init_is_model_file(cfg):
        path = model_path(FLOAT_MODELS.get(cfg.init, cfg.init))  # a shipped name: its float file
        weights, heads = onnx_state_dict(path, model, cfg.init_member)
        log.info(
            "started from network %d of %s (heads: %s)", cfg.init_member, path, ", ".join(heads)
        )
    else:
        weights = torch.load(cfg.init, map_location=device, weights_only=True)["model"]
    missing, _ = model.load_state_dict(weights, strict=False)
    log.info("started from %s (new: %s)", cfg.init, ", ".join(missing) or "nothing")


def save_checkpoint(obj: dict, path: Path) -> None:
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
        hidden=cfg.hidden,
        dropout=cfg.dropout,
        width_mult=cfg.width_mult,
        backbone=None,
        ferplus_classes=len(FERPLUS_LABELS) if has_ferplus else 0,
    )
    model.load_state_dict(ck["model"])
    return model.eval(), cfg
