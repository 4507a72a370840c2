"""Where results go: JSON Lines or CSV records, annotated images and videos.

Records (:class:`RecordWriter`, :func:`arrow_schema`): one per face, with the fields of
:data:`mobilefer.records.RECORD_FIELDS`, in that order. An image with no face, or a video frame
with none, gives one record whose ``face``, ``box``, ``label``, ``scores`` and ``score`` are
``None`` (empty in CSV), so that every input read appears in the output. CSV has the same
fields, the box as x, y, w, h and one column per label (:func:`mobilefer.records.csv_columns`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from .errors import InputError
from .image import printable, utf8_safe
from .records import CSV_FIELDS, RECORD_FIELDS, Field, cell, csv_columns
from .sources import FALLBACK_FPS


class RecordWriter:
    """Writes records to a text stream as JSON Lines (``jsonl``) or CSV (``csv``); ``extras``:
    the optional fields the records may have (``Options.record_extras``), a CSV column each."""

    def __init__(self, fmt: str, labels, stream, extras=()) -> None:
        self.fmt, self.labels, self.stream = fmt, list(labels), stream
        self.extras = tuple(extras)
        if fmt == "csv":
            columns = csv_columns(self.labels, self.extras)
            self._csv = csv.DictWriter(self.stream, fieldnames=columns)
            csv.writer(self.stream).writerow([cell(c) for c in columns])

    def write(self, recs: list[dict]) -> None:
        for rec in recs:
            if self.fmt == "csv":
                row = {k: rec.get(k) for k in CSV_FIELDS} | {"source": printable(rec["source"])}
                if rec["box"] is not None:
                    row |= dict(zip("xywh", rec["box"], strict=True))
                if isinstance(rec.get("calibrated"), bool):
                    row["calibrated"] = "true" if rec["calibrated"] else "false"
                if rec["scores"] is not None:
                    row["score"] = round(rec["score"], 6)
                    row |= {k: round(v, 6) for k, v in rec["scores"].items()}
                for name in self.extras:
                    row |= {k: round(v, 6) for k, v in (rec.get(name) or {}).items()}
                self._csv.writerow({k: cell(v) for k, v in row.items()})
            else:
                self.stream.write(json.dumps(rec, allow_nan=False) + "\n")
        self.stream.flush()


def arrow_schema(labels, extras=()):
    """The Arrow schema (``pyarrow``, the ``[ray]`` extra) of records of a model with these
    labels (and the optional fields named in ``extras``), and an ``error`` column, for the Ray
    engine."""
    import pyarrow as pa

    types = {
        "str": pa.string(),
        "int": pa.int64(),
        "float": pa.float64(),
        "bool": pa.bool_(),
        "box": pa.list_(pa.int64()),
        "scores": pa.struct([(k, pa.float64()) for k in labels]),
    }

    def kind(f: Field):
        return (
            pa.struct([(k, pa.float64()) for k in f.units]) if f.kind == "units" else types[f.kind]
        )

    kept = [f for f in RECORD_FIELDS if not f.optional or f.name in extras]
    return pa.schema([(f.name, kind(f)) for f in kept] + [("error", pa.string())])


#: Longest file name (bytes) where the system does not say: Linux's and macOS's NAME_MAX.
NAME_MAX = 255


def fit_name(name: str, suffix: str, limit: int = NAME_MAX) -> str:
    """``name + suffix``, or when that is over ``limit`` bytes, ``name`` cut short with 8 hex
    digits of its hash before ``suffix``: still unique, still readable, never too long."""
    if len((name + suffix).encode("utf-8", "surrogateescape")) <= limit:
        return name + suffix
    tag = "~" + hashlib.sha1(name.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    room = limit - len((tag + suffix).encode("utf-8", "surrogateescape"))
    head = name.encode("utf-8", "surrogateescape")[:room].decode("utf-8", "ignore")
    return head + tag + suffix


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` less the process's umask: what ``open`` gives a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def video_is_whole(path: Path) -> bool:
    """Whether a written video has bytes and opens with a readable first frame (a full disk
    leaves an mp4 without its index, which opens as nothing)."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    cap = cv2.VideoCapture(str(path))
    try:
        return cap.isOpened() and cap.read()[0]
    finally:
        cap.release()


