"""Write the tiny test model, ``tests/data/tiny.onnx``: an untrained MobileNetV2 (width 0.2,
32 px, head 16-8) exported through the real export path, whose scores differ from face to face.

It is committed so that the inference tests run without torch; ``tests/test_train.py`` checks
that this script still makes the same model. Run from the repository root (needs ``[train]``):

    python scripts/make_tiny_model.py [OUT]
"""

from __future__ import annotations

import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "tiny.onnx"


def tiny_config():
    """The config of the tiny model (and of the training tests' tiny runs)."""
    from mobilefer.train.recipes import recipe

    return recipe(
        "default",
        input_size=32,
        width_mult=0.2,
        backbone=None,
        hidden=(16, 8),
        epochs=1,
        batch_size=16,
        threads=1,
        dropout=0.0,
        ferplus_weight=0.0,
    )


def make(path: Path = OUT) -> Path:
    import torch

    from mobilefer.train.export import export_onnx
    from mobilefer.train.model import FerNet

    torch.manual_seed(0)
    c = tiny_config()
    net = FerNet(hidden=c.hidden, width_mult=c.width_mult, backbone=None).eval()
    for m in net.modules():  # untrained, its features vanish: every face would get one answer
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.fill_(0.1)
    export_onnx(net, c, path)
    return path


if __name__ == "__main__":
    print(make(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
