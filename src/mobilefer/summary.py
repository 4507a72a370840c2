"""Moved to :mod:`mobilefer.study.summarizer` and :mod:`mobilefer.study.summary`; this path
imports until 0.3."""

import warnings

from .study.summarizer import Summarizer, summarize
from .study.summary import MIN_TRACK_FRAMES, ClipSummary, TrackSummary, valence

__all__ = ["MIN_TRACK_FRAMES", "ClipSummary", "Summarizer", "TrackSummary", "summarize", "valence"]

warnings.warn(
    "mobilefer.summary moved to mobilefer.study; import from there",
    DeprecationWarning,
    stacklevel=2,
)
