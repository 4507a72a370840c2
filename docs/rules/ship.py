"""Ship a chosen model file: score it on PublicTest and (read once, for the file that ships)
PrivateTest through ONNX Runtime, store the scores in its card, and copy it into the package.

    .venv/bin/python docs/rules/ship.py FILE NAME     (NAME: fer2013 or ferplus)

Run from the repository root, after every choice was made (docs/experiments.md).
"""

import shutil
import sys
from pathlib import Path

from mobilefer.data import load_fer2013_with_ferplus
from mobilefer.evaluate import evaluate_model
from mobilefer.model import MODELS, ExpressionModel
from mobilefer.modelcard import update_card

src, name = Path(sys.argv[1]), sys.argv[2]
data = load_fer2013_with_ferplus("../shared/data/fer2013/fer2013.npz")
model = ExpressionModel(src)
metrics = {}
for split in ("public", "private"):
    r = evaluate_model(model, data.split(split))
    for target in ("fer2013", "ferplus"):
        if target in r:
            metrics[f"{split}_{target}_accuracy"] = round(r[target]["accuracy"], 4)
            metrics[f"{split}_{target}_macro_f1"] = round(r[target]["macro_f1"], 4)
update_card(src, metrics=metrics)
dest = Path("src/mobilefer/models") / MODELS[name]
shutil.copyfile(src, dest)
print(dest, metrics)
