"""From clips to a study: stimulus events, participants, and how faces responded to each event.

A study shows the same stimulus to many participants, one clip each; its events and
participants are read by :mod:`mobilefer.events`. :func:`mobilefer.summarize` with ``events``
gives, per clip and per tracked face, one :class:`EventSummary` per event; :func:`compare` then
gives the study table across participants (:class:`Study`): per event, and per group where
groups are given, the mean and a 95% interval of each expression and of valence, and
:meth:`Study.rows` one row per participant and event for a user's own statistics.

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

from ..errors import InputError
from ..records import cell
from .plan import Event, Member, check_matches, member_of

#: The labels whose strongest probability is subtracted from happy's for valence.
NEGATIVE = ("sad", "angry", "fear", "disgust")


@dataclass(frozen=True)
class Peak:
    """The moment one expression was most probable (for a track, or within an event): time (s;
    ``None`` where the source gave none), frame and probability."""

    time: float | None
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
    peaks: dict[str, Peak] | None
    change: dict[str, float] | None = None
    action_units: dict[str, float] | None = None

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
    frames, their mean usable share, and each label's and valence's :class:`Interval` (and
    each action unit's, where the participants' faces had the face mesh)."""

    event: str
    group: str | None
    participants: int
    usable_share: float
    mean: dict[str, Interval]
    valence: Interval
    change_valence: Interval | None = None
    action_units: dict[str, Interval] | None = None


@dataclass(frozen=True)
class Participant:
    """One participant: ``name``, ``group`` (or ``None``), the clip they were filmed in,
    their :class:`EventSummary` per event and whether their faces were ``calibrated``."""

    name: str
    group: str | None
    clip: str
    events: tuple[EventSummary, ...]
    calibrated: bool = False


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

    @property
    def unit_names(self) -> tuple[str, ...]:
        """The action units the participants' faces had (empty without the face mesh)."""
        for p in self.participants:
            for e in p.events:
                if e.action_units:
                    return tuple(e.action_units)
        return ()

    def rows(self) -> list[dict]:
        """One flat dict per participant and event (the ``--csv`` file's rows; with the face
        mesh, ``mean_AU1`` ... too)."""
        out = []
        for p in self.participants:
            for e in p.events:
                row = {
                    "participant": p.name,
                    "group": p.group or "",
                    "clip": p.clip,
                    "event": e.event,
                    "start": e.start,
                    "end": e.end,
                    "frames": e.frames,
                    "usable": e.usable,
                    "turned": e.turned,
                    "valence": _round(e.valence),
                    "usable_share": _round(e.usable_share),
                    "calibrated": "true" if p.calibrated else "false",
                }
                for k in self.labels:
                    row[f"mean_{k}"] = _round(e.mean[k]) if e.mean else None
                for k in self.labels:
                    row[f"share_{k}"] = _round(e.share[k]) if e.share else None
                if self.baseline:
                    row["change_valence"] = _round(e.change["valence"]) if e.change else None
                    for k in self.labels:
                        row[f"change_{k}"] = _round(e.change[k]) if e.change else None
                for u in self.unit_names:
                    row[f"mean_{u}"] = _round(e.action_units[u]) if e.action_units else None
                out.append(row)
        return out

    def to_csv(self) -> str:
        """:meth:`rows` as CSV text, with a header."""
        rows = self.rows()
        f = io.StringIO(newline="")
        if rows:
            w = csv.writer(f)
            w.writerow([cell(k) for k in rows[0]])
            w.writerows([cell("" if v is None else v) for v in r.values()] for r in rows)
        return f.getvalue()


def _round(v: float | None) -> float | None:
    return None if v is None else round(float(v), 4)


def valence_of(p: np.ndarray, labels) -> np.ndarray:
    """Valence per row of probabilities ``p`` (rows x labels): happy minus the strongest
    negative expression."""
    idx = {k: i for i, k in enumerate(labels)}
    happy = p[:, idx["happy"]] if "happy" in idx else np.zeros(len(p))
    neg = [idx[k] for k in NEGATIVE if k in idx]
    return happy - (p[:, neg].max(axis=1) if neg else 0.0)


