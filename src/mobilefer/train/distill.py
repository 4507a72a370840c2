"""Distillation: a teacher model file's probabilities as soft targets, and extra unlabelled faces.

A student learns, beside FER2013's hard labels, the probabilities that a shipped model file (for
example the two-network ensemble with its flip TTA) gives each training face. Faces from outside
FER2013 (``extra_faces``: a folder with ``labels.csv`` whose ``file`` column names images, such
as the LFW expression crops) join training with the teacher's targets only: their own labels
are never trained on. Targets are the teacher's raw probabilities, without the post-hoc prior
correction of its card; the student's own correction is chosen again at export.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..image import read_image
from ..preprocess import face_48

#: Faces per teacher call.
TEACHER_BATCH = 256


def load_extra_faces(folder: str | Path) -> np.ndarray:
    """The faces listed in ``folder/labels.csv`` (column ``file``, relative to ``folder``) as
    N x 48 x 48 gray uint8, resized as inference resizes every crop (:func:`face_48`)."""
    root = Path(folder).expanduser()
    table = root / "labels.csv"
    if not table.is_file():
        raise DataError(f"{table}: no such file; extra faces need a labels.csv with a file column")
    with table.open(newline="") as f:
        files = [row["file"] for row in csv.DictReader(f)]
    if not files:
        raise DataError(f"{table}: lists no faces")
    return np.stack([face_48(read_image(root / name)) for name in files])


def teacher_probs(model: str | Path, pixels: np.ndarray, threads: int | None = None) -> np.ndarray:
    """The teacher's probabilities (N x classes, rows sum to 1) for 48x48 faces, with the flip
    TTA its card asks for and without its prior correction."""
    from ..model import ExpressionModel

    teacher = ExpressionModel(model, threads=threads, prior_tau=0)
    probs = np.concatenate(
        [
            teacher.predict_proba(list(pixels[i : i + TEACHER_BATCH]))
            for i in range(0, len(pixels), TEACHER_BATCH)
        ]
    )
    return probs.astype(np.float32)
