"""From clips to a study: stimulus events, participants, and how faces responded to each event.

A study shows the same stimulus to many participants, one clip each. :func:`read_events` reads
its events (a CSV of ``name,start,end`` in seconds, optionally ``clip`` to give a clip its own
times), :func:`read_participants` who is in each clip (``clip,participant,group``).
:func:`mobilefer.summarize` with ``events`` gives, per clip and per tracked face, one
:class:`EventSummary` per event; :func:`compare` then gives the study table across
participants (:class:`Study`): per event, and per group where groups are given, the mean and a
95% interval of each expression and of valence, and :meth:`Study.rows` one row per participant
and event for a user's own statistics.

Conventions: times are seconds from the start of each clip, an event holds the frames with
``start <= time < end``; a participant's face in a frame is the largest face scored in it (a
face turned beyond ``max_yaw`` is not scored); means are over the event's usable frames (those
with a scored face); valence is :func:`mobilefer.summary.valence`'s (happy minus the strongest
negative expression), averaged over frames.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .errors import InputError
from .image import shown

#: The labels whose strongest probability is subtracted from happy's for valence.
NEGATIVE = ("sad", "angry", "fear", "disgust")
#: Largest events or participants file read (bytes): a study's are a few KB.
MAX_TABLE_BYTES = 1 << 20
#: Most events a study may have (each is a band on every timeline and a row of every table).
MAX_EVENTS = 500


@dataclass(frozen=True)
class Event:
    """One part of the stimulus: ``name``, ``start`` and ``end`` in seconds from the start of
    the clip; ``clip`` names the one clip these times are for (``None``: every clip without
    its own row for this event)."""

    name: str
    start: float
    end: float
    clip: str | None = None


@dataclass(frozen=True)
class Moment:
    """Where an expression peaked within an event: time (s), frame and probability."""

    time: float
    frame: int
    probability: float


@dataclass(frozen=True)
class EventSummary:
    """What one face (a participant's, or one track's) showed during one event.

    ``frames``: frames read within the event; ``usable``: those with a scored face;
    ``turned``: those with a face but none scored (turned beyond ``max_yaw``); ``mean`` and
    ``share`` (of usable frames, by top label) per label, ``valence`` the mean valence,
    ``peaks`` the moment of each label's highest probability: all ``None`` without usable
    frames. ``change``: ``mean`` and ``valence`` (key ``"valence"``) minus the baseline
    event's, ``None`` without a baseline or when either has no usable frame.
    """

    event: str
    start: float
    end: float
    frames: int
    usable: int
    turned: int
    mean: dict[str, float] | None
    share: dict[str, float] | None
    valence: float | None
    peaks: dict[str, Moment] | None
    change: dict[str, float] | None = None

    @property
    def usable_share(self) -> float | None:
        """The share of the event's frames with a scored face (``None`` without frames)."""
        return self.usable / self.frames if self.frames else None


@dataclass(frozen=True)
class Interval:
    """A mean across ``n`` participants and its 95% interval (Student's t; ``low`` and
    ``high`` are ``None`` for fewer than 2 participants)."""

    mean: float
    low: float | None
    high: float | None
    n: int


@dataclass(frozen=True)
class StudyRow:
    """One event (and one group, ``None``: everyone) across participants: how many had usable
    frames, their mean usable share, and each label's and valence's :class:`Interval`."""

    event: str
    group: str | None
    participants: int
    usable_share: float
    mean: dict[str, Interval]
    valence: Interval
    change_valence: Interval | None = None


@dataclass(frozen=True)
class Participant:
    """One participant: ``name``, ``group`` (or ``None``), the clip they were filmed in and
    their :class:`EventSummary` per event."""

    name: str
    group: str | None
    clip: str
    events: tuple[EventSummary, ...]


