"""Rule m4's candidates (docs/experiments.md): the weights of a fine-tuned run's best.pt and of
the network it started from, averaged (WiSE-FT), written as checkpoints that export reads.

    .venv/bin/python lab/rules/m4-wise.py runs/m1/best.pt 0.5 runs/m4a50/best.pt
"""

import sys
from pathlib import Path

import torch

from mobilefer.model import model_path
from mobilefer.train.checkpoints import load_checkpoint
from mobilefer.train.model import onnx_state_dict

tuned_path, alpha, out = Path(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3])
base = Path(sys.argv[4]) if len(sys.argv) > 4 else Path("runs/baseline/pair_v13_v14.onnx")
model, cfg = load_checkpoint(tuned_path)
tuned = model.state_dict()
start, _ = onnx_state_dict(model_path(str(base)), model, cfg.init_member)
mixed = {
    k: alpha * v + (1 - alpha) * start[k] if v.is_floating_point() and k in start else v
    for k, v in tuned.items()
}
missing = [k for k, v in tuned.items() if v.is_floating_point() and k not in start]
if missing:
    sys.exit(f"{base}: no starting weights for {', '.join(missing[:5])}")
out.parent.mkdir(parents=True, exist_ok=True)
ck = torch.load(tuned_path, map_location="cpu", weights_only=True)
notes = {**cfg.notes, "wise_ft": {"tuned": str(tuned_path), "start": str(base), "alpha": alpha}}
torch.save({"model": mixed, "epoch": ck["epoch"], "config": {**ck["config"], "notes": notes}}, out)
print(out)
