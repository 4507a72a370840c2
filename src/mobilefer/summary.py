"""From frames to findings: what each tracked face showed over a clip, as frozen summaries.

:func:`summarize` takes the results of :meth:`mobilefer.Recognizer.stream` or the records of
``mobilefer predict`` read back (:func:`read_records`: JSON Lines or CSV) and gives one
:class:`ClipSummary` per source: for a video or webcam, one :class:`TrackSummary` per tracked
face; for photos (a folder, a glob), one summary per folder of images with the share of faces
in each expression.

Conventions: times are seconds from the start of the clip (frame index / frames per second
where the source gave no time); shares and mean probabilities map each label of the model to
a number, shares summing to 1. Valence follows the method FaceReader documents, derived from
the expression probabilities: happy minus the strongest of the negative ones (sad, angry, fear,
disgust); surprise counts as neither. It is not a trained valence regressor.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: Tracks seen in fewer frames than this are kept but marked ``short`` (a detector's false
#: alarm, or a face passing through): 1 s at 10 frames/s.
MIN_TRACK_FRAMES = 10
#: The labels whose strongest probability is subtracted from happy's for valence.
NEGATIVE = ("sad", "angry", "fear", "disgust")


@dataclass(frozen=True)
class Peak:
    """The moment one expression was most probable for a track."""

    time: float | None
    frame: int
    probability: float


@dataclass(frozen=True)
class TrackSummary:
    """One tracked face of a clip.

    ``first_time``/``last_time`` (s) and ``first_frame``/``last_frame`` bound where it was
    seen; ``frames`` counts the frames it was seen in; ``share`` is the fraction of those
    frames in which each label was the (smoothed) top label; ``mean`` the mean probability of
    each label; ``dominant`` the label with the largest share; ``peaks`` the moment of each
    label's highest probability; ``valence`` ``(time, value)`` pairs, one per frame, in -1..1
    (see the module docstring); ``short``: seen in fewer than :data:`MIN_TRACK_FRAMES` frames.
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


@dataclass(frozen=True)
class ClipSummary:
    """One source: a video or webcam (``kind`` ``"video"``, with ``tracks``), or a set of
    photos (``kind`` ``"images"``: ``source`` is their folder; ``images`` read, ``faces``
    found and ``share`` of faces per top label). ``frames`` counts the frames read, ``labels``
    names the model's classes in order."""

    source: str
    kind: str
    labels: tuple[str, ...]
    frames: int
    duration: float | None
    tracks: tuple[TrackSummary, ...] = ()
    images: int = 0
    faces: int = 0
    share: dict[str, float] | None = None


def valence(scores: dict[str, float]) -> float:
    """Happy minus the strongest negative expression (module docstring), in -1..1."""
    return scores.get("happy", 0.0) - max((scores.get(k, 0.0) for k in NEGATIVE), default=0.0)


def summarize(results: Iterable, min_frames: int = MIN_TRACK_FRAMES) -> list[ClipSummary]:
    """One :class:`ClipSummary` per source, in the order sources first appear.

    ``results``: :class:`mobilefer.stream.Result` objects, or record dicts (``predict``'s
    output, read back with :func:`read_records`); results with an error are left out.
    """
    records: list[dict] = []
    fps: dict[str, float] = {}
    for r in results:
        if isinstance(r, dict):
            records.append(r)
            continue
        if r.error or r.kind == "skipped":
            continue
        if r.fps:
            fps[r.source] = r.fps
        records += r.records()
    clips: dict[str, list[dict]] = {}
    for rec in records:
        key = rec["source"] if rec.get("frame") is not None else f"{Path(rec['source']).parent}/"
        clips.setdefault(key, []).append(rec)
    return [_clip(key, recs, fps.get(key), min_frames) for key, recs in clips.items()]


def _labels(recs: list[dict]) -> tuple[str, ...]:
    return next((tuple(r["scores"]) for r in recs if r.get("scores")), ())


def _clip(source: str, recs: list[dict], fps: float | None, min_frames: int) -> ClipSummary:
    labels = _labels(recs)
    if recs[0].get("frame") is None:  # a set of photos
        faces = [r for r in recs if r.get("label")]
        counts = {k: sum(r["label"] == k for r in faces) for k in labels}
        return ClipSummary(
            source, "images", labels, frames=len({r["source"] for r in recs}), duration=None,
            images=len({r["source"] for r in recs}), faces=len(faces),
            share={k: v / len(faces) for k, v in counts.items()} if faces else None,
        )  # fmt: skip

    def when(r: dict) -> float | None:
        if r.get("time") is not None:
            return float(r["time"])
        return r["frame"] / fps if fps else None

    frames = sorted({r["frame"] for r in recs})
    times = [t for t in (when(r) for r in recs) if t is not None]
    by_track: dict[int, list[dict]] = {}
    for r in recs:
        if r.get("label") is not None:
            by_track.setdefault(-1 if r.get("track_id") is None else r["track_id"], []).append(r)
    tracks = tuple(
        _track(tid, sorted(rs, key=lambda r: r["frame"]), labels, when, min_frames)
        for tid, rs in sorted(by_track.items())
    )
    return ClipSummary(source, "video", labels, frames=len(frames),
                       duration=max(times) - min(times) if times else None,
                       tracks=tracks)  # fmt: skip


def _track(tid, recs, labels, when, min_frames) -> TrackSummary:
    n = len(recs)
    share = {k: sum(r["label"] == k for r in recs) / n for k in labels}
    mean = {k: sum(r["scores"][k] for r in recs) / n for k in labels}
    peaks = {}
    for k in labels:
        top = max(recs, key=lambda r: r["scores"][k])  # the first of equal maxima
        peaks[k] = Peak(when(top), top["frame"], top["scores"][k])
    return TrackSummary(
        track_id=tid, first_time=when(recs[0]), last_time=when(recs[-1]),
        first_frame=recs[0]["frame"], last_frame=recs[-1]["frame"], frames=n, share=share,
        mean=mean, dominant=max(labels, key=lambda k: (share[k], mean[k])), peaks=peaks,
        valence=tuple((when(r), valence(r["scores"])) for r in recs), short=n < min_frames,
    )  # fmt: skip