@dataclass(frozen=True)
class Study:
    """The study table: ``labels``, the ``events`` in order, the ``groups`` (empty without
    groups), the ``participants`` and the :class:`StudyRow` per event (everyone, then each
    group)."""

    labels: tuple[str, ...]
    events: tuple[str, ...]
    groups: tuple[str, ...]
    participants: tuple[Participant, ...]
    table: tuple[StudyRow, ...]
    baseline: str | None = None

    def rows(self) -> list[dict]:
        """One flat dict per participant and event (the ``--csv`` file's rows)."""
        out = []
        for p in self.participants:
            for e in p.events:
                row = {"participant": p.name, "group": p.group or "", "clip": p.clip,
                       "event": e.event, "start": e.start, "end": e.end, "frames": e.frames,
                       "usable": e.usable, "turned": e.turned, "valence": _round(e.valence),
                       "usable_share": _round(e.usable_share)}  # fmt: skip
                for k in self.labels:
                    row[f"mean_{k}"] = _round(e.mean[k]) if e.mean else None
                for k in self.labels:
                    row[f"share_{k}"] = _round(e.share[k]) if e.share else None
                if self.baseline:
                    row["change_valence"] = _round(e.change["valence"]) if e.change else None
                    for k in self.labels:
                        row[f"change_{k}"] = _round(e.change[k]) if e.change else None
                out.append(row)
        return out

    def to_csv(self) -> str:
        """:meth:`rows` as CSV text, with a header."""
        rows = self.rows()
        f = io.StringIO(newline="")
        if rows:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)
        return f.getvalue()


@dataclass(frozen=True)
class StudyPlan:
    """What makes clips a study: the ``events``, the ``baseline`` event's name and the
    ``participants`` (``{clip: (participant, group)}``); :meth:`from_files` reads them."""

    events: tuple[Event, ...] = ()
    baseline: str | None = None
    participants: dict | None = None

    @classmethod
    def from_files(cls, events=None, baseline: str | None = None,
                   participants=None) -> StudyPlan:  # fmt: skip
        """The plan of an events file, a baseline event's name and a participants file (each
        may be ``None``; a baseline or participants need events); checked."""
        if events is None and (baseline or participants):
            raise InputError("--baseline and --participants go with --events (the times of "
                             "the stimulus's parts)")  # fmt: skip
        got = read_events(events) if events is not None else ()
        people = read_participants(participants) if participants is not None else None
        return cls(got, baseline, people).checked(shown(Path(events or "")))

    def unmatched(self, sources) -> list[str]:
        """The clips this plan names (an events row's ``clip``, a participant's) that are none of
        ``sources``: a typo, or a clip left out of the run."""
        named = {e.clip for e in self.events if e.clip} | set(self.participants or ())
        return sorted(n for n in named if not any(matches(n, s) for s in sources))

    def checked(self, where: str = "the events") -> StudyPlan:
        """This plan, its baseline checked to be one of its events."""
        if self.baseline is not None and self.baseline not in {e.name for e in self.events}:
            names = ", ".join(dict.fromkeys(e.name for e in self.events))
            raise InputError(f"--baseline {self.baseline!r} is not an event of {where}; "
                             f"choose from {names}")  # fmt: skip
        return self


def _round(v: float | None) -> float | None:
    return None if v is None else round(float(v), 4)


def _table(path: str | Path, what: str, required: tuple[str, ...]) -> list[tuple[int, dict]]:
    """The rows of a small CSV file with these columns, each with its line number."""
    p = Path(path)
    try:
        if not p.is_file():  # a pipe or device is never opened: it could block or never end
            why = "not a regular file" if p.exists() else f"no such {what} file"
            raise InputError(f"{shown(p)}: {why}; pass a CSV file with columns "
                             f"{','.join(required)}")  # fmt: skip
        if p.stat().st_size > MAX_TABLE_BYTES:
            raise InputError(f"{shown(p)}: over {MAX_TABLE_BYTES >> 20} MB; a {what} file is a "
                             "small CSV")  # fmt: skip
        text = p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{shown(p)}: not UTF-8 text; save the {what} file as CSV") from None
    except OSError as e:
        raise InputError(f"{shown(p)}: cannot read the {what} file ({e.strerror or e})") from None
    return _rows(text, shown(p), what, required)


def _rows(text: str, name: str, what: str, required) -> list[tuple[int, dict]]:
    try:
        reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
        columns = [c.strip().lower() for c in reader.fieldnames or []]
        missing = [c for c in required if c not in columns]
        if missing:
            raise InputError(f"{name}:1: the {what} file needs columns {','.join(required)} "
                             f"(no {', '.join(missing)})")  # fmt: skip
        rows = []
        for row in reader:
            if None in row or any(v is None for v in row.values()):
                raise InputError(f"{name}:{reader.line_num}: not as many values as columns")
            values = {c: (v or "").strip() for c, v in zip(columns, row.values(), strict=True)}
            if any(values.values()):
                rows.append((reader.line_num, values))
        return rows
    except csv.Error as e:
        raise InputError(f"{name}: not CSV ({e})") from None