class SaveFolder:
    """Names and writes annotated outputs under one folder, mirroring the input tree.

    A file found inside a folder given as input keeps its path below that folder; a file given
    by name goes to the top. Names end in ``_mobilefer`` + suffix; a name already used (in this
    run, or on disk) gets ``-2``, ``-3``, ..., so nothing is ever overwritten. :meth:`check`
    finds an unusable folder before any work starts.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._taken: set[Path] = set()
        self.written = 0

    def check(self) -> None:
        """Create the folder and prove it takes a file; :class:`InputError` if it cannot."""
        if self.folder.exists() and not self.folder.is_dir():
            raise InputError(
                f"--save {printable(self.folder)}: exists and is not a folder; name a folder"
            )
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.folder, prefix=".mobilefer-probe"):
                pass
        except OSError as e:
            raise InputError(
                f"--save {printable(self.folder)}: cannot write there ({e.strerror or e}); "
                "choose a writable folder"
            ) from None

    def path_for(self, source: str, root: str | None, suffix: str) -> tuple[Path, bool]:
        """A new, unused output path for ``source`` (found under folder ``root``, if any), and
        whether the first choice was taken (so the name has a number)."""
        src = Path(source.replace(":", "_"))
        rel = src.relative_to(root) if root and src.is_relative_to(root) else Path(src.name)
        parent, stem = self.folder / rel.parent, rel.stem + "_mobilefer"
        path, n = parent / fit_name(stem, suffix), 1
        while path in self._taken or path.exists():
            n += 1
            path = parent / fit_name(stem, f"-{n}{suffix}")
        self._taken.add(path)
        return path, n > 1

    def write_image(self, path: Path, image: np.ndarray) -> None:
        """Write a BGR image as PNG; :class:`InputError` naming the file if that fails."""
        ok, buf = cv2.imencode(".png", image)
        try:
            if not ok:
                raise OSError("the PNG encoder failed")
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"{printable(path)}: cannot save ({e.strerror or e})") from None
        try:  # whole or not at all, even when killed: never half a PNG
            write_atomic(path, buf.tobytes())
        except OSError as e:
            raise InputError(f"{printable(path)}: cannot save ({e.strerror or e})") from None
        self.written += 1

    def video_writer(self, path: Path, fps: float, size: tuple[int, int]) -> VideoSink:
        return VideoSink(path, fps, size, self)


class VideoSink:
    """An mp4 writer that works for any file name (written under a plain temporary name, then
    renamed) and reports a failed write as :class:`InputError`."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int], owner=None) -> None:
        self.path, self.owner = Path(path), owner
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(suffix=".mp4", prefix=".mobilefer-", dir=self._tmp_dir())
            os.close(fd)
        except OSError as e:
            raise InputError(f"{printable(path)}: cannot save ({e.strerror or e})") from None
        self._tmp = Path(tmp)
        fourcc = cv2.VideoWriter_fourcc(*"mp4v")
        self._writer = cv2.VideoWriter(tmp, fourcc, fps or FALLBACK_FPS, size)
        if not self._writer.isOpened():
            self._tmp.unlink(missing_ok=True)
            raise InputError(f"{printable(path)}: cannot write a video here")

    def _tmp_dir(self) -> str | None:
        parent = self.path.parent
        return str(parent) if utf8_safe(parent) else None

    def write(self, frame: np.ndarray) -> None:
        self._writer.write(frame)

    def close(self) -> None:
        """Finish the video, check that it is whole, and move it into place with the mode a
        new file gets (mkstemp's 0600 would hide it from other users); :class:`InputError`
        and nothing left behind if any of that fails."""
        self._writer.release()
        if not video_is_whole(self._tmp):
            self._tmp.unlink(missing_ok=True)
            raise InputError(
                f"{printable(self.path)}: cannot save (the written video is broken; is the "
                "disk full?)"
            )
        try:
            os.chmod(self._tmp, umask_mode())
            shutil.move(str(self._tmp), self.path)
        except OSError as e:
            self._tmp.unlink(missing_ok=True)
            raise InputError(f"{printable(self.path)}: cannot save ({e.strerror or e})") from None
        if self.owner is not None:
            self.owner.written += 1


class AnnotatedSaver:
    """Annotated copies of a stream's results under one folder, named by :class:`SaveFolder`:
    a PNG per image, an mp4 per video (frames/s drawn on it when given). :meth:`add` returns a
    note to show the user when a name was taken, and raises :class:`InputError` naming the file
    that cannot be written; :meth:`close` finishes the last video."""

    def __init__(self, folder):
        self.folder = SaveFolder(folder)
        self.folder.check()  # before any work: an unusable folder is a set-up error
        self._video = None
        self._video_key = None

    def add(self, result, fps: float | None = None) -> str | None:
        if result.image is None:
            return None
        if result.frame is None:
            path, note = self._path(result, ".png")
            self.folder.write_image(path, result.draw())
            return note
        note = None
        if result.source != self._video_key:
            self.close()
            path, note = self._path(result, ".mp4")
            h, w = result.image.shape[:2]
            self._video = self.folder.video_writer(path, result.fps or FALLBACK_FPS, (w, h))
            self._video_key = result.source
        self._video.write(result.draw(fps))
        return note

    def _path(self, result, suffix: str) -> tuple[Path, str | None]:
        path, renamed = self.folder.path_for(result.source, result.root, suffix)
        note = f"{printable(result.source)}: saved as {printable(path)} (the first name was taken)"
        return path, note if renamed else None

    def close(self) -> None:
        if self._video is not None:
            video, self._video, self._video_key = self._video, None, None
            video.close()


