"""A study's files: the stimulus's events and who is in each clip, read and checked once.

:func:`read_events` reads a CSV of ``name,start,end`` in seconds (optionally ``clip``, to give
one clip its own times: its row overrides the shared row of the same name);
:func:`read_participants` a CSV of ``clip,participant,group``; :class:`StudyPlan` holds both and
the baseline event's name. A clip named in either file is matched to a source by path, file
name or file name without its suffix (:func:`matches`). Every malformed row is one
:class:`InputError` naming the file and line; a pipe or device is never opened.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..image import printable

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
class StudyPlan:
    """What makes clips a study: the ``events``, the ``baseline`` event's name, the
    ``participants`` (``{clip: Member}``) and the event each face is calibrated on
    (``calibrate``); :meth:`from_files` reads them."""

    events: tuple[Event, ...] = ()
    baseline: str | None = None
    participants: dict | None = None
    calibrate: str | None = None

    @classmethod
    def from_files(
        cls,
        events=None,
        baseline: str | None = None,
        participants=None,
        calibrate: str | None = None,
    ) -> StudyPlan:
        """The plan of an events file, a baseline event's name, a participants file and the
        event to calibrate on (each may be ``None``; the others need events); checked."""
        if events is None and (baseline or participants or calibrate):
            raise InputError(
                "--baseline, --participants and --calibrate go with --events (the "
                "times of the stimulus's parts)"
            )
        got = read_events(events) if events is not None else ()
        people = read_participants(participants) if participants is not None else None
        return cls(got, baseline, people, calibrate).checked(printable(Path(events or "")))

    def offsets(self) -> dict[str, float]:
        """Each clip's offset (s), from the participants file; clips not named have none."""
        return {clip: m.offset for clip, m in (self.participants or {}).items() if m.offset}

    def unmatched(self, sources) -> list[str]:
        """The clips this plan names (an events row's ``clip``, a participant's) that are none of
        ``sources``: a typo, or a clip left out of the run."""
        named = {e.clip for e in self.events if e.clip} | set(self.participants or ())
        return sorted(n for n in named if not any(matches(n, s) for s in sources))

    def check_sources(self, sources) -> None:
        """Refuse (:class:`InputError`) a participant or an events row's clip that matches
        several of ``sources``, and a source that several participants match
        (:func:`check_matches`)."""
        check_matches(self.participants or (), sources)
        check_matches({e.clip for e in self.events if e.clip}, sources, "--events")

    def checked(self, where: str = "the events") -> StudyPlan:
        """This plan, its baseline and calibration event checked to be among its events."""
        names = ", ".join(dict.fromkeys(e.name for e in self.events))
        for flag, name in (("--baseline", self.baseline), ("--calibrate", self.calibrate)):
            if name is not None and name not in {e.name for e in self.events}:
                raise InputError(f"{flag} {name!r} is not an event of {where}; choose from {names}")
        return self


def _table(path: str | Path, what: str, required: tuple[str, ...]) -> list[tuple[int, dict]]:
    """The rows of a small CSV file with these columns, each with its line number."""
    p = Path(path)
    try:
        if not p.is_file():  # a pipe or device is never opened: it could block or never end
            why = "not a regular file" if p.exists() else f"no such {what} file"
            raise InputError(
                f"{printable(p)}: {why}; pass a CSV file with columns {','.join(required)}"
            )
        if p.stat().st_size > MAX_TABLE_BYTES:
            raise InputError(
                f"{printable(p)}: over {MAX_TABLE_BYTES >> 20} MB; a {what} file is a small CSV"
            )
        text = p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{printable(p)}: not UTF-8 text; save the {what} file as CSV") from None
    except OSError as e:
        raise InputError(
            f"{printable(p)}: cannot read the {what} file ({e.strerror or e})"
        ) from None
    return _rows(text, printable(p), what, required)


