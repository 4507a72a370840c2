"""Ship a chosen model file: score it on PublicTest and (read once, for the file that ships)
PrivateTest through ONNX Runtime, store the scores in its card, and copy it into the package.

    .venv/bin/python lab/rules/ship.py FILE NAME     (NAME: fer2013, fer2013-float or ferplus)

Run from the repository root, after every choice was made (docs/experiments.md).
"""

import shutil
import sys
from pathlib import Path

from mobilefer.data import load_fer2013_with_ferplus
from mobilefer.evaluate import split_metrics
from mobilefer.model import MODELS, ExpressionModel
from mobilefer.modelcard import update_card

src, name = Path(sys.argv[1]), sys.argv[2]
data = load_fer2013_with_ferplus("../shared/data/fer2013/fer2013.npz")
metrics = split_metrics(ExpressionModel(src), data, ("public", "private"))
update_card(src, metrics=metrics)
dest = Path("src/mobilefer/models") / MODELS[name]
shutil.copyfile(src, dest)
print(dest, metrics)