def check_outputs(outputs: dict[str, str | Path | None], inputs=(), overwrite: bool = False):
    """Check every output file of a command before any work (``outputs`` maps each option, such
    as ``--out``, to its path or None): a new file or, with ``overwrite``, an existing regular
    one; never a folder, pipe or device, never one of ``inputs`` (paths given to read) nor
    another output; its folder exists and takes a file. Raises :class:`InputError` naming the
    option and what to do."""
    given = {k: Path(v) for k, v in outputs.items() if v is not None}
    read = set()
    for spec in inputs:
        p = Path(str(spec))
        if p.is_file():
            read.add(p.resolve())
    seen: dict[Path, str] = {}
    for flag, path in given.items():
        name = f"{flag} {printable(path)}"
        resolved = path.resolve()
        if resolved in read:
            raise InputError(f"{name}: that is an input; name a new file for the output")
        if resolved in seen:
            raise InputError(f"{name}: {seen[resolved]} writes there too; name two files")
        seen[resolved] = flag
        if path.is_dir():
            raise InputError(f"{name}: is a folder; name a file in it")
        if path.exists() and not path.is_file():
            raise InputError(f"{name}: not a regular file (a pipe or device); name a file")
        if path.exists() and not overwrite:
            raise InputError(f"{name}: exists; pass --overwrite to replace it")
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():
            what = "is a file" if parent.exists() else "does not exist"
            raise InputError(f"{name}: its folder {what}; name a file in an existing folder")
        try:
            with tempfile.NamedTemporaryFile(dir=parent, prefix=".mobilefer-probe"):
                pass
        except OSError as e:
            raise InputError(
                f"{name}: cannot write there ({e.strerror or e}); choose a writable folder"
            ) from None


def check_save_folder(folder: str | Path, inputs=()) -> None:
    """Refuse a ``--save`` folder inside a folder given to read: the next run would read its
    annotated files as inputs (and save them again, a folder deeper each time)."""
    inside = Path(folder).resolve()
    for spec in inputs:
        p = Path(str(spec))
        if p.is_dir() and inside.is_relative_to(p.resolve()):
            raise InputError(
                f"--save {printable(Path(folder))}: inside the input folder "
                f"{printable(p)}, whose files are read: choose a folder outside it"
            )


def write_atomic(path: str | Path, data: str | bytes) -> int:
    """Write ``data`` to ``path`` through a temporary file in its folder and a rename, so an
    interrupted write leaves the old file or none; the file gets the umask's mode. Returns
    the bytes written."""
    path = Path(path)
    # a name that is not valid UTF-8 (a surrogate-escaped byte) is written as \udcff, not lost
    raw = data.encode("utf-8", "backslashreplace") if isinstance(data, str) else data
    with atomic_output(path, suffix=".tmp") as tmp:
        tmp.write_bytes(raw)
    return len(raw)


@contextmanager
def atomic_output(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """A temporary path in ``path``'s folder to write the whole output to; when the block ends
    without an error it is renamed to ``path`` (with the umask's mode), so a full disk, an
    error or a kill leaves the old file (or none), never half a new one. On an error the
    temporary file is removed."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent if str(path.parent) else ".",
        prefix=".mobilefer-",
        suffix=suffix or path.suffix,
    )
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_together(files: dict) -> None:
    """Write several files (``{path: text or bytes}``) as one: each whole beside its place,
    then all renamed, so an error or a kill leaves the old files (or none), never a new one
    beside an old one. :class:`InputError` names the file that could not be written."""
    done: list[tuple[Path, Path]] = []
    try:
        for path, data in files.items():
            path = Path(path)
            raw = data.encode("utf-8", "backslashreplace") if isinstance(data, str) else data
            try:
                fd, tmp = tempfile.mkstemp(
                    dir=path.parent if str(path.parent) else ".", prefix=".mobilefer-"
                )
                done.append((Path(tmp), path))
                with os.fdopen(fd, "wb") as f:
                    f.write(raw)
                os.chmod(tmp, umask_mode())
            except OSError as e:
                raise InputError(
                    f"{printable(path)}: cannot write it ({e.strerror or e}); nothing was written"
                ) from None
        for tmp, path in done:
            try:
                os.replace(tmp, path)
            except OSError as e:
                raise InputError(
                    f"{printable(path)}: cannot write it ({e.strerror or e})"
                ) from None
    finally:
        for tmp, _ in done:
            tmp.unlink(missing_ok=True)
