"""Moved to :mod:`mobilefer.study.view` (the page's study part); this path imports until 0.3."""

import warnings

from .study.view import clock, event_table, study_section

__all__ = ["clock", "event_table", "study_section"]

warnings.warn(
    "mobilefer.study_view moved to mobilefer.study.view; import from there",
    DeprecationWarning,
    stacklevel=2,
)
