"""The record format in one place: the fields of a face's record (:data:`RECORD_FIELDS`), the
records of a frame, the CSV header and cells, and the reader (:func:`iter_records`,
:func:`read_records`), so that every writer (:mod:`mobilefer.sinks`: JSON Lines, CSV, Ray's
Arrow schema) and reader follows one list.

A record is one face (or one no-face record for an input without a face): the fields of
:data:`RECORD_FIELDS` in that order; JSON Lines gives one object per line, CSV one row with the
box split into ``x, y, w, h`` and one column per label (:func:`csv_columns`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .action_units import ACTION_UNITS
from .errors import InputError
from .image import printable
from .mesh import BLENDSHAPES


@dataclass(frozen=True)
class Field:
    """One field of a record: its ``name``, its ``kind`` (``str``, ``int``, ``float``,
    ``bool``, ``box``: ``[x, y, w, h]`` integers, ``scores``: one probability per model
    label, or ``units``: a value in 0-1 for each of ``units``), what it means (the README's
    field table) and its CSV columns: a box becomes ``x, y, w, h``, units one column each,
    scores one column per label (after the others). An ``optional`` field is in a record only
    when an option fills it (``Options.record_extras``)."""

    name: str
    kind: Literal["str", "int", "float", "bool", "box", "scores", "units"]
    meaning: str
    optional: bool = False
    units: tuple[str, ...] = ()

    def csv_columns(self) -> tuple[str, ...]:
        """The CSV columns of this field (scores: none here; their columns come last)."""
        if self.kind == "units":
            return self.units
        return {"box": tuple("xywh"), "scores": ()}.get(self.kind, (self.name,))


#: The record of one face, in JSON order (see :mod:`mobilefer.sinks`).
RECORD_FIELDS: tuple[Field, ...] = (
    Field("source", "str", "the file, or `webcam:N`"),
    Field("frame", "int", "frame index, for video and webcams; `null` for images"),
    Field("time", "float", "seconds from the start, for video and webcams; `null` for images"),
    Field("face", "int", "0, 1, ... within the frame"),
    Field("box", "box", "`[x, y, w, h]` in input pixels (CSV: columns `x`, `y`, `w`, `h`)"),
    Field("label", "str", "the most likely label"),
    Field("scores", "scores", "every label's probability, summing to 1 (CSV: one column each)"),
    Field("detector", "str", "`haar` or `yunet`"),
    Field("detector_score", "float", "YuNet's confidence in the face (`null` for Haar)"),
    Field("yaw", "float", "degrees the face is turned toward the image's right (`null` for Haar)"),
    Field("pitch", "float", "degrees the face is turned up (`null` for Haar)"),
    Field("roll", "float", "degrees the head is tilted clockwise (`null` for Haar)"),
    Field("track_id", "int", "the face's track in a video or webcam stream"),
    Field("score", "float", "the probability of `label`"),
    Field(
        "calibrated",
        "bool",
        "whether `scores` were calibrated on the person's neutral face (`--calibrate`)",
    ),
    Field(
        "action_units",
        "units",
        "with `--mesh`: each FACS action unit's intensity, 0-1, 0.5 meaning present "
        "(MediaPipe's blendshapes mapped, not a FACS coder's; CSV: a column each, `AU1`...)",
        optional=True,
        units=ACTION_UNITS,
    ),
    Field(
        "blendshapes",
        "units",
        "with `--blendshapes`: MediaPipe's 52 blendshape scores, 0-1 (CSV: a column each)",
        optional=True,
        units=BLENDSHAPES,
    ),
)
#: The optional fields, by name.
OPTIONAL_FIELDS = {f.name: f for f in RECORD_FIELDS if f.optional}
#: Every column that optional fields may add to a CSV (never a label's).
UNIT_COLUMNS = frozenset(c for f in OPTIONAL_FIELDS.values() for c in f.units)


def csv_columns(labels=(), extras=()) -> list[str]:
    """The CSV header of records from a model with these labels: the fields in record order
    (the box as ``x, y, w, h``; optional fields only when named in ``extras``), then one column
    per label."""
    kept = [f for f in RECORD_FIELDS if not f.optional or f.name in extras]
    return [c for f in kept for c in f.csv_columns()] + list(labels)


#: The record's field names, in order.
FIELD_NAMES = tuple(f.name for f in RECORD_FIELDS)
#: The fields every record has.
BASE_NAMES = tuple(f.name for f in RECORD_FIELDS if not f.optional)


def records(
    source: str,
    faces,
    frame: int | None = None,
    t: float | None = None,
    detector: str | None = None,
    empty: bool = True,
) -> list[dict]:
    """The JSON-ready records of one frame's faces, with the fields of :data:`RECORD_FIELDS` in
    order; with ``empty``, one no-face record when there is no face (its ``face``, ``box``,
    ``label``, ``scores`` and ``score`` are ``None``), so every input read appears. A face
    turned beyond ``max_yaw`` has its box and angles, and ``label``, ``scores`` and ``score``
    ``None``. Optional fields appear where a face has them (the mesh's)."""
    base = {"source": source, "frame": frame, "time": None if t is None else round(t, 3)}
    out = []
    for i, face in enumerate(faces):
        values = base | {
            "face": i,
            "box": list(face.box),
            "score": face.score,
            "scores": None if face.scores is None else dict(face.scores),
        }
        rec = {n: values[n] if n in values else getattr(face, n) for n in BASE_NAMES}
        for n in OPTIONAL_FIELDS:
            if getattr(face, n, None) is not None:
                rec[n] = dict(getattr(face, n))
        out.append(rec)
    if not out and empty:
        out.append(dict.fromkeys(BASE_NAMES) | base | {"detector": detector})
    return out


#: The CSV columns before the one-per-label ones (without the optional fields').
CSV_FIELDS = csv_columns()

#: First characters that make a spreadsheet read a cell as a formula (OWASP's CSV injection),
#: and the quote that marks a cell neutralised.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value):
    """A CSV cell a spreadsheet shows as text: a string that begins like a formula (or with
    the marking quote) gets a leading ``'``; numbers and everything else stay as they are.
    :func:`uncell` undoes it."""
    if isinstance(value, str) and value.startswith((*FORMULA_START, "'")):
        return "'" + value
    return value


def uncell(value: str) -> str:
    """A text cell as it was before :func:`cell`."""
    return value[1:] if value.startswith("'") else value


#: Longest line read back (a record is under 1 KB; a longer line is not one of ours).
MAX_LINE = 1 << 20


def iter_records(path: str | Path) -> Iterator[dict]:
    """The records of ``mobilefer predict`` in a JSON Lines or CSV file (by its suffix), one at
    a time (bounded memory), each checked: :class:`InputError` names the file and line of the
    first record that is not one (not UTF-8, not JSON, nested, missing or mistyped fields,
    non-finite numbers, a label set that changes mid-file); a pipe or device is refused."""
    yield from _records(records_file(path))


def _records(p: Path) -> Iterator[dict]:
    """The records of a file already checked by :func:`records_file`."""
    labels: list[tuple[str, ...] | None] = [None]
    with open(p, "rb") as raw:
        lines = _lines(raw, p)
        if p.suffix.lower() == ".csv":
            header = next(lines, None)
            if header is None:
                return
            reader = csv.DictReader(io.StringIO(header[1]))
            columns = [uncell(c) for c in reader.fieldnames or []]
            missing = [c for c in CSV_FIELDS if c not in columns and c not in _CSV_LATER]
            if missing:
                raise InputError(
                    f"{printable(p)}:1: not a CSV of records (no {', '.join(missing)})"
                )
            for n, line in lines:
                try:
                    values = next(csv.reader([line]))
                except csv.Error as e:
                    raise InputError(f"{printable(p)}:{n}: not CSV ({e})") from None
                if len(values) != len(columns):
                    raise InputError(
                        f"{printable(p)}:{n}: {len(values)} columns, the header has {len(columns)}"
                    )
                row = {c: uncell(v) for c, v in zip(columns, values, strict=True)}
                yield _checked(_from_csv(row, p, n), f"{printable(p)}:{n}", labels)
            return
        for n, line in lines:
            if not line.strip():
                continue
            try:
                rec = json.loads(line, parse_constant=_no_constant)
            except (json.JSONDecodeError, ValueError) as e:
                raise InputError(f"{printable(p)}:{n}: not JSON Lines ({e})") from None
            except RecursionError:
                raise InputError(f"{printable(p)}:{n}: nested too deep to be a record") from None
            yield _checked(rec, f"{printable(p)}:{n}", labels)


def read_records(path: str | Path) -> Iterator[dict]:
    """The records of a file, read one at a time as they are used (:func:`iter_records`; a
    file of any length takes little memory): ``summarize(read_records(path))`` holds no more
    than a summary. The file is checked to be readable now; ``list(read_records(path))`` holds
    every record."""
    return _records(records_file(path))


def records_file(path: str | Path) -> Path:
    """``path``, checked to be a regular file that can be read (a pipe or device is refused
    unopened): :class:`InputError` otherwise."""
    p = Path(path)
    try:
        mode = os.stat(p).st_mode
    except OSError as e:
        raise InputError(f"{printable(p)}: cannot read the records ({e.strerror or e})") from None
    if not stat.S_ISREG(mode):
        raise InputError(f"{printable(p)}: not a regular file; pass a file of records")
    return p


def check_record(rec, where: str = "a record") -> dict:
    """A record dict as :func:`iter_records` checks those of a file (fields, kinds, finite
    numbers, probabilities summing to 1, a label among its scores); :class:`InputError`
    naming ``where`` otherwise."""
    return _checked(rec, where, [None])


def _lines(raw, p: Path) -> Iterator[tuple[int, str]]:
    for n, line in enumerate(iter(lambda: raw.readline(MAX_LINE + 1), b""), start=1):
        if len(line) > MAX_LINE:
            raise InputError(f"{printable(p)}:{n}: a line over {MAX_LINE:,} bytes is not a record")
        try:  # a byte-order mark (spreadsheets write one) is not part of the first record
            yield n, line.decode("utf-8-sig" if n == 1 else "utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise InputError(f"{printable(p)}:{n}: not UTF-8 text") from None


def _no_constant(name: str):
    raise ValueError(f"{name} is not a finite number")


#: The largest whole number a record may hold (frames, boxes: what numpy's int64 holds).
_INT_MAX = 2**63 - 1
#: How far a record's probabilities may sum from 1 (CSV rounds each to 6 decimals).
_SUM_TOLERANCE = 1e-3
#: What each field may hold, by its kind (None is allowed where a no-face record has it).
_TYPES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}


def _checked(rec, where: str, labels: list) -> dict:
    if not isinstance(rec, dict):
        raise InputError(f"{where}: not a record (a JSON object per line)")
    missing = [f for f in ("source", "frame", "time", "label", "scores") if f not in rec]
    if missing:
        raise InputError(f"{where}: not a record (no {', '.join(missing)})")
    for f in RECORD_FIELDS:
        v = rec.get(f.name)
        if v is None:
            continue
        if f.kind in _TYPES:
            ok = isinstance(v, _TYPES[f.kind]) and (f.kind == "bool") == isinstance(v, bool)
            ok = ok and (f.kind != "float" or math.isfinite(v))
            ok = ok and (f.kind != "int" or 0 <= v <= _INT_MAX)  # counts and indices
        elif f.kind == "box":
            ok = (
                isinstance(v, list)
                and len(v) == 4
                and all(
                    isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= _INT_MAX for x in v
                )
            )
        else:  # scores
            ok = (
                isinstance(v, dict)
                and bool(v)
                and all(
                    isinstance(k, str)
                    and isinstance(x, (int, float))
                    and not isinstance(x, bool)
                    and 0 <= x <= 1
                    for k, x in v.items()
                )
            )
            ok = ok and (f.kind == "units" or abs(sum(v.values()) - 1) <= _SUM_TOLERANCE)
            ok = ok and (f.kind != "units" or set(v) <= set(f.units))
        if not ok:
            what = {
                "int": "whole number from 0",
                "scores": "set of probabilities summing to 1",
                "units": f"set of {f.name} in 0-1",
                "box": "box of 4 whole numbers from 0",
            }.get(f.kind, f.kind)
            raise InputError(f"{where}: {f.name} {printable(repr(v)[:60])} is not a {what}")
    label, scores = rec.get("label"), rec.get("scores")
    if (label is None) != (scores is None) or (label is not None and label not in scores):
        raise InputError(
            f"{where}: label {printable(repr(label)[:40])} is not one of its scores' "
            "labels (a face's record has both, a no-face record neither)"
        )
    if rec.get("scores"):
        names = tuple(rec["scores"])
        if labels[0] is None:
            labels[0] = names
        elif names != labels[0] and set(names) == set(labels[0]):  # another order: the first's
            rec = {**rec, "scores": {k: rec["scores"][k] for k in labels[0]}}
        elif names != labels[0]:
            raise InputError(
                f"{where}: labels {', '.join(names)} differ from the file's "
                f"first ({', '.join(labels[0])}); one file holds one model's"
            )
    return rec


#: The columns that are not one per label.
_CSV_FIXED = set(CSV_FIELDS) | UNIT_COLUMNS
#: Columns added after the first files were written: a CSV without them is still read.
_CSV_LATER = {"yaw", "pitch", "roll", "calibrated"}


def _from_csv(row: dict, p: Path, n: int) -> dict:
    def num(v, kind=float):
        if v in (None, ""):
            return None
        try:
            return kind(v)
        except ValueError:
            raise InputError(f"{printable(p)}:{n}: {v!r} is not a number") from None

    labels = [k for k in row if k not in _CSV_FIXED]
    empty = row.get("label") in (None, "")
    box = [num(row.get(k), int) for k in "xywh"]
    return {
        "source": row["source"],
        "frame": num(row.get("frame"), int),
        "time": num(row.get("time")),
        "face": num(row.get("face"), int),
        "box": None if None in box else box,
        "label": None if empty else row["label"],
        "track_id": num(row.get("track_id"), int),
        "scores": None if empty else {k: num(row[k]) for k in labels},
        **{k: num(row.get(k)) for k in ("yaw", "pitch", "roll")},
        "calibrated": _flag(row.get("calibrated"), p, n),
    } | {
        f.name: {k: num(row[k]) for k in f.units if row.get(k) not in (None, "")}
        for f in OPTIONAL_FIELDS.values()
        if any(row.get(k) not in (None, "") for k in f.units)
    }


def _flag(v, p: Path, n: int) -> bool | None:
    if v in (None, ""):
        return None
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    raise InputError(f"{printable(p)}:{n}: calibrated {v!r} is not true or false")
