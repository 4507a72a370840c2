"""Moved to :mod:`mobilefer.study.plan` (a study's files); this path imports until 0.3."""

import warnings

from .study.plan import (
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

__all__ = [
    "Event",
    "MAX_EVENTS",
    "Member",
    "StudyPlan",
    "check_matches",
    "events_of",
    "matches",
    "member_of",
    "parse_events",
    "read_events",
    "read_participants",
]

warnings.warn(
    "mobilefer.events moved to mobilefer.study.plan; import from there",
    DeprecationWarning,
    stacklevel=2,
)
