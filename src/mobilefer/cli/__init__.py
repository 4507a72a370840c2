"""The ``mobilefer`` command: predict | report | webcam | serve | evaluate | train | export.

Results go to stdout (JSON Lines or CSV); progress, warnings and errors go to stderr. Every
expected failure is one line naming the input, never a traceback; the exit code is 1 when any
input failed and 2 for a usage or set-up error.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from urllib.error import URLError

import cv2

from ..errors import MobileferError
from ..image import printable
from .common import err
from .parser import build_parser

__all__ = ["build_parser", "main"]


#: Native libraries' own logs, silenced unless the user set them: one error is then one line,
#: ours. (OpenCV's own log; ffmpeg's, through OpenCV: "-8" is AV_LOG_QUIET.)
NATIVE_LOG_LEVELS = {"OPENCV_LOG_LEVEL": "SILENT", "OPENCV_FFMPEG_LOGLEVEL": "-8"}


def quiet_native_logs() -> None:
    for key, value in NATIVE_LOG_LEVELS.items():
        os.environ.setdefault(key, value)
    if "cv2" in sys.modules and os.environ["OPENCV_LOG_LEVEL"] == "SILENT":
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


class LogLine(logging.Formatter):
    """The library's log records as the CLI's own lines: ``mobilefer: warning: ...`` (no level
    for info; debug lines, with -v, name their module)."""

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        where = f"{record.name}: " if record.levelno < logging.INFO else ""
        return printable(f"mobilefer: {level}{where}{record.getMessage()}")


def main(argv: list[str] | None = None) -> int:
    quiet_native_logs()
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogLine())
    if not args.verbose:  # other libraries' info lines (ONNX Runtime's quantizer) are not ours
        handler.addFilter(lambda r: r.name.startswith("mobilefer") or r.levelno >= logging.WARNING)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    try:
        code = args.func(args)
        sys.stdout.flush()
        return code
    except MobileferError as e:
        err(str(e))
        return 2
    except KeyboardInterrupt:
        err("interrupted")
        return 130
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, as cat does, and keep Python from
        # complaining again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as e:
        if isinstance(e, URLError):  # a download (torch hub's ImageNet weights, say)
            err(
                f"cannot download ({e.reason}); without a network, pass the local file "
                "(--backbone-weights for training, --yunet for the detector)"
            )
            return 2
        if e.errno == errno.ENOSPC or getattr(e, "filename", None) is None:
            err(f"cannot write the results: {e.strerror or e}")
            return 1
        err(printable(f"{e.filename}: {e.strerror or e}"))  # a file the command could not use
        return 1


if __name__ == "__main__":
    sys.exit(main())
