"""From frames to findings: what each tracked face showed over a clip, as frozen summaries,
and the arithmetic that makes them from a clip's compact records (:func:`clip_summary`).

:func:`mobilefer.study.summarize` takes the results of :meth:`mobilefer.Recognizer.stream`
or the records of ``mobilefer predict`` read back (:func:`mobilefer.read_records`) and gives
one :class:`ClipSummary` per source: for a video or webcam, one :class:`TrackSummary` per
tracked face; for photos (a folder, a glob), one summary per folder of images with the share of
faces in each expression.

Conventions: times are seconds from the start of the clip (frame index / frames per second
where the source gave no time); shares and mean probabilities map each label of the model to
a number, shares summing to 1. Valence follows the method FaceReader documents, derived from
the expression probabilities: happy minus the strongest of the negative ones (sad, angry, fear,
disgust); surprise counts as neither. It is not a trained valence regressor.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass

import numpy as np

from ..calibration import Calibration, reference_of
from ..errors import InputError
from .plan import Event
from .tables import EventSummary, Peak, summarize_event, unit_means, valence_of, with_change

#: Tracks seen in fewer frames than this are kept but marked ``short`` (a detector's false
#: alarm, or a face passing through): 1 s at 10 frames/s.
MIN_TRACK_FRAMES = 10


@dataclass(frozen=True)
class TrackSummary:
    """One tracked face of a clip.

    ``first_time``/``last_time`` (s) and ``first_frame``/``last_frame`` bound where it was
    seen; ``frames`` counts the frames it was seen in; ``share`` is the fraction of those
    frames in which each label was the (smoothed) top label; ``mean`` the mean probability of
    each label; ``dominant`` the label with the largest share; ``peaks`` the moment of each
    label's highest probability; ``valence`` ``(time, value)`` pairs, one per frame, in -1..1
    (see the module docstring); ``short``: seen in fewer than :data:`MIN_TRACK_FRAMES` frames;
    ``calibrated``: its scores were calibrated on its own frames of an event.
    ``action_units``: each unit's mean intensity over its frames with the face mesh on
    (``None`` without it).
    """

    track_id: int
    first_time: float | None
    last_time: float | None
    first_frame: int
    last_frame: int
    frames: int
    share: dict[str, float]
    mean: dict[str, float]
    dominant: str
    peaks: dict[str, Peak]
    valence: tuple[tuple[float | None, float], ...]
    short: bool
    turned: int = 0
    events: tuple[EventSummary, ...] = ()
    calibrated: bool = False
    action_units: dict[str, float] | None = None


@dataclass(frozen=True)
class ClipSummary:
    """One source: a video or webcam (``kind`` ``"video"``, with ``tracks``), or a set of
    photos (``kind`` ``"images"``: ``source`` is their folder; ``images`` read, ``faces``
    found and ``share`` of faces per top label). ``frames`` counts the frames read, ``labels``
    names the model's classes in order. ``events`` (video, with events): one
    :class:`mobilefer.study.EventSummary` per event of the clip's participant: in each frame,
    the largest face scored. ``calibrated``: some of its tracks were calibrated on their own
    frames of an event (:meth:`Summarizer.summaries`' ``calibrate``)."""

    source: str
    kind: str
    labels: tuple[str, ...]
    frames: int
    duration: float | None
    tracks: tuple[TrackSummary, ...] = ()
    images: int = 0
    faces: int = 0
    share: dict[str, float] | None = None
    events: tuple[EventSummary, ...] = ()
    calibrated: bool = False


def valence(scores: dict[str, float]) -> float:
    """Happy minus the strongest negative expression (module docstring), in -1..1."""
    return float(valence_of(np.array([list(scores.values())], np.float64), tuple(scores))[0])


class ClipRecords:
    """One source's records, kept compact (arrays of numbers, not dicts): about 70 bytes a
    record (and 4 bytes a unit with the face mesh's action units), so that a summary of a
    million records stays within a few hundred MB."""

    def __init__(self, source: str) -> None:
        self.source, self.labels, self.sources = source, (), set()
        self.frames, self.times, self.tracks = array("q"), array("d"), array("q")
        self.label_index, self.scores, self.areas = array("i"), array("f"), array("d")
        self.unit_names: tuple[str, ...] = ()
        self.units, self.scored = array("f"), 0  # action units of the scored faces, in order

    def unit_rows(self) -> np.ndarray | None:
        """The scored faces' action units (scored faces x :attr:`unit_names`; NaN where a
        face had none), or None when no record had them."""
        if not self.unit_names:
            return None
        n = len(self.unit_names)
        rows = np.full((self.scored, n), np.nan, np.float32)
        got = np.frombuffer(self.units, np.float32).reshape(-1, n)
        rows[: len(got)] = got
        return rows

    def track_rows(self, track_id: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scored, mine)``: the rows of the scored faces, and which of them (indices into
        ``scored``, as into :meth:`unit_rows` and the scores) are ``track_id``'s, by frame."""
        frames = np.frombuffer(self.frames, np.int64)
        scored = np.flatnonzero(np.frombuffer(self.label_index, np.int32) >= 0)
        mine = np.flatnonzero(np.frombuffer(self.tracks, np.int64)[scored] == track_id)
        return scored, mine[np.argsort(frames[scored][mine], kind="stable")]

    def _add_units(self, units) -> None:
        if units and not self.unit_names:
            self.unit_names = tuple(units)
        if self.unit_names:
            n = len(self.unit_names)
            missing = (self.scored - len(self.units) // n) * n  # faces before the first units
            self.units.extend([math.nan] * missing)
            self.units.extend(
                float(units.get(k, math.nan)) if units else math.nan for k in self.unit_names
            )

    def add(self, rec: dict) -> None:
        scores = rec.get("scores")
        if scores and not self.labels:
            self.labels = tuple(scores)
        elif scores and set(scores) != set(self.labels):  # the same labels in any order
            raise InputError(
                f"{rec['source']}: labels {', '.join(scores)} differ from the "
                f"source's first ({', '.join(self.labels)}); summarize one model's "
                "results at a time"
            )
        self.sources.add(rec["source"])
        frame = rec.get("frame")
        self.frames.append(-1 if frame is None else int(frame))
        t = rec.get("time")
        self.times.append(math.nan if t is None else float(t))
        track = rec.get("track_id")
        box = rec.get("box")
        scored = rec.get("label") is not None
        face = scored or box is not None  # a face turned beyond max_yaw has a box, no label
        self.tracks.append(-2 if not face else -1 if track is None else int(track))
        self.label_index.append(self.labels.index(rec["label"]) if scored else -1)
        self.areas.append(float(box[2] * box[3]) if box else 0.0)
        if scored:
            self.scores.extend(float(scores[k]) for k in self.labels)
            self._add_units(rec.get("action_units"))
            self.scored += 1


def clip_summary(
    c: ClipRecords,
    fps,
    min_frames: int,
    events: tuple[Event, ...],
    baseline,
    calibrate: str | None = None,
    weights=None,
) -> ClipSummary:
    labels, k = c.labels, len(c.labels)
    frames = np.frombuffer(c.frames, np.int64)
    tracks = np.frombuffer(c.tracks, np.int64)
    which = np.frombuffer(c.label_index, np.int32)
    scores = np.frombuffer(c.scores, np.float32).reshape(-1, k) if k else np.zeros((0, 0))
    if frames[0] < 0:  # a set of photos
        faces = which[which >= 0]
        n = len(faces)
        return ClipSummary(
            c.source,
            "images",
            labels,
            frames=len(c.sources),
            duration=None,
            images=len(c.sources),
            faces=n,
            share={lab: float((faces == i).sum()) / n for i, lab in enumerate(labels)}
            if n
            else None,
        )
    times = np.frombuffer(c.times, np.float64)
    when = np.where(np.isnan(times), frames / fps if fps else np.nan, times)
    known = when[~np.isnan(when)]
    scored = np.flatnonzero(which >= 0)  # rows with a scored face, in order; scores follow them
    seen = tracks > -2
    done: set[int] = set()
    event = next((e for e in events if e.name == calibrate), None)
    if event is not None:
        scores, which, done = calibrated_scores(
            event, labels, tracks, scored, when, scores, which, weights
        )
    units = (c.unit_names, c.unit_rows()) if c.unit_names else None
    out = []
    for tid in sorted(set(tracks[seen].tolist())):
        mine = np.flatnonzero(tracks[scored] == tid)
        order = mine[np.argsort(frames[scored][mine], kind="stable")]
        present = np.flatnonzero(seen & (tracks == tid))  # scored or turned away
        if len(order):
            out.append(
                track_summary(
                    tid,
                    order,
                    scored,
                    frames,
                    when,
                    which,
                    scores,
                    labels,
                    min_frames,
                    present,
                    events,
                    baseline,
                    tid in done,
                    units,
                )
            )
    return ClipSummary(
        c.source,
        "video",
        labels,
        frames=len(set(frames.tolist())),
        duration=float(known.max() - known.min()) if len(known) else None,
        tracks=tuple(out),
        events=participant_events(
            events,
            baseline,
            labels,
            frames,
            when,
            seen,
            scored,
            scores,
            which,
            np.frombuffer(c.areas),
            units,
        ),
        calibrated=bool(done),
    )


def calibrated_scores(event: Event, labels, tracks, scored, when, scores, which, weights):
    """Every track's scores calibrated on its own scored frames within ``event`` (its
    reference: :func:`mobilefer.calibration.reference_of` of them), the top labels taken
    again; and the tracks that had such frames."""
    scores, which = scores.astype(np.float64), which.copy()
    mine_track, mine_when = tracks[scored], when[scored]
    done = set()
    for tid in sorted(set(mine_track.tolist())):
        mine = mine_track == tid
        rest = mine & (mine_when >= event.start) & (mine_when < event.end)
        if not rest.any():
            continue
        ref = reference_of(scores[rest], weights)
        cal = Calibration(labels, tuple(float(v) for v in ref), int(rest.sum()), "")
        scores[mine] = cal.apply(scores[mine])
        which[scored[mine]] = scores[mine].argmax(axis=1)
        done.add(tid)
    return scores, which, done


def participant_events(
    events, baseline, labels, frames, when, seen, scored, scores, which, areas, units=None
):
    """The participant's event summaries: per frame, the largest scored face (``units``:
    ``(names, rows)``, the scored faces' action units, or None)."""
    if not events:
        return ()
    if np.isnan(when).any():
        raise InputError("the records have no times and no frame rate: events cannot be placed")
    first = np.unique(frames, return_index=True)[1]  # one row per frame read
    faced = np.zeros(len(frames), bool)
    np.logical_or.at(faced, np.searchsorted(frames[first], frames), seen)
    # the largest scored face of each frame: sort by frame, then area (largest first)
    order = scored[np.lexsort((-areas[scored], frames[scored]))]
    keep = order[np.unique(frames[order], return_index=True)[1]]
    rows = np.searchsorted(scored, keep)  # their rows in ``scores``
    got = tuple(
        summarize_event(
            e,
            labels,
            when[first],
            frames[first],
            faced,
            scores[rows],
            which[keep],
            when[keep],
            frames[keep],
            None if units is None else (units[0], units[1][rows]),
        )
        for e in events
    )
    return with_change(got, baseline)


def track_summary(
    tid,
    order,
    scored,
    frames,
    when,
    which,
    scores,
    labels,
    min_frames,
    present,
    events=(),
    baseline=None,
    calibrated=False,
    units=None,
):
    """One track's summary: ``order`` indexes its scored faces (into ``scores``), by frame;
    ``present`` the rows it was seen in, scored or turned away; ``units``: ``(names, rows)``,
    every scored face's action units, or None."""
    rows = scored[order]
    p = scores[order].astype(np.float64)
    n = len(order)

    def t(row) -> float | None:
        v = when[row]
        return None if np.isnan(v) else float(v)

    idx = which[rows]
    share = {k: float((idx == i).sum()) / n for i, k in enumerate(labels)}
    mean = {k: float(p[:, i].sum()) / n for i, k in enumerate(labels)}
    peaks = {}
    for i, k in enumerate(labels):
        top = int(np.argmax(p[:, i]))  # the first of equal maxima
        peaks[k] = Peak(t(rows[top]), int(frames[rows[top]]), float(p[top, i]))
    vals = valence_of(p, labels).tolist()  # one value per frame
    mine = None if units is None else (units[0], units[1][order])
    per_event = ()
    if events and not np.isnan(when[present]).any():
        seen = np.ones(len(present), bool)
        per_event = with_change(
            tuple(
                summarize_event(
                    e,
                    labels,
                    when[present],
                    frames[present],
                    seen,
                    scores[order],
                    idx,
                    when[rows],
                    frames[rows],
                    mine,
                )
                for e in events
            ),
            baseline,
        )
    return TrackSummary(
        track_id=tid,
        first_time=t(rows[0]),
        last_time=t(rows[-1]),
        first_frame=int(frames[rows[0]]),
        last_frame=int(frames[rows[-1]]),
        frames=n,
        share=share,
        mean=mean,
        dominant=max(labels, key=lambda k: (share[k], mean[k])),
        peaks=peaks,
        valence=tuple((t(r), v) for r, v in zip(rows, vals, strict=True)),
        short=n < min_frames,
        turned=len(present) - n,
        events=per_event,
        calibrated=calibrated,
        action_units=None if mine is None else unit_means(*mine),
    )