def _rows(text: str, name: str, what: str, required) -> list[tuple[int, dict]]:
    try:
        reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
        columns = [c.strip().lower() for c in reader.fieldnames or []]
        twice = sorted({c for c in columns if c and columns.count(c) > 1})
        if twice:
            raise InputError(f"{name}:1: column {', '.join(twice)} is given twice; keep one")
        missing = [c for c in required if c not in columns]
        if missing:
            raise InputError(
                f"{name}:1: the {what} file needs columns {','.join(required)} "
                f"(no {', '.join(missing)})"
            )
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
    return parse_events(_table(path, "events", EVENT_COLUMNS), printable(Path(path)))


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
        event = row["name"]
        if not event:
            raise InputError(f"{where}: an event needs a name")
        try:
            start, end = float(row["start"]), float(row["end"])
        except ValueError:
            raise InputError(
                f"{where}: start {row['start']!r} and end {row['end']!r} must be seconds, e.g. 12.5"
            ) from None
        if not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end):
            raise InputError(
                f"{where}: {event}: needs 0 <= start < end (seconds), got {start:g}-{end:g}"
            )
        clip = row.get("clip") or None
        if (event, clip) in seen:
            raise InputError(f"{where}: {event} is given twice" + (f" for {clip}" if clip else ""))
        seen.add((event, clip))
        out.append(Event(event, start, end, clip))
        if len(out) > MAX_EVENTS:
            raise InputError(
                f"{where}: over {MAX_EVENTS} events; a study's events are the parts of its stimulus"
            )
    if not out:
        raise InputError(f"{name}: no events (rows of name,start,end)")
    return tuple(out)


@dataclass(frozen=True)
class Member:
    """Who is in one clip: the ``participant``, their ``group`` (or ``None``) and the clip's
    ``offset``: seconds from the clip's start to the stimulus's, added to the times of the
    events shared by every clip (a clip's own rows in the events file are taken as given)."""

    participant: str
    group: str | None = None
    offset: float = 0.0


def read_participants(path: str | Path) -> dict[str, Member]:
    """``{clip: Member}`` from a CSV file with columns ``clip,participant`` and optionally
    ``group`` and ``offset`` (seconds). A participant has one clip (join a session's files)."""
    out: dict[str, Member] = {}
    clips: dict[str, str] = {}
    for line, row in _table(path, "participants", ("clip", "participant")):
        where = f"{printable(Path(path))}:{line}"
        clip, who = row["clip"], row["participant"]
        if not clip or not who:
            raise InputError(f"{where}: a row needs a clip and a participant")
        if clip in out:
            raise InputError(f"{where}: clip {clip} is given twice")
        if who in clips:
            raise InputError(
                f"{where}: participant {who} has two clips ({clips[who]}, {clip}); "
                "join them into one clip or name them apart"
            )
        try:
            offset = float(row.get("offset") or 0)
        except ValueError:
            offset = math.nan
        if not math.isfinite(offset):
            raise InputError(f"{where}: offset {row.get('offset')!r} must be seconds, e.g. 2.5")
        clips[who] = clip
        out[clip] = Member(who, row.get("group") or None, offset)
    return out


def member_of(participants: dict | None, source: str) -> Member | None:
    """The :class:`Member` whose clip is ``source`` (:func:`matches`), if any."""
    return next((m for k, m in (participants or {}).items() if matches(k, source)), None)


def matches(name: str, source: str) -> bool:
    """Whether a clip named in an events or participants file is ``source``: the same path
    (as written, or the same file once resolved); a bare file name (no folder) also matches
    by file name or by file name without its suffix. Names that match several sources are
    refused by :func:`check_matches`."""
    src, named = Path(source), Path(name)
    if name == source or named == src:
        return True
    if len(named.parts) > 1:  # a path names one file, never another folder's namesake
        return os.path.exists(name) and os.path.realpath(name) == os.path.realpath(source)
    return name in (src.name, src.stem)


def check_matches(names, sources, what: str = "--participants") -> None:
    """Refuse what is ambiguous (:class:`InputError`): a name that matches two sources (two
    folders' ``p01.mp4``), or a source that two names match (rows ``p01.mp4`` and ``p01``)."""
    names, sources = list(dict.fromkeys(names)), list(dict.fromkeys(sources))
    for name in names:
        hits = [s for s in sources if matches(name, s)]
        if len(hits) > 1:
            raise InputError(
                f"{what}: {printable(name)} names {len(hits)} clips ("
                f"{', '.join(printable(h) for h in hits[:3])}); name each by its "
                "path"
            )
    for source in sources:
        rows = [n for n in names if matches(n, source)]
        if len(rows) > 1:
            raise InputError(
                f"{what}: {printable(source)} is named by {len(rows)} rows "
                f"({', '.join(printable(r) for r in rows)}); keep one"
            )


def events_of(events, source: str, offset: float = 0.0) -> tuple[Event, ...]:
    """The events of one clip, by start: its own rows, and the shared rows of the events it has
    no row of its own for, shifted by the clip's ``offset`` (s)."""
    own = [e for e in events if e.clip is not None and matches(e.clip, source)]
    names = {e.name for e in own}
    shared = [
        Event(e.name, e.start + offset, e.end + offset)
        for e in events
        if e.clip is None and e.name not in names
    ]
    return tuple(sorted(own + shared, key=lambda e: (e.start, e.end)))
