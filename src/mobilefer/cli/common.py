"""What every command shares: one-line messages on stderr, the progress line, the options
record turned into flags and back, and the argument parser's conventions."""

from __future__ import annotations

import argparse
import math
import sys
import time

from tqdm import tqdm

from ..errors import OptionError


def err(msg: str) -> None:
    print(f"mobilefer: {msg}", file=sys.stderr, flush=True)


def missing_extra(what: str, extra: str, error: ImportError) -> int:
    """Say which optional extra ``what`` needs and how to install it; the exit status."""
    err(
        f"{what} needs the [{extra}] extra ({error.name} is missing): pip install "
        f"'mobilefer[{extra}]' (from a checkout: pip install -e '.[{extra}]')"
    )
    return 2


class Progress:
    """A tqdm bar on stderr (on a terminal; a summary line either way) that also knows its rate
    for the frames/s drawn on video."""

    def __init__(self, name: str, unit: str):
        self.name, self.unit = name, unit
        self.t0 = time.perf_counter()
        self.n = 0
        self._bar = tqdm(
            desc=name,
            unit=f" {unit}",
            file=sys.stderr,
            leave=False,
            disable=not sys.stderr.isatty(),
            dynamic_ncols=True,
        )

    @property
    def rate(self) -> float:
        return self.n / max(time.perf_counter() - self.t0, 1e-9)

    def update(self, n: int = 1) -> None:
        self.n += n
        self._bar.update(n)

    def close(self, summary: bool = True) -> None:
        """End the bar, with a summary line (count, seconds and rate) unless told not to."""
        self._bar.close()
        if not summary:
            return
        secs = time.perf_counter() - self.t0
        print(
            f"{self.name}: {self.n} {self.unit} in {secs:.1f} s, {self.rate:.1f} {self.unit}/s",
            file=sys.stderr,
            flush=True,
        )


#: --flip-tta's words -> Options(flip_tta=).
SWITCH = {"auto": None, "on": True, "off": False}


def options_of(args: argparse.Namespace):
    """The command's :class:`mobilefer.options.Options` from its flags, checked (exit 2 with one
    line naming the option otherwise). Every front end takes them from here."""
    from ..options import SPECS, Options

    given = {k: getattr(args, k) for k in SPECS if hasattr(args, k)}
    given = {k: SWITCH[v] if SPECS[k].kind == "switch" else v for k, v in given.items()}
    return Options(**given).check()


def recognizer_of(options):
    """The command's Recognizer, of its one checked :class:`mobilefer.options.Options`."""
    from ..recognizer import Recognizer

    return Recognizer.from_options(options)


def float_in(text: str, lo: float, hi: float, name: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not lo <= v <= hi:
        raise OptionError(f"{name} {text}: expected a number from {lo} to {hi}, or auto")
    return v


def number(kind, lo=None, hi=None, hi_open=False, what=""):
    """An argparse type: a finite ``kind`` (int or float) within [lo, hi] (or [lo, hi))."""

    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if isinstance(v, float) and not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{text!r}: must be a finite number")
        if (lo is not None and v < lo) or (hi is not None and (v >= hi if hi_open else v > hi)):
            raise argparse.ArgumentTypeError(f"{text}: {what}")
        return v

    parse.__name__ = kind.__name__
    return parse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default unless its help already says it or it has none (None, an
    off switch, an empty list)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (
            action.default is None
            or action.default is False
            or action.default == []
            or "default" in text
        ):
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse, with one line per error (no usage block) and defaults shown in --help."""

    def __init__(self, *a, **kw):
        kw.setdefault("formatter_class", HelpFormatter)
        super().__init__(*a, **kw)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_inference_options(
    p: argparse.ArgumentParser, scopes=("model", "detector", "stream"), output: bool = True
) -> None:
    """The flags of every option of :class:`mobilefer.options.Options` in ``scopes``, built
    from the record (its defaults, choices and help; its ranges are checked by ``options_of``),
    and ``--format`` for commands that print records."""
    from ..options import DEFAULTS, SPECS

    for name, spec in SPECS.items():
        if spec.scope not in scopes:
            continue
        flag = "--" + name.replace("_", "-")
        default = DEFAULTS[name]
        if spec.kind == "switch":
            p.add_argument(flag, choices=list(SWITCH), default="auto", help=spec.help)
        elif spec.kind == "flag":
            p.add_argument(flag, action="store_true", help=spec.help)
        elif spec.kind == "choice":
            p.add_argument(flag, choices=spec.choices, default=default, help=spec.help)
        else:
            kind = {"int": integer, "float": real}.get(spec.kind, str)
            shown_default = "" if default is None else f" (default: {default:,})"
            p.add_argument(
                flag,
                type=kind,
                default=default,
                help=spec.help + ("" if "default" in spec.help else shown_default),
            )
    if output:
        p.add_argument(
            "--format",
            choices=["jsonl", "csv"],
            help="stdout format: JSON Lines or CSV, one record per face (default: jsonl)",
        )


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def real(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
