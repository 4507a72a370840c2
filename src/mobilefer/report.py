"""Moved to :mod:`mobilefer.study.report` (the report page); this path imports until 0.3."""

import warnings

from .study.report import (
    MAX_DRAWN_TRACKS,
    MAX_THUMBNAIL_TRACKS,
    Collector,
    render_report,
    track_csv,
    write_report,
)

__all__ = [
    "Collector",
    "MAX_DRAWN_TRACKS",
    "MAX_THUMBNAIL_TRACKS",
    "render_report",
    "track_csv",
    "write_report",
]

warnings.warn(
    "mobilefer.report moved to mobilefer.study.report; import from there",
    DeprecationWarning,
    stacklevel=2,
)
