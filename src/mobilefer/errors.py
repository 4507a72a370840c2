"""Typed errors. Each message names the input at fault and says what to do."""

from __future__ import annotations


class MobileferError(Exception):
    """Base class of every error that mobilefer raises on purpose."""


class InputError(MobileferError, ValueError):
    """An image, video, folder or webcam that cannot be read. ``status``: the HTTP status a
    server answers it with (400; :class:`LimitError` 413)."""

    status = 400


class LimitError(InputError):
    """An input over one of the limits (pixels, bytes, seconds, frames): it may be fine, only
    too large for this run or server."""

    status = 413


class ModelError(MobileferError):
    """A model file that is missing or is not a mobilefer model."""


class DataError(MobileferError, ValueError):
    """A FER2013 file or folder with the wrong layout, pixel count or labels."""


class WeightsError(MobileferError):
    """A weights file (YuNet, ImageNet backbone) that cannot be found, fetched or verified."""


class OptionError(MobileferError, ValueError):
    """A setting with a value outside its choices (detector, recipe, split, ...)."""


class MissingExtraError(MobileferError, ImportError):
    """A feature whose optional extra is not installed; the message says what to install."""

    def __init__(self, what: str, extra: str, missing: str | None = None):
        self.extra = extra
        super().__init__(
            f"{what} needs the [{extra}] extra"
            + (f" ({missing} is missing)" if missing else "")
            + f": pip install 'mobilefer[{extra}]'"
        )
