"""MobileNetV2 with the paper's dense head.

torchvision's ``mobilenet_v2`` feature extractor (ImageNet weights through torch hub's cache, as
torchvision loads them, or a local file), then the paper's head: global average pool -> dense 128
-> ReLU -> dense 64 -> ReLU -> dense 7. The model returns logits; softmax is added at export.
Optionally a second head of the same shape learns FER+'s 8 classes from the same features, so
one training run yields both shipped models.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import torch
from torch import nn

from ..errors import OptionError, WeightsError

#: torchvision's IMAGENET1K_V1 file for mobilenet_v2; its name carries the sha256 prefix.
IMAGENET_FILE = "mobilenet_v2-b0353104.pth"
IMAGENET_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"


def dense_head(width: int, hidden: tuple[int, ...], dropout: float, classes: int) -> nn.Sequential:
    """The paper's head on pooled features: [dropout ->] dense -> ReLU per hidden width, dense."""
    layers: list[nn.Module] = [nn.Flatten()]
    for h in hidden:
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
        width = h
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)


class FerNet(nn.Module):
    """MobileNetV2 features + the paper's head; input N x 3 x S x S, output N x classes logits.

    With ``ferplus_classes`` > 0 a second head (``ferplus_head``) sees the same pooled features;
    :meth:`forward` still returns the first head's logits, :meth:`forward_heads` both.
    """

    def __init__(
        self,
        num_classes: int = 7,
        hidden: tuple[int, ...] = (128, 64),
        dropout: float = 0.0,
        width_mult: float = 1.0,
        backbone: str | Path | None = "imagenet",
        ferplus_classes: int = 0,
    ) -> None:
        super().__init__()
        from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

        if backbone == "imagenet":
            if width_mult != 1.0:
                raise ValueError("ImageNet weights exist only for width_mult=1.0")
            net = mobilenet_v2(weights=MobileNet_V2_Weights.IMAGENET1K_V1)
        else:
            net = mobilenet_v2(weights=None, width_mult=width_mult)
            if backbone is not None:
                net.load_state_dict(load_backbone_file(backbone))
        self.features = net.features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = dense_head(net.last_channel, hidden, dropout, num_classes)
        self.ferplus_head = (
            dense_head(net.last_channel, hidden, dropout, ferplus_classes)
            if ferplus_classes
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))

    def forward_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits of both heads (the second is ``None`` without a FER+ head)."""
        z = self.pool(self.features(x))
        return self.head(z), None if self.ferplus_head is None else self.ferplus_head(z)


class HeadOf(nn.Module):
    """One head of a :class:`FerNet` as a plain model: ``"fer2013"`` or ``"ferplus"``."""

    def __init__(self, net: FerNet, head: str = "fer2013") -> None:
        super().__init__()
        if head not in ("fer2013", "ferplus"):
            raise OptionError(f"unknown head {head!r}; choose from fer2013, ferplus")
        if head == "ferplus" and net.ferplus_head is None:
            raise OptionError("this model has no FER+ head; train it with FER+ votes")
        self.net, self.head = net, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.net.pool(self.net.features(x))
        return (self.net.head if self.head == "fer2013" else self.net.ferplus_head)(z)


class Probabilities(nn.Module):
    """Softmax probabilities of one head, averaged over one or more :class:`FerNet` (an
    ensemble that shares one input); this is what an exported model file computes."""

    def __init__(self, nets: list[FerNet], head: str = "fer2013") -> None:
        super().__init__()
        if not nets:
            raise OptionError("no model to export")
        self.members = nn.ModuleList(HeadOf(n, head) for n in nets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = [torch.softmax(m(x), dim=1) for m in self.members]
        return probs[0] if len(probs) == 1 else torch.stack(probs).mean(0)


def load_backbone_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read an ImageNet mobilenet_v2 state dict from a local file (fp16 copies are cast back)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsError(f"{p}: no such file; pass torchvision's {IMAGENET_FILE}")
    try:
        sd = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad file
        raise WeightsError(f"{p}: not a PyTorch state dict ({e})") from None
    return {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}


def seed_hub_cache(source: str | Path) -> Path:
    """Copy a local ImageNet mobilenet_v2 file into torch hub's cache, checked by sha256.

    Afterwards ``mobilenet_v2(weights=IMAGENET1K_V1)`` loads it without a download.
    """
    src = Path(source).expanduser()
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    if digest != IMAGENET_SHA256:
        raise WeightsError(f"{src}: sha256 {digest[:12]}... is not torchvision's {IMAGENET_FILE}")
    dest = Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILE
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    return dest


def onnx_state_dict(path: str | Path, net: FerNet, member: int = 0) -> tuple[dict, list[str]]:
    """The weights of one network of an exported model file (``mobilefer export`` writes each
    member's convolutions with its BatchNorm folded in) as a state dict for ``net``, and the
    names of the heads found (``head``, ``ferplus_head``).

    Each folded convolution ``W x + c`` becomes ``net``'s convolution ``W`` and a BatchNorm
    that adds ``c`` (mean 0, variance 1 - eps, scale 1): the same function in eval mode. Such a
    network is fine-tuned with every BatchNorm kept in eval mode (``TrainConfig.init`` of an
    ``.onnx`` file does so), as the file's statistics are gone.
    """
    import onnx
    from onnx import numpy_helper

    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsError(f"{p}: no such model file")
    graph = onnx.load(str(p)).graph
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:  # constants and identities of initializers, as exported
        if node.op_type == "Constant":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        elif node.op_type == "Identity" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]]
    prefix = f"/members.{member}/"
    convs = [n for n in graph.node if n.op_type == "Conv" and n.name.startswith(prefix)]
    if not convs:
        raise WeightsError(f"{p}: no network {member} in this file")
    pairs = []
    modules = list(net.features.named_modules())
    for (name, m), (_, nxt) in zip(modules, modules[1:], strict=False):
        if isinstance(m, nn.Conv2d):
            pairs.append((name, m, nxt))
    if len(pairs) != len(convs):
        raise WeightsError(
            f"{p}: network {member} has {len(convs)} convolutions, the model "
            f"{len(pairs)}; not a MobileNetV2 of this width"
        )
    state: dict[str, torch.Tensor] = {}
    for (name, conv, bn), node in zip(pairs, convs, strict=True):
        w, c = values[node.input[1]], values[node.input[2]]
        if tuple(w.shape) != tuple(conv.weight.shape) or not isinstance(bn, nn.BatchNorm2d):
            raise WeightsError(f"{p}: {node.name} does not fit features.{name}")
        bn_name = name.rsplit(".", 1)[0] + "." + str(int(name.rsplit(".", 1)[1]) + 1)
        state[f"features.{name}.weight"] = torch.from_numpy(w.copy())
        state[f"features.{bn_name}.weight"] = torch.ones(len(c))
        state[f"features.{bn_name}.bias"] = torch.from_numpy(c.copy())
        state[f"features.{bn_name}.running_mean"] = torch.zeros(len(c))
        state[f"features.{bn_name}.running_var"] = torch.full((len(c),), 1 - bn.eps)
    heads = []
    for head in ("head", "ferplus_head"):
        gemms = [
            n for n in graph.node if n.op_type == "Gemm" and n.name.startswith(f"{prefix}{head}/")
        ]
        if not gemms:
            continue
        linears = [
            (k, m) for k, m in getattr(net, head).named_children() if isinstance(m, nn.Linear)
        ]
        if getattr(net, head) is None or len(linears) != len(gemms):
            raise WeightsError(f"{p}: its {head} does not fit the model's")
        for (k, _), node in zip(linears, gemms, strict=True):
            state[f"{head}.{k}.weight"] = torch.from_numpy(values[node.input[1]].copy())
            state[f"{head}.{k}.bias"] = torch.from_numpy(values[node.input[2]].copy())
        heads.append(head)
    return state, heads