def read_events(path: str | Path) -> tuple[Event, ...]:
    """The events of a CSV file with columns ``name,start,end`` (seconds) and optionally
    ``clip`` (rows for one clip; an empty ``clip`` is for every clip). Checked: times are
    finite, ``0 <= start < end``, a name has one row per clip. :class:`InputError` names the
    file and line otherwise."""
    return parse_events(_table(path, "events", EVENT_COLUMNS), shown(Path(path)))


#: The columns an events file needs.
EVENT_COLUMNS = ("name", "start", "end")


def parse_events(rows, name: str = "events.csv") -> tuple[Event, ...]:
    """The events of CSV text (or of rows already read, as :func:`read_events` does); ``name``
    names the file in errors."""
    if isinstance(rows, str):
        rows = _rows(rows, name, "events", EVENT_COLUMNS)
    out, seen = [], set()
    for line, row in rows:
        where = f"{name}:{line}"
        name = row["name"]
        if not name:
            raise InputError(f"{where}: an event needs a name")
        try:
            start, end = float(row["start"]), float(row["end"])
        except ValueError:
            raise InputError(f"{where}: start {row['start']!r} and end {row['end']!r} must be "
                             "seconds, e.g. 12.5") from None  # fmt: skip
        if not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end):
            raise InputError(f"{where}: {name}: needs 0 <= start < end (seconds), got "
                             f"{start:g}-{end:g}")  # fmt: skip
        clip = row.get("clip") or None
        if (name, clip) in seen:
            raise InputError(f"{where}: {name} is given twice" + (f" for {clip}" if clip else ""))
        seen.add((name, clip))
        out.append(Event(name, start, end, clip))
        if len(out) > MAX_EVENTS:
            raise InputError(f"{where}: over {MAX_EVENTS} events; a study's events are the parts "
                             "of its stimulus")  # fmt: skip
    if not out:
        raise InputError(f"{name}: no events (rows of name,start,end)")
    return tuple(out)


def read_participants(path: str | Path) -> dict[str, tuple[str, str | None]]:
    """``{clip: (participant, group)}`` from a CSV file with columns ``clip,participant`` and
    optionally ``group``. A participant has one clip (join a session's files into one)."""
    out: dict[str, tuple[str, str | None]] = {}
    clips: dict[str, str] = {}
    for line, row in _table(path, "participants", ("clip", "participant")):
        where = f"{shown(Path(path))}:{line}"
        clip, who = row["clip"], row["participant"]
        if not clip or not who:
            raise InputError(f"{where}: a row needs a clip and a participant")
        if clip in out:
            raise InputError(f"{where}: clip {clip} is given twice")
        if who in clips:
            raise InputError(f"{where}: participant {who} has two clips ({clips[who]}, {clip}); "
                             "join them into one clip or name them apart")  # fmt: skip
        clips[who] = clip
        out[clip] = (who, row.get("group") or None)
    return out


def matches(name: str, source: str) -> bool:
    """Whether a clip named in an events or participants file is ``source``: the same path,
    file name, or file name without its suffix."""
    src = Path(source)
    return name in (source, src.name, src.stem) or Path(name) == src


def events_of(events, source: str) -> tuple[Event, ...]:
    """The events of one clip, by start: its own rows, and the shared rows of the events it has
    no row of its own for."""
    own = [e for e in events if e.clip is not None and matches(e.clip, source)]
    names = {e.name for e in own}
    shared = [e for e in events if e.clip is None and e.name not in names]
    return tuple(sorted(own + shared, key=lambda e: (e.start, e.end)))


def valence_of(p: np.ndarray, labels) -> np.ndarray:
    """Valence per row of probabilities ``p`` (rows x labels): happy minus the strongest
    negative expression."""
    idx = {k: i for i, k in enumerate(labels)}
    happy = p[:, idx["happy"]] if "happy" in idx else np.zeros(len(p))
    neg = [idx[k] for k in NEGATIVE if k in idx]
    return happy - (p[:, neg].max(axis=1) if neg else 0.0)