def unit_means(names, rows: np.ndarray) -> dict[str, float] | None:
    """Each action unit's mean over the rows (faces x units) that have them; None when none
    has (faces without the face mesh are NaN rows)."""
    have = ~np.isnan(rows).any(axis=1)
    if not have.any():
        return None
    mean = rows[have].astype(np.float64).mean(axis=0)
    return {k: round(float(v), 4) for k, v in zip(names, mean, strict=True)}


def summarize_event(
    event: Event,
    labels,
    when: np.ndarray,
    frame_of: np.ndarray,
    faced: np.ndarray,
    probs: np.ndarray,
    top: np.ndarray,
    p_when: np.ndarray,
    p_frame: np.ndarray,
    units=None,
) -> EventSummary:
    """One :class:`EventSummary`: ``when``/``frame_of``/``faced`` describe every frame read
    (its time, index, and whether a face was found in it); ``probs``, ``top``, ``p_when`` and
    ``p_frame`` the one scored face kept per usable frame (probabilities, top label index,
    time, frame); ``units``: ``(names, rows)``, those faces' action units, or None."""
    inside = (when >= event.start) & (when < event.end)
    use = (p_when >= event.start) & (p_when < event.end)
    frames, usable = int(inside.sum()), int(use.sum())
    turned = int((inside & faced).sum()) - usable
    if not usable:
        return EventSummary(
            event.name, event.start, event.end, frames, 0, turned, None, None, None, None
        )
    p, t = probs[use].astype(np.float64), top[use]
    mean = {k: float(p[:, i].mean()) for i, k in enumerate(labels)}
    share = {k: float((t == i).mean()) for i, k in enumerate(labels)}
    rows = np.flatnonzero(use)
    peaks = {}
    for i, k in enumerate(labels):
        j = rows[int(np.argmax(p[:, i]))]
        peaks[k] = Peak(float(p_when[j]), int(p_frame[j]), float(probs[j, i]))
    val = float(valence_of(p, labels).mean())
    au = None if units is None else unit_means(units[0], units[1][use])
    return EventSummary(
        event.name,
        event.start,
        event.end,
        frames,
        usable,
        turned,
        mean,
        share,
        val,
        peaks,
        action_units=au,
    )


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
_T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


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
    ``events``): one participant per clip (named by ``participants``, ``{clip: Member}`` as
    :func:`mobilefer.events.read_participants` gives, else by the clip's file name); per event, and
    per group where groups are given, each label's and valence's mean across the participants
    with usable frames in it, with a 95% interval."""
    videos = [c for c in clips if c.kind == "video"]
    if not videos or not any(c.events for c in videos):
        raise InputError(
            "no video with events among these summaries: events mark times in "
            "videos (summarize them with events=...)"
        )
    labels = next((c.labels for c in videos if c.labels), ())
    check_matches(participants or (), [c.source for c in videos])
    stems = [Path(c.source).stem for c in videos]
    people = []
    for c in videos:
        stem = Path(c.source).stem  # a clip's own name; its path where two clips share it
        member = member_of(participants, c.source) or Member(
            stem if stems.count(stem) == 1 else c.source
        )
        people.append(
            Participant(member.participant, member.group, c.source, c.events, c.calibrated)
        )
    order: list[str] = []
    for p in people:
        for e in p.events:
            if e.event not in order:
                order.append(e.event)
    groups = tuple(sorted({p.group for p in people if p.group}))
    table = []
    for event in order:
        for group in (None, *groups):
            got = [
                e
                for p in people
                if group is None or p.group == group
                for e in p.events
                if e.event == event
            ]
            seen = [e for e in got if e.mean is not None]
            if not seen:
                continue
            changes = [e.change["valence"] for e in seen if e.change]
            with_units = [e.action_units for e in seen if e.action_units]
            names = tuple(with_units[0]) if with_units else ()
            table.append(
                StudyRow(
                    event,
                    group,
                    len(seen),
                    float(np.mean([e.usable_share for e in got if e.frames] or [0.0])),
                    {k: interval([e.mean[k] for e in seen]) for k in labels},
                    interval([e.valence for e in seen]),
                    interval(changes) if baseline and changes else None,
                    {u: interval([a[u] for a in with_units]) for u in names} or None,
                )
            )
    return Study(tuple(labels), tuple(order), groups, tuple(people), tuple(table), baseline)
