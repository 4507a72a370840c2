"""Training augmentation, batched on tensors: photometric changes, blur, JPEG artefacts, a
random affine (zoom, shift, rotation, flip) and erasing. Every range is a :class:`TrainConfig`
field, so the config saved with a run says exactly what its faces went through.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .config import TrainConfig

#: Half-width of the blur kernel in taps (a 7-tap kernel covers 3 sigma of the largest blur
#: drawn at 48 px, 1.5 px, to within 2 sigma).
BLUR_RADIUS = 3


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) * (hi - lo) + lo


def _log_uniform(n: int, lo: float, hi: float, gen: torch.Generator, device) -> torch.Tensor:
    return _uniform(n, math.log(lo), math.log(hi), gen, device).exp()


def photometric(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Random contrast, brightness and gamma (``cfg.contrast``, ``brightness``, ``gamma``) for
    a share (``photometric_prob``) of the faces (N x 1 x H x W, 0-1)."""
    n, dev = x.shape[0], x.device
    if cfg.photometric_prob <= 0:
        return x
    contrast = _uniform(n, *cfg.contrast, gen, dev).view(-1, 1, 1, 1)
    bright = _log_uniform(n, *cfg.brightness, gen, dev).view(-1, 1, 1, 1)
    gamma = _log_uniform(n, *cfg.gamma, gen, dev).view(-1, 1, 1, 1)
    on = (torch.rand(n, generator=gen, device=dev) < cfg.photometric_prob).view(-1, 1, 1, 1)
    mean = x.mean(dim=(2, 3), keepdim=True)
    y = (((x - mean) * contrast + mean) * bright).clamp(0, 1).pow(gamma)
    return torch.where(on, y, x)


def blur(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Gaussian blur (sigma in ``cfg.blur_sigma`` px, one per face) for a share
    (``blur_prob``) of the faces."""
    n, dev = x.shape[0], x.device
    if cfg.blur_prob <= 0:
        return x
    sigma = _uniform(n, *cfg.blur_sigma, gen, dev).view(-1, 1)
    on = (torch.rand(n, generator=gen, device=dev) < cfg.blur_prob).view(-1, 1)
    r = BLUR_RADIUS
    taps = torch.arange(-r, r + 1, device=dev, dtype=x.dtype).view(1, -1)
    w = torch.exp(-(taps**2) / (2 * sigma**2))
    w = torch.where(on, w / w.sum(1, keepdim=True), (taps == 0).to(x.dtype))
    h, wd = x.shape[2:]
    y = F.pad(x.view(1, n, h, wd), (r, r, 0, 0), mode="replicate")
    y = F.conv2d(y, w.view(n, 1, 1, 2 * r + 1), groups=n)
    y = F.pad(y, (0, 0, r, r), mode="replicate")
    y = F.conv2d(y, w.view(n, 1, 2 * r + 1, 1), groups=n)
    return y.view(n, 1, h, wd)


def jpeg_faces(pixels: np.ndarray, cfg: TrainConfig, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the faces to JPEG-compress this epoch and their compressed copies.

    Drawn from (seed, epoch) alone, so a resumed run compresses the same faces.
    """
    rng = np.random.default_rng([cfg.seed, epoch])
    idx = np.flatnonzero(rng.random(len(pixels)) < cfg.jpeg_prob) if cfg.augment else []
    lo, hi = cfg.jpeg_quality
    quality = rng.integers(lo, hi + 1, size=len(idx))
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
    scale = _log_uniform(n, *cfg.zoom, gen, dev)
    flip = torch.where(torch.rand(n, generator=gen, device=dev) < cfg.flip_prob, -1.0, 1.0)
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
        # One rectangle per chosen face, filled with the face's mean.
        area = uniform(*cfg.erase_area) * size * size
        aspect = _log_uniform(n, *cfg.erase_aspect, gen, dev)
        eh = (area * aspect).sqrt().clamp(1, size).long()
        ew = (area / aspect).sqrt().clamp(1, size).long()
        top = (torch.rand(n, generator=gen, device=dev) * (size - eh + 1)).long()
        left = (torch.rand(n, generator=gen, device=dev) * (size - ew + 1)).long()
        rows = torch.arange(size, device=dev).view(1, size, 1)
        cols = torch.arange(size, device=dev).view(1, 1, size)
        box = (
            (rows >= top.view(-1, 1, 1))
            & (rows < (top + eh).view(-1, 1, 1))
            & (cols >= left.view(-1, 1, 1))
            & (cols < (left + ew).view(-1, 1, 1))
        )
        chosen = (torch.rand(n, generator=gen, device=dev) < cfg.erase_prob).view(-1, 1, 1)
        mask = (box & chosen).unsqueeze(1)
        out = torch.where(mask, out.mean(dim=(2, 3), keepdim=True), out)
    return out


def normalise(x: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """N x 1 x S x S in 0-1 -> N x 3 x S x S normalised with the recipe's mean/std."""
    mean = torch.tensor(cfg.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(cfg.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x.expand(-1, len(cfg.mean), -1, -1) - mean) / std
