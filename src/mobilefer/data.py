"""FER2013 readers (numpy only): the Kaggle csv, image folders, the npz, and FER+ votes.

Every reader returns a :class:`FerData`: 48x48 gray uint8 faces, FER2013 labels 0-6 in
:data:`mobilefer.EMOTIONS` order, and the split of each row (0 Training, 1 PublicTest,
2 PrivateTest).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import DataError
from .image import IMAGE_SUFFIXES
from .labels import EMOTIONS, FERPLUS_COLUMN_TO_LABEL, FERPLUS_COLUMNS, FERPLUS_LABELS
from .preprocess import SOURCE_SIZE

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "public", "private")
_SPLIT_ALIASES = {
    "train": 0,
    "training": 0,
    "public": 1,
    "publictest": 1,
    "val": 1,
    "valid": 1,
    "validation": 1,
    "private": 2,
    "privatetest": 2,
    "test": 2,
}
_CLASS_ALIASES = {
    **{name: i for i, name in enumerate(EMOTIONS)},
    **{str(i): i for i in range(len(EMOTIONS))},
    "anger": 0,
    "disgusted": 1,
    "fearful": 2,
    "happiness": 3,
    "sadness": 4,
    "surprised": 5,
}


def split_code(name: str | int) -> int:
    """Return 0, 1 or 2 for a split given by name (train, public, private, or an alias)."""
    if isinstance(name, int) and name in (0, 1, 2):
        return name
    key = str(name).strip().lower().replace("_", "").replace("-", "")
    if key in _SPLIT_ALIASES:
        return _SPLIT_ALIASES[key]
    raise DataError(f"unknown split {name!r}; choose from {', '.join(SPLITS)}")


@dataclass(frozen=True)
class FerData:
    """Faces with labels: ``pixels`` uint8 N x 48 x 48, ``labels`` int64 N, ``usage`` int8 N,
    and optionally the FER+ ``votes`` (int16 N x 10, joined by row position)."""

    pixels: np.ndarray
    labels: np.ndarray
    usage: np.ndarray
    votes: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def split(self, name: str | int) -> FerData:
        """The rows of one split (train, public or private), in file order."""
        mask = self.usage == split_code(name)
        votes = None if self.votes is None else self.votes[mask]
        return FerData(self.pixels[mask], self.labels[mask], self.usage[mask], votes)

    def head(self, n: int) -> FerData:
        """The first ``n`` rows."""
        votes = None if self.votes is None else self.votes[:n]
        return FerData(self.pixels[:n], self.labels[:n], self.usage[:n], votes)

    def with_ferplus(self, path: str | Path) -> FerData:
        """The same rows with the FER+ votes of ``path`` (``ferplus.npz`` or ``fer2013new.csv``)."""
        votes = load_ferplus(path, expected_rows=len(self))
        return FerData(self.pixels, self.labels, self.usage, votes)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(EMOTIONS))


def load_fer2013(path: str | Path) -> FerData:
    """Read FER2013 from the Kaggle csv, the npz, or a folder of ``<split>/<class>/*.png``.

    Raises :class:`DataError` naming the file and the problem for a missing path, a wrong
    layout, a wrong pixel count or an unknown label.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p}: no such file or folder; pass fer2013.csv, fer2013.npz or a folder")
    if p.is_dir():
        return _read_folders(p)
    if p.suffix.lower() == ".npz":
        return _read_npz(p)
    if p.suffix.lower() == ".csv":
        return _read_csv(p)
    raise DataError(f"{p}: unknown data format; pass fer2013.csv, fer2013.npz or a folder")


def load_fer2013_with_ferplus(path: str | Path, ferplus: str | Path | None = None) -> FerData:
    """:func:`load_fer2013` with the FER+ votes of ``ferplus``, or, when it is None, of a
    ``ferplus.npz`` beside ``path`` if there is one (else the faces come without votes)."""
    data = load_fer2013(path)
    if ferplus is None:
        beside = Path(path).expanduser().parent / "ferplus.npz"
        if not beside.is_file():
            return data
        log.info("FER+ votes from %s", beside)
        ferplus = beside
    return data.with_ferplus(ferplus)


def _checked(path: Path, pixels: np.ndarray, labels: np.ndarray, usage: np.ndarray) -> FerData:
    if pixels.ndim != 3 or pixels.shape[1:] != (SOURCE_SIZE, SOURCE_SIZE):
        raise DataError(f"{path}: faces have shape {pixels.shape[1:]}, expected 48 x 48")
    if not (len(pixels) == np.size(labels) == np.size(usage)) or np.ndim(labels) != 1:
        raise DataError(
            f"{path}: {len(pixels)} faces, {np.size(labels)} labels and "
            f"{np.size(usage)} usage codes; one of each per row"
        )
    if pixels.dtype != np.uint8:  # a cast would wrap 256 to 0 and cut 0.5 to 0
        if pixels.dtype.kind not in "uif":
            raise DataError(f"{path}: pixels are {pixels.dtype}, expected numbers 0-255")
        if pixels.size and (
            not np.isfinite(pixels).all()
            or pixels.min() < 0
            or pixels.max() > 255
            or (pixels != np.round(pixels)).any()
        ):
            raise DataError(f"{path}: pixels must be whole numbers 0-255 (uint8)")
    if np.asarray(labels).dtype.kind not in "iu":
        raise DataError(
            f"{path}: labels are {np.asarray(labels).dtype}, expected whole numbers 0-6"
        )
    labels = np.asarray(labels, dtype=np.int64)
    bad = (labels < 0) | (labels >= len(EMOTIONS))
    if bad.any():
        raise DataError(
            f"{path}: unknown label {labels[bad][0]} at row {int(np.argmax(bad))}; labels are 0-6"
        )
    usage = np.asarray(usage, dtype=np.int8)
    if ((usage < 0) | (usage > 2)).any():
        raise DataError(
            f"{path}: usage codes must be 0 (Training), 1 (PublicTest), 2 (PrivateTest)"
        )
    return FerData(np.ascontiguousarray(pixels, dtype=np.uint8), labels, usage)


def _read_npz(path: Path) -> FerData:
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = {"pixels", "emotion", "usage"} - set(z.files)
            if missing:
                raise DataError(f"{path}: npz lacks {', '.join(sorted(missing))}")
            return _checked(path, z["pixels"], z["emotion"], z["usage"])
    except (OSError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path}: not a readable npz ({e})") from None


def _read_csv(path: Path) -> FerData:
    pixels, labels, usage = [], [], []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = [h.strip().lower() for h in next(reader, [])]
        if "emotion" not in header or "pixels" not in header:
            raise DataError(f"{path}: header must have emotion,pixels[,Usage]; found {header}")
        ie, ip = header.index("emotion"), header.index("pixels")
        iu = header.index("usage") if "usage" in header else None
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                values = np.array(row[ip].split(), dtype=np.int64)
                label = int(row[ie])
            except (ValueError, IndexError):
                raise DataError(f"{path}:{line}: unreadable row") from None
            if values.size != SOURCE_SIZE * SOURCE_SIZE:
                raise DataError(f"{path}:{line}: {values.size} pixels, expected 2304 (48 x 48)")
            if values.min() < 0 or values.max() > 255:
                raise DataError(f"{path}:{line}: pixel values must lie in 0-255")
            pixels.append(values.astype(np.uint8).reshape(SOURCE_SIZE, SOURCE_SIZE))
            labels.append(label)
            usage.append(split_code(row[iu]) if iu is not None else 0)
    if not pixels:
        raise DataError(f"{path}: no data rows")
    return _checked(path, np.stack(pixels), np.array(labels), np.array(usage))


def _read_folders(root: Path) -> FerData:
    pixels, labels, usage = [], [], []
    split_dirs = [d for d in sorted(root.iterdir()) if d.is_dir()]
    known = [d for d in split_dirs if d.name.lower().replace("_", "") in _SPLIT_ALIASES]
    if not known:
        raise DataError(
            f"{root}: expected split folders (train/, val/ or test/) with one folder per class"
        )
    for split_dir in known:
        code = split_code(split_dir.name)
        for class_dir in sorted(d for d in split_dir.iterdir() if d.is_dir()):
            key = class_dir.name.lower()
            if key not in _CLASS_ALIASES:
                raise DataError(
                    f"{class_dir}: unknown class folder; use {', '.join(EMOTIONS)} or 0-6"
                )
            for f in sorted(class_dir.iterdir()):
                if f.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                img = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
                if img is None:
                    raise DataError(f"{f}: not a readable image")
                if img.shape != (SOURCE_SIZE, SOURCE_SIZE):
                    raise DataError(f"{f}: image is {img.shape[1]}x{img.shape[0]}, expected 48x48")
                pixels.append(img)
                labels.append(_CLASS_ALIASES[key])
                usage.append(code)
    if not pixels:
        raise DataError(f"{root}: no images found under the split/class folders")
    return _checked(root, np.stack(pixels), np.array(labels), np.array(usage))


def load_ferplus(path: str | Path, expected_rows: int | None = None) -> np.ndarray:
    """Read FER+ votes (``ferplus.npz`` or ``fer2013new.csv``) as int16 N x 10.

    Rows join FER2013 by position (row i votes on FER2013 row i), never by image name: the
    names in fer2013new.csv drift from the row index. Columns are :data:`FERPLUS_COLUMNS`.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p}: no such file; pass ferplus.npz or fer2013new.csv")
    if p.suffix.lower() == ".npz":
        with np.load(p, allow_pickle=False) as z:
            if "votes" not in z.files:
                raise DataError(f"{p}: npz lacks 'votes'")
            votes = z["votes"].astype(np.int16)
    else:
        with open(p, newline="") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            try:
                cols = [header.index(c) for c in FERPLUS_COLUMNS]
            except ValueError:
                raise DataError(
                    f"{p}: header must hold {', '.join(FERPLUS_COLUMNS)}; found {header}"
                ) from None
            try:
                votes = np.array([[int(r[c]) for c in cols] for r in reader if r], dtype=np.int16)
            except (ValueError, IndexError):
                raise DataError(f"{p}: vote columns must hold integers") from None
    if votes.ndim != 2 or votes.shape[1] != len(FERPLUS_COLUMNS):
        raise DataError(f"{p}: votes must be N x {len(FERPLUS_COLUMNS)}, got {votes.shape}")
    if expected_rows is not None and len(votes) != expected_rows:
        raise DataError(
            f"{p}: {len(votes)} rows, but FER2013 has {expected_rows}; rows join by position"
        )
    return votes


def ferplus_targets(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FER+ votes (N x 10) -> soft targets (N x 8 float32, :data:`FERPLUS_LABELS` order) and a
    boolean mask of the rows that have one.

    Votes for contempt are kept (the 8th class); ``unknown`` and ``NF`` (not a face) votes are
    dropped. A row whose most-voted column is ``unknown`` or ``NF``, or that has no emotion vote
    at all, has no target (mask False): FER+ itself drops such faces (Barsoum et al. 2016).
    """
    votes = np.asarray(votes, dtype=np.float32)
    emo = np.zeros((len(votes), len(FERPLUS_LABELS)), dtype=np.float32)
    for col, label in enumerate(FERPLUS_COLUMN_TO_LABEL):
        if label is not None:
            emo[:, label] = votes[:, col]
    total = emo.sum(1)
    emotion_cols = [c for c, lab in enumerate(FERPLUS_COLUMN_TO_LABEL) if lab is not None]
    top_is_emotion = np.isin(votes.argmax(1), emotion_cols)
    mask = top_is_emotion & (total > 0)
    emo[mask] /= total[mask, None]
    emo[~mask] = 0
    return emo, mask


def ferplus_majority(votes: np.ndarray) -> np.ndarray:
    """The FER+ majority-vote label of each row (index in :data:`FERPLUS_LABELS`), or -1 where
    the row has no emotion target (see :func:`ferplus_targets`). Ties go to the earlier class."""
    targets, mask = ferplus_targets(votes)
    return np.where(mask, targets.argmax(1), -1)
