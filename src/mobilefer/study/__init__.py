"""Studies: clips over time, events of a stimulus, participants compared, and the report page.

- :mod:`.plan`: a study's files (events, participants) read and checked; :class:`StudyPlan`.
- :mod:`.summarizer` and :mod:`.summary`: results or records fed one at a time into compact
  arrays, and the frozen :class:`ClipSummary` / :class:`TrackSummary` made of them.
- :mod:`.tables`: per-event summaries and the study table across participants (:func:`compare`).
- :mod:`.report`, :mod:`.charts`, :mod:`.view`: ``mobilefer report``'s page (plotly, the
  ``[report]`` extra, imported where a chart is drawn).

The former modules ``mobilefer.events``, ``mobilefer.summary``, ``mobilefer.report`` and
``mobilefer.study_view`` still import, with a DeprecationWarning, until 0.3.
"""

from __future__ import annotations

from .plan import (
    MAX_EVENTS,
    Event,
    Member,
    StudyPlan,
    check_matches,
    events_of,
    matches,
    member_of,
    parse_events,
    read_events,
    read_participants,
)
from .summarizer import Summarizer, summarize
from .summary import MIN_TRACK_FRAMES, ClipSummary, TrackSummary, valence
from .tables import (
    EventSummary,
    Interval,
    Participant,
    Peak,
    Study,
    StudyRow,
    compare,
    interval,
    summarize_event,
    t975,
    valence_of,
    with_change,
)

__all__ = [
    "MAX_EVENTS",
    "MIN_TRACK_FRAMES",
    "ClipSummary",
    "Event",
    "EventSummary",
    "Interval",
    "Member",
    "Participant",
    "Peak",
    "Study",
    "StudyPlan",
    "StudyRow",
    "Summarizer",
    "TrackSummary",
    "check_matches",
    "compare",
    "events_of",
    "interval",
    "matches",
    "member_of",
    "parse_events",
    "read_events",
    "read_participants",
    "summarize",
    "summarize_event",
    "t975",
    "valence",
    "valence_of",
    "with_change",
]