def summarize_event(event: Event, labels, when: np.ndarray, frame_of: np.ndarray,
                    faced: np.ndarray, probs: np.ndarray, top: np.ndarray,
                    p_when: np.ndarray, p_frame: np.ndarray) -> EventSummary:  # fmt: skip
    """One :class:`EventSummary`: ``when``/``frame_of``/``faced`` describe every frame read
    (its time, index, and whether a face was found in it); ``probs``, ``top``, ``p_when`` and
    ``p_frame`` the one scored face kept per usable frame (probabilities, top label index,
    time, frame)."""
    inside = (when >= event.start) & (when < event.end)
    use = (p_when >= event.start) & (p_when < event.end)
    frames, usable = int(inside.sum()), int(use.sum())
    turned = int((inside & faced).sum()) - usable
    if not usable:
        return EventSummary(event.name, event.start, event.end, frames, 0, turned, None, None,
                            None, None)  # fmt: skip
    p, t = probs[use].astype(np.float64), top[use]
    mean = {k: float(p[:, i].mean()) for i, k in enumerate(labels)}
    share = {k: float((t == i).mean()) for i, k in enumerate(labels)}
    rows = np.flatnonzero(use)
    peaks = {}
    for i, k in enumerate(labels):
        j = rows[int(np.argmax(p[:, i]))]
        peaks[k] = Moment(float(p_when[j]), int(p_frame[j]), float(probs[j, i]))
    val = float(valence_of(p, labels).mean())
    return EventSummary(event.name, event.start, event.end, frames, usable, turned, mean, share,
                        val, peaks)  # fmt: skip


def with_change(summaries: tuple[EventSummary, ...], baseline: str | None):
    """The summaries with ``change`` from the ``baseline`` event's set."""
    if baseline is None:
        return summaries
    base = next((e for e in summaries if e.event == baseline), None)
    if base is None or base.mean is None:
        return summaries
    out = []
    for e in summaries:
        change = None
        if e.mean is not None:
            change = {k: e.mean[k] - base.mean[k] for k in e.mean}
            change["valence"] = e.valence - base.valence
        out.append(replace(e, change=change))
    return tuple(out)


#: Student's t, the 97.5th percentile, for 1-30 degrees of freedom.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip


def t975(df: int) -> float:
    """Student's t at 0.975 for ``df`` degrees of freedom (a table to 30, then the
    Cornish-Fisher expansion, within 0.001)."""
    if df < 1:
        raise ValueError("df must be >= 1")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def interval(values) -> Interval:
    """The mean of ``values`` and its 95% interval (Student's t)."""
    v = np.asarray(values, np.float64)
    n = len(v)
    mean = float(v.mean())
    if n < 2:
        return Interval(mean, None, None, n)
    half = t975(n - 1) * float(v.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def compare(clips, participants: dict | None = None, baseline: str | None = None) -> Study:
    """The study table of summaries made with events (:func:`mobilefer.summarize` with
    ``events``): one participant per clip (named by ``participants``, ``{clip: (name,
    group)}`` as :func:`read_participants` gives, else by the clip's file name); per event, and
    per group where groups are given, each label's and valence's mean across the participants
    with usable frames in it, with a 95% interval."""
    videos = [c for c in clips if c.kind == "video"]
    if not videos or not any(c.events for c in videos):
        raise InputError("no video with events among these summaries: events mark times in "
                         "videos (summarize them with events=...)")  # fmt: skip
    labels = videos[0].labels or next((c.labels for c in videos if c.labels), ())
    people = []
    for c in videos:
        named = next((v for k, v in (participants or {}).items() if matches(k, c.source)), None)
        name, group = named or (Path(c.source).stem, None)
        people.append(Participant(name, group, c.source, c.events))
    order: list[str] = []
    for p in people:
        for e in p.events:
            if e.event not in order:
                order.append(e.event)
    groups = tuple(sorted({p.group for p in people if p.group}))
    table = []
    for event in order:
        for group in (None, *groups):
            got = [e for p in people if group is None or p.group == group
                   for e in p.events if e.event == event]  # fmt: skip
            seen = [e for e in got if e.mean is not None]
            if not seen:
                continue
            changes = [e.change["valence"] for e in seen if e.change]
            table.append(StudyRow(
                event, group, len(seen),
                float(np.mean([e.usable_share for e in got if e.frames] or [0.0])),
                {k: interval([e.mean[k] for e in seen]) for k in labels},
                interval([e.valence for e in seen]),
                interval(changes) if baseline and changes else None,
            ))  # fmt: skip
    return Study(tuple(labels), tuple(order), groups, tuple(people), tuple(table), baseline)
