"""Summaries fed one result or record at a time (:class:`Summarizer`, :func:`summarize`): each
source's records kept in compact arrays (:class:`ClipRecords`), turned into
:class:`mobilefer.study.summary.ClipSummary` objects when asked."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..records import check_record
from ..results import Result
from .plan import Event, events_of, matches
from .summary import MIN_TRACK_FRAMES, ClipRecords, ClipSummary, clip_summary


class Summarizer:
    """Summaries fed one result (or record) at a time: each source's records are kept in the
    compact arrays of :class:`ClipSummary`'s making (about 70 bytes a face), never the results
    themselves, so a report of hours of video stays small. :func:`summarize` is one pass of
    it; :meth:`summaries` may be asked at any point."""

    def __init__(self) -> None:
        self._clips: dict[str, ClipRecords] = {}
        self._fps: dict[str, float] = {}
        self.count = 0  # results and records taken
        self.sources: dict[str, bool] = {}  # every source read: whether it is a video

    def add(self, r) -> None:
        """Take one :class:`mobilefer.stream.Result` or record dict (checked as
        :func:`mobilefer.records.iter_records` checks a file's: :class:`InputError` if it is
        not a record); results with an error, and skipped files, are left out."""
        if isinstance(r, dict):
            self._add(check_record(r))
            return
        if not isinstance(r, Result):
            raise InputError(
                f"{type(r).__name__} {str(r)[:40]!r}: not a result or record; pass "
                "Recognizer.stream's results or read_records' records"
            )
        if r.error or r.kind == "skipped":
            return
        if r.fps:
            self._fps[r.source] = r.fps
        for rec in r.records():
            self._add(rec)

    def _add(self, rec: dict) -> None:
        self.count += 1
        video = rec.get("frame") is not None
        self.sources[rec["source"]] = video
        key = rec["source"] if video else f"{Path(rec['source']).parent}/"
        self._clips.setdefault(key, ClipRecords(key)).add(rec)

    def summaries(
        self,
        min_frames: int = MIN_TRACK_FRAMES,
        events: Iterable[Event] | None = None,
        baseline: str | None = None,
        offsets: dict[str, float] | None = None,
        calibrate: str | None = None,
        prior_weights=None,
    ) -> list[ClipSummary]:
        """One :class:`ClipSummary` per source so far (see :func:`summarize`). ``calibrate``
        names an event: each tracked face is calibrated on its own frames of it
        (:mod:`mobilefer.calibration`; ``prior_weights``: the model's class weights, to keep
        its prior correction whole) before anything is summed; :class:`InputError` if no face
        has frames in it."""
        events = tuple(events or ())
        check_named(events, baseline, calibrate)

        def shift(key: str) -> float:
            return next((v for k, v in (offsets or {}).items() if matches(k, key)), 0.0)

        out = [
            clip_summary(
                c,
                self._fps.get(key),
                min_frames,
                events_of(events, key, shift(key)),
                baseline,
                calibrate,
                prior_weights,
            )
            for key, c in self._clips.items()
        ]
        if calibrate is not None and out and not any(c.calibrated for c in out):
            raise InputError(
                f"--calibrate {calibrate}: no face was seen in that event; choose "
                "an event in which the participants are in view at rest"
            )
        return out

    def series(self, source: str, track_id: int) -> tuple[np.ndarray, np.ndarray]:
        """A video track's times (s) and probabilities (frames x labels), by frame, over the
        frames it was scored in (empty arrays for anything else)."""
        c = self._clips.get(source)
        if c is None or not c.labels:
            return np.zeros(0), np.zeros((0, 0))
        frames = np.frombuffer(c.frames, np.int64)
        scored, mine = c.track_rows(track_id)
        scores = np.frombuffer(c.scores, np.float32).reshape(-1, len(c.labels))[mine]
        times = np.frombuffer(c.times, np.float64)[scored][mine]
        fps = self._fps.get(source)
        when = np.where(np.isnan(times), frames[scored][mine] / fps if fps else np.nan, times)
        return when, scores

    def unit_series(self, source: str, track_id: int) -> tuple[tuple[str, ...], np.ndarray]:
        """A video track's action units by frame, as :meth:`series` gives its probabilities:
        ``(unit names, frames x units)`` (NaN where a frame had none; ``((), empty)`` without
        the face mesh)."""
        c = self._clips.get(source)
        units = None if c is None else c.unit_rows()
        if units is None:
            return (), np.zeros((0, 0), np.float32)
        _, mine = c.track_rows(track_id)
        return c.unit_names, units[mine]


def summarize(
    results: Iterable,
    min_frames: int = MIN_TRACK_FRAMES,
    events: Iterable[Event] | None = None,
    baseline: str | None = None,
    offsets: dict[str, float] | None = None,
    calibrate: str | None = None,
) -> list[ClipSummary]:
    """One :class:`ClipSummary` per source, in the order sources first appear.

    ``results``: :class:`mobilefer.stream.Result` objects, or record dicts (``predict``'s
    output, read back with :func:`read_records` or :func:`mobilefer.records.iter_records`:
    both read a record at a time); results with an error are left out. Records are taken one
    at a time and kept compact (:class:`Summarizer`), so a long clip's summary stays small.
    ``events`` (:func:`mobilefer.events.read_events`): each video's summary, and each of its
    tracks', gets one :class:`mobilefer.study.EventSummary` per event; ``baseline`` names the
    event each is compared with (``change``); ``offsets`` (``{clip: seconds}``, clips named as
    in the events file) shift the shared events of clips whose stimulus began later;
    ``calibrate`` names the event (a baseline at rest) each tracked face is calibrated on
    (:meth:`Summarizer.summaries`). :func:`mobilefer.compare` makes the study table of them.
    """
    events = tuple(events or ())
    check_named(events, baseline, calibrate)  # before the work, not after it
    if isinstance(results, (str, bytes)):
        raise InputError("summarize takes results or records, not a path: pass read_records(path)")
    summarizer = Summarizer()
    for r in results:
        summarizer.add(r)
    return summarizer.summaries(min_frames, events, baseline, offsets, calibrate)


def check_named(events, baseline: str | None, calibrate: str | None) -> None:
    """:class:`InputError` unless ``baseline`` and ``calibrate`` (each may be None) name events
    of ``events``; the error lists the events there are."""
    names = {e.name for e in events}
    for what, name in (("baseline", baseline), ("--calibrate", calibrate)):
        if name is not None and name not in names:
            raise InputError(
                f"{what} {name!r} is not an event; choose from "
                f"{', '.join(sorted(names)) or 'none given'}"
            )
