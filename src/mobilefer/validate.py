"""Checks of option values that the library makes once, for the API and every front end (the
CLI maps the :class:`OptionError` they raise to exit code 2)."""

from __future__ import annotations

import math

import numpy as np

from .errors import OptionError


def is_whole(value) -> bool:
    """Whether ``value`` is an int (not a bool)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_number(name: str, value, lo: float, hi: float) -> None:
    """Raise :class:`OptionError` unless ``value`` is None or a finite number in ``lo``-``hi``."""
    if value is None:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and lo <= value <= hi):
        raise OptionError(f"{name}={value!r}: expected a number from {lo} to {hi}")
