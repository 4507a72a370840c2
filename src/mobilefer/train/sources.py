"""Labelled faces from beyond FER2013: the sources a recipe trains on (and chooses by).

A source is one recipe setting (:class:`Source`): a path, how to read it, how often each of its
faces is seen per epoch, and whether its own labels or a teacher's targets are learnt. Readers:

- ``table``: a folder with ``labels.csv`` (columns ``file``, relative to the folder, and
  ``label``, a FER2013 class index 0-6 or name). Where the table has a ``fold`` column, only the
  rows of the fold asked for are read (``train`` for training, ``val`` for choosing); rows of any
  other fold, and rows of ``part=report``, are never read. This is how the project's sets from
  elsewhere (``$MOBILEFER_SHARED/data/ood/``) and the LFW pool are read.
- ``folder``: class-named subfolders of images (``angry/``, ``happy/`` ... or ``0/``-``6/``), as
  torchvision's ``ImageFolder``; what a user gives with ``--set extra=DIR``.

Whole photos (``detect``) reach training the way inference sees them: the default detector's
largest box, the run's crop margin, then 48x48 (:func:`mobilefer.preprocess.face_48`). They are
cut once and cached in the run's folder (``faces-NAME-FOLD.npz``); the crop's jitter is done by
augmentation. A photo where no face is found is left out of training and counts as wrong when
choosing, as :mod:`benchmarks.domains` counts it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..detectors import create_detector, image_detect_size
from ..errors import DataError, OptionError
from ..image import read_image
from ..labels import EMOTIONS
from ..preprocess import SOURCE_SIZE, crop, face_48

log = logging.getLogger(__name__)

READERS = ("table", "folder")
TARGETS = ("labels", "teacher")
#: Where ``{shared}`` in a source path points: the folder this variable names (the project's
#: data, with ``data/ood`` and ``data/lfw-expressions``; lab/README.md).
SHARED_ENV = "MOBILEFER_SHARED"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class Source:
    """One set of labelled faces beside FER2013 Training (saved in the run's config as a dict).

    ``weight``: how many times each face is seen per epoch on average (1.5: every face once,
    half of them twice; 0.2: a fifth of them, drawn anew each epoch). ``targets``: ``labels``
    (the source's own) or ``teacher`` (the run's teacher file's probabilities; needs
    ``distill_weight`` > 0). ``detect``: whole photos, whose face the default detector finds.
    """

    name: str
    path: str
    reader: str = "table"
    weight: float = 1.0
    targets: str = "labels"
    detect: bool = False

    def check(self) -> Source:
        if self.reader not in READERS:
            raise OptionError(
                f"source {self.name}: reader {self.reader!r}; choose from {', '.join(READERS)}"
            )
        if self.targets not in TARGETS:
            raise OptionError(
                f"source {self.name}: targets {self.targets!r}; choose from {', '.join(TARGETS)}"
            )
        if not (isinstance(self.weight, (int, float)) and 0 <= self.weight <= 100):
            raise OptionError(f"source {self.name}: weight {self.weight!r}; expected 0 to 100")
        return self

    def root(self) -> Path:
        """The source's folder; ``{shared}`` in its path is ``$MOBILEFER_SHARED``
        (:class:`OptionError` when that is not set)."""
        if "{shared}" not in self.path:
            return Path(self.path).expanduser()
        shared = os.environ.get(SHARED_ENV)
        if not shared:
            raise OptionError(
                f"source {self.name}: its path {self.path} names {{shared}}: set "
                f"{SHARED_ENV} to the folder holding the data (data/ood, "
                "data/lfw-expressions), or give the source's own path"
            )
        return Path(self.path.replace("{shared}", shared)).expanduser()


def source_of(spec: dict | Source) -> Source:
    """A :class:`Source` from its dict in a config (unknown keys are refused)."""
    if isinstance(spec, Source):
        return spec.check()
    try:
        return Source(**spec).check()
    except TypeError as e:
        raise OptionError(f"source {spec!r}: {e}") from None


@dataclass
class Faces:
    """The faces of one source: ``pixels`` N x 48 x 48 uint8, FER2013 ``labels`` N, and
    ``found`` (False where no face was found in a whole photo: its pixels are blank)."""

    pixels: np.ndarray
    labels: np.ndarray
    found: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def _label(value: str, where: str) -> int:
    v = value.strip().lower()
    if v.isdigit() and int(v) < len(EMOTIONS):
        return int(v)
    if v in EMOTIONS:
        return EMOTIONS.index(v)
    raise DataError(f"{where}: label {value!r}; expected 0-6 or one of {', '.join(EMOTIONS)}")


def list_images(source: Source, fold: str) -> list[tuple[Path, int]]:
    """The (image path, label) pairs of ``source`` for ``fold`` (``train`` or ``val``)."""
    root = source.root()
    if source.reader == "folder":
        if not root.is_dir():
            raise DataError(f"{root}: no such folder; a folder source holds one folder per class")
        if fold != "train":
            return []
        out = []
        for class_dir in sorted(d for d in root.iterdir() if d.is_dir()):
            label = _label(class_dir.name, str(class_dir))
            out += [
                (f, label)
                for f in sorted(class_dir.iterdir())
                if f.suffix.lower() in IMAGE_SUFFIXES
            ]
        if not out:
            raise DataError(f"{root}: no images in class folders ({', '.join(EMOTIONS)})")
        return out
    table = root / "labels.csv"
    if not table.is_file():
        raise DataError(f"{table}: no such file; a table source needs labels.csv (file, label)")
    with table.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"file", "label"} <= set(rows[0]):
        raise DataError(f"{table}: expected columns file and label")
    if "fold" in rows[0]:
        rows = [r for r in rows if r["fold"] == fold and r.get("part", "choose") != "report"]
    elif fold != "train":
        rows = []
    rows = [r for r in rows if r["label"].strip() != "-1"]  # -1: unlabelled (LFW's contempt)
    return [(root / r["file"], _label(r["label"], f"{table}: {r['file']}")) for r in rows]


def cut_faces(paths: list[Path], detect: bool, margin: float, detector: str = "auto") -> Faces:
    """Read images and make them 48x48 faces: whole (``detect`` False) or the largest face the
    detector finds, cropped with ``margin`` as :meth:`mobilefer.Recognizer.classify_boxes`
    crops it."""
    det = create_detector(detector) if detect else None
    pixels = np.zeros((len(paths), SOURCE_SIZE, SOURCE_SIZE), np.uint8)
    found = np.ones(len(paths), bool)
    for i, path in enumerate(paths):
        image = read_image(path)
        if det is not None:  # searched as Recognizer.analyze searches a photo
            boxes = det.detect(image, image_detect_size(*image.shape[:2]))
            if not boxes:
                found[i] = False
                continue
            best = max(boxes, key=lambda d: d.box[2] * d.box[3])
            image = crop(image, best.box, margin)
        pixels[i] = face_48(image)
    return Faces(pixels, np.zeros(len(paths), np.int64), found)


def load_source(source: Source, fold: str, margin: float, cache_dir: Path | None) -> Faces:
    """The 48x48 faces and labels of ``source`` for ``fold``, cut once and cached in
    ``cache_dir`` (keyed by the list of files, the detection and the margin)."""
    items = list_images(source, fold)
    if not items:
        empty = np.zeros((0, SOURCE_SIZE, SOURCE_SIZE), np.uint8)
        return Faces(empty, np.zeros(0, np.int64), np.zeros(0, bool))
    labels = np.array([lab for _, lab in items], np.int64)
    key = json.dumps([[str(p) for p, _ in items], source.detect, margin])
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    cached = None if cache_dir is None else cache_dir / f"faces-{source.name}-{fold}.npz"
    if cached is not None and cached.is_file():
        with np.load(cached) as z:
            if str(z["key"]) == digest:
                return Faces(z["pixels"], labels, z["found"])
    faces = cut_faces([p for p, _ in items], source.detect, margin)
    faces.labels = labels
    if cached is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, pixels=faces.pixels, found=faces.found, key=digest)
        tmp.replace(cached)
    missed = int((~faces.found).sum())
    log.info(
        "source %s (%s): %d faces%s",
        source.name,
        fold,
        len(faces),
        f", no face found in {missed} photos" if missed else "",
    )
    return faces


def epoch_indices(counts: list[int], weights: list[float], gen):
    """One epoch's order over groups of faces laid end to end (``counts`` faces each): every
    face of a group ``int(weight)`` times, plus a fresh random share ``weight % 1`` of them;
    then all shuffled with ``gen``."""
    import torch

    parts, start = [], 0
    for n, w in zip(counts, weights, strict=True):
        whole, frac = int(w), w - int(w)
        idx = torch.arange(start, start + n, device=gen.device)
        parts += [idx] * whole
        k = int(round(frac * n))
        if k:
            parts.append(start + torch.randperm(n, generator=gen, device=gen.device)[:k])
        start += n
    order = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long, device=gen.device)
    return order[torch.randperm(len(order), generator=gen, device=gen.device)]
