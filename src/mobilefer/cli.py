"""The ``mobilefer`` command: predict | report | webcam | serve | evaluate | train | export.

Results go to stdout (JSON Lines or CSV); progress, warnings and errors go to stderr. Every
expected failure is one line naming the input, never a traceback; the exit code is 1 when any
input failed and 2 for a usage or set-up error.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import math
import os
import socket
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from urllib.error import URLError

import cv2
from tqdm import tqdm

from .errors import InputError, MobileferError, OptionError
from .image import shown
from .preprocess import MARGIN_RANGE, ZOOM_RANGE


def _err(msg: str) -> None:
    print(f"mobilefer: {msg}", file=sys.stderr, flush=True)


def _missing_extra(what: str, extra: str, error: ImportError) -> int:
    """Say which optional extra ``what`` needs and how to install it; the exit status."""
    _err(f"{what} needs the [{extra}] extra ({error.name} is missing): from a checkout of "
         f"mobilefer, pip install -e '.[{extra}]'")  # fmt: skip
    return 2


class Progress:
    """A tqdm bar on stderr (on a terminal; a summary line either way) that also knows its rate
    for the frames/s drawn on video."""

    def __init__(self, name: str, unit: str):
        self.name, self.unit = name, unit
        self.t0 = time.perf_counter()
        self.n = 0
        self._bar = tqdm(desc=name, unit=f" {unit}", file=sys.stderr, leave=False,
                         disable=not sys.stderr.isatty(), dynamic_ncols=True)  # fmt: skip

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
        print(f"{self.name}: {self.n} {self.unit} in {secs:.1f} s, {self.rate:.1f} {self.unit}/s",
              file=sys.stderr, flush=True)  # fmt: skip


#: --flip-tta's words -> Options(flip_tta=).
SWITCH = {"auto": None, "on": True, "off": False}


def _options(args: argparse.Namespace):
    """The command's :class:`mobilefer.options.Options` from its flags, checked (exit 2 with one
    line naming the option otherwise). Every front end takes them from here."""
    from .options import SPECS, Options

    given = {k: getattr(args, k) for k in SPECS if hasattr(args, k)}
    given = {k: SWITCH[v] if SPECS[k].kind == "switch" else v for k, v in given.items()}
    return Options(**given).check()


def _recognizer(args: argparse.Namespace):
    from .recognizer import Recognizer

    return Recognizer.from_options(_options(args))


# ----------------------------------------------------------------------------- predict
def cmd_predict(args: argparse.Namespace) -> int:
    if args.engine == "ray":
        return _predict_ray(args)
    if args.out or args.address:
        _err("--out and --address go with --engine ray; without it, records go to stdout")
        return 2
    from .sinks import AnnotatedSaver, RecordWriter
    from .sources import SKIPPED

    saver = AnnotatedSaver(args.save) if args.save else None
    rec = _recognizer(args)
    out = RecordWriter(args.format or "jsonl", rec.labels, sys.stdout)
    failed, skipped, links = 0, {}, []
    progress = Progress("images", "images")
    frames: Progress | None = None
    try:
        for result in rec.stream(args.source, **_options(args).stream_options()):
            if result.kind == "skipped" and result.reason == SKIPPED["link"]:
                links.append(shown(result.source))
                continue
            if result.kind == "skipped":
                suffix = Path(result.source).suffix.lower() or "(none)"
                skipped[suffix] = skipped.get(suffix, 0) + 1
                continue
            if result.error:
                _err(shown(result.error))
                failed += 1
                continue
            out.write(result.records())
            if result.reason:
                _err(f"{shown(result.source)}: {result.reason}")
            if result.frame is None:
                progress.update()
            else:
                if frames is None or frames.name != shown(result.source):
                    if frames is not None:
                        frames.close()
                    frames = Progress(shown(result.source), "frames")
                frames.update()
            if saver:
                try:
                    rate = frames.rate if frames and result.frame is not None else None
                    note = saver.add(result, rate)
                    if note:
                        _err(note)
                except InputError as e:
                    _err(shown(str(e)))
                    failed += 1
    finally:
        if frames is not None:
            frames.close()
        if saver:
            try:
                saver.close()
            except InputError as e:
                _err(shown(str(e)))
                failed += 1
    progress.close(summary=progress.n > 1)
    if skipped:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(skipped.items()))
        _err(f"skipped {sum(skipped.values())} file(s) that are not images or videos ({kinds})")
    if links:
        more = f" and {len(links) - 5} more" if len(links) > 5 else ""
        shown_links = ", ".join(links[:5]) + more
        _err(f"skipped {len(links)} linked folder(s), not followed: {shown_links} "
             "(name a linked folder itself to read it)")  # fmt: skip
    if saver:
        _err(f"annotated {saver.folder.written} file(s) under {shown(saver.folder.folder)}")
    if failed:
        _err(f"{failed} input(s) failed")
    return 1 if failed else 0


def _predict_ray(args: argparse.Namespace) -> int:
    from .sinks import RecordWriter

    try:
        import ray

        import mobilefer.ray as mray
    except ImportError as e:
        return _missing_extra("--engine ray", "ray", e)
    out = Path(args.out or "")
    if out.suffix not in (".parquet", ".jsonl"):
        _err("--engine ray writes a file: pass --out results.parquet or --out results.jsonl")
        return 2
    if args.save:
        _err("--save is not available with --engine ray")
        return 2
    if args.format is not None:
        _err("--format goes with the local engine; with --engine ray the suffix of --out "
             "(.parquet or .jsonl) says the format")  # fmt: skip
        return 2
    try:  # before any work, as --save is checked: the results must have somewhere to go
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.is_dir():
            raise IsADirectoryError(21, "it is a folder")
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=".mobilefer-probe"):
            pass
    except OSError as e:
        _err(f"--out {out}: cannot write there ({e.strerror or e}); choose a writable file")
        return 2
    if not ray.is_initialized():
        ray.init(address=args.address, include_dashboard=False, log_to_driver=False)
    ds = mray.predict(args.source, _options(args), actors=args.actors)
    errors = n = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    with open(out, "w") if out.suffix == ".jsonl" else nullcontext() as text:
        for batch in mray.batches(ds):
            rows = batch.to_pylist()
            n += len(rows)
            for r in rows:
                if r["error"]:
                    errors += 1
                    _err(r["error"])
            if text is not None:
                RecordWriter("jsonl", (), text).write(rows)
            else:
                import pyarrow.parquet as pq

                writer = writer or pq.ParquetWriter(out, batch.schema)
                writer.write_table(batch)
    if writer is not None:
        writer.close()
    _err(f"{n} record(s) in {out}; {errors} input(s) could not be read")
    return 1 if errors else 0


# ----------------------------------------------------------------------------- report
def cmd_report(args: argparse.Namespace) -> int:
    try:
        import plotly  # noqa: F401

        from .report import Collector, write_report
    except ImportError as e:
        return _missing_extra("report", "report", e)
    out = Path(args.out)
    if out.suffix.lower() not in (".html", ".htm"):
        _err(f"--out {shown(out)}: the report is one HTML file; name it report.html")
        return 2
    for target in (out, Path(args.csv) if args.csv else None):
        if target is not None and not (target.parent.is_dir() or target.parent == Path("")):
            _err(f"{shown(target)}: its folder does not exist; create it first")
            return 2
    rec = _recognizer(args)
    collector, failed = Collector(), 0
    progress: Progress | None = None
    for result in rec.stream(args.source, **_options(args).stream_options()):
        if result.error:
            _err(shown(result.error))
            failed += 1
            continue
        if result.kind == "skipped":
            continue
        name = "images" if result.frame is None else shown(result.source)
        if progress is None or progress.name != name:
            if progress is not None:
                progress.close()
            progress = Progress(name, "images" if result.frame is None else "frames")
        progress.update()
        collector.add(result)
    if progress is not None:
        progress.close()
    if not collector.results:
        _err("nothing was read, so no report was written")
        return 1
    try:
        made = write_report(collector, out, args.csv)
    except OSError as e:
        _err(f"{shown(out)}: cannot write the report ({e.strerror or e})")
        return 1
    _err(f"report: {made['tracks']} face track(s) in {made['clips']} clip(s) -> "
         f"{shown(out)} ({made['bytes'] / 1e6:.1f} MB)")  # fmt: skip
    return 1 if failed else 0


# ----------------------------------------------------------------------------- webcam
def has_display() -> bool:
    """Whether a window can be shown: a display server, and an OpenCV built with a GUI."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return False

    try:
        cv2.namedWindow("mobilefer")
        return True
    except cv2.error:
        return False


def cmd_webcam(args: argparse.Namespace) -> int:
    from .sinks import RecordWriter, VideoSink

    show = not args.save and not args.no_window
    if show and not has_display():
        _err(
            "no display to show a window on (no DISPLAY, or OpenCV built without a GUI: "
            "pip install 'opencv-python<5'); use --save out.mp4 to record the annotated stream, "
            "or 'mobilefer serve' for the browser demo"
        )
        return 1
    rec = _recognizer(args)
    out = RecordWriter(args.format or "jsonl", rec.labels, sys.stdout) if args.print else None
    writer = None
    progress = Progress(f"webcam {args.index}", "frames")
    try:
        for result in rec.stream(args.index, **_options(args).stream_options()):
            if result.error:  # no such camera, or one that gives no frames
                _err(shown(result.error))
                return 1
            progress.update()
            if out:
                out.write(result.records())
            drawn = result.draw(progress.rate)
            if args.save:
                if writer is None:
                    h, w = drawn.shape[:2]
                    writer = VideoSink(Path(args.save), result.fps or 25.0, (w, h))
                writer.write(drawn)
            if show:
                cv2.imshow("mobilefer", drawn)
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    break
    finally:
        progress.close(summary=progress.n > 0)
        if writer is not None:
            writer.close()
        if show:
            cv2.destroyAllWindows()
    return 0 if progress.n else 1


# ----------------------------------------------------------------------------- serve
#: Connections ``serve`` holds at once; more are answered 503 (stalled uploads hold memory).
SERVE_CONNECTIONS = 64


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from .serve import create_app, is_loopback
    except ImportError as e:
        return _missing_extra("serve", "serve", e)

    try:  # bind first: a busy port or an unknown host is a set-up error, before any address
        family, kind, _, _, address = socket.getaddrinfo(
            args.host, args.port, type=socket.SOCK_STREAM
        )[0]
        sock = socket.socket(family, kind)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as e:
        _err(f"serve: cannot listen on {args.host} port {args.port} ({e.strerror or e}); "
             "choose another --port, or a --host of this machine")  # fmt: skip
        return 2
    app = create_app(_options(args), allow_origins=args.allow_origin)
    if not is_loopback(args.host):
        _err(f"warning: listening on {args.host}, not only this machine: anyone who can reach "
             f"port {args.port} sees the demo and can send it images")  # fmt: skip
    shown_host = f"[{args.host}]" if ":" in args.host else args.host
    config = uvicorn.Config(app, log_level="warning", limit_concurrency=SERVE_CONNECTIONS,
                            timeout_keep_alive=5)  # fmt: skip
    print(f"mobilefer serve: open http://{shown_host}:{args.port}/ (Ctrl-C stops)",
          file=sys.stderr, flush=True)  # fmt: skip
    uvicorn.Server(config).run(sockets=[sock])
    return 0


# ----------------------------------------------------------------------------- evaluate
def cmd_evaluate(args: argparse.Namespace) -> int:
    from .data import load_fer2013_with_ferplus
    from .evaluate import evaluate_model, format_report
    from .model import ExpressionModel

    options = _options(args)
    model = ExpressionModel(options.model, threads=options.threads, flip_tta=options.flip_tta,
                            prior_tau=options.prior_tau, device=options.device)  # fmt: skip
    data = load_fer2013_with_ferplus(args.data, args.ferplus).split(args.split)
    t0 = time.perf_counter()
    result = evaluate_model(model, data)
    result |= {"split": args.split, "model": model.path, "flip_tta": model.flip_tta,
               "prior_tau": model.card.prior_tau, "zoom": model.card.preprocessing.zoom,
               "seconds": round(time.perf_counter() - t0, 2)}  # fmt: skip
    print(
        f"model {model.path}, split {args.split}, "
        f"flip TTA {'on' if model.flip_tta else 'off'}, prior tau {model.card.prior_tau}, "
        f"zoom {model.card.preprocessing.zoom}"
    )
    print(format_report(result))
    if args.json:
        print(json.dumps(result))
    return 0


# ----------------------------------------------------------------------------- train / export
def cmd_train(args: argparse.Namespace) -> int:
    try:
        from .train.config import apply_settings, read_run_config, recipe
        from .train.loop import fit
        from .train.report import epoch_header, epoch_row, write_report
    except ImportError as e:
        return _missing_extra("training", "train", e)

    from .data import load_fer2013, load_fer2013_with_ferplus

    given = {
        "epochs": args.epochs, "input_size": args.input_size, "batch_size": args.batch_size,
        "lr": args.lr, "seed": args.seed, "threads": args.threads, "limit_train": args.limit_train,
        "ferplus_weight": args.ferplus_weight, "logit_adjust": args.logit_adjust,
    }  # fmt: skip
    overrides = {k: v for k, v in given.items() if v is not None}
    if args.no_amp:
        overrides["amp"] = False
    if args.init:
        overrides["init"] = args.init
    if args.backbone_weights:
        overrides["backbone"] = args.backbone_weights
    elif args.no_pretrained:
        overrides["backbone"] = None
    if args.resume:
        # The run's own settings, changed only where an option was given: fit() refuses any
        # change but a longer --epochs.
        saved, _ = read_run_config(args.out)
        if args.recipe is not None:
            overrides["recipe"] = args.recipe
        cfg = apply_settings(replace(saved, **overrides), args.set)
    else:
        cfg = apply_settings(recipe(args.recipe or "default", **overrides), args.set)
    if cfg.ferplus_weight > 0:
        data = load_fer2013_with_ferplus(args.data, args.ferplus)
    else:
        data = load_fer2013(args.data)
    print(epoch_header(ferplus=cfg.ferplus_weight > 0), flush=True)
    result = fit(cfg, data, args.out, resume=args.resume,
                 on_epoch=lambda r: print(epoch_row(r), flush=True))  # fmt: skip
    best = result["best"]
    print(f"best PublicTest accuracy {best['public_accuracy']:.4f} at epoch {best['epoch']}; "
          f"checkpoints in {args.out}", file=sys.stderr)  # fmt: skip
    write_report(args.out, data=data)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    try:
        from .train.export import export_checkpoint
    except ImportError as e:
        return _missing_extra("export", "train", e)
    data = None
    if args.data:
        from .data import load_fer2013_with_ferplus

        data = load_fer2013_with_ferplus(args.data, args.ferplus)
    flip = {"auto": "auto", "on": True, "off": False}[args.flip_tta]
    tau, zoom = args.prior_tau, args.zoom
    if tau != "auto":
        tau = _float_in(tau, 0, 2, "--prior-tau")
    if zoom != "auto":
        zoom = _float_in(zoom, *ZOOM_RANGE, "--zoom")
    report = export_checkpoint(
        args.checkpoint, args.out, data=data, head=args.head, flip_tta=flip, prior_tau=tau,
        zoom=zoom, margin=args.margin, int8=args.int8, report_private=args.report_private,
    )  # fmt: skip
    for row in report.get("zoom_table", []):
        print(f"zoom {row['zoom']:.2f} (flip TTA {'on' if row['flip_tta'] else 'off'}, prior tau "
              f"{row['tau']:.1f}): PublicTest accuracy {row['accuracy']:.4f}, macro-F1 "
              f"{row['macro_f1']:.4f}, lowest recall {row['min_recall']:.4f}",
              file=sys.stderr)  # fmt: skip
    if "public_accuracy_single" in report:
        print(f"PublicTest accuracy: single {report['public_accuracy_single']:.4f}, "
              f"flip TTA {report['public_accuracy_flip']:.4f}", file=sys.stderr)  # fmt: skip
    for row in report.get("tau_table", []):
        print(f"prior tau {row['tau']:.1f}: PublicTest accuracy {row['accuracy']:.4f}, "
              f"macro-F1 {row['macro_f1']:.4f}, lowest recall {row['min_recall']:.4f}",
              file=sys.stderr)  # fmt: skip
    print(json.dumps(report))
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    try:
        import onnx  # noqa: F401  (ONNX Runtime's quantization tool needs it)

        from .quantize import CALIBRATIONS, calibration_faces, parity, quantize_file
        from .train.config import VAL_SOURCES
        from .train.sources import load_source, source_of
    except ImportError as e:
        return _missing_extra("quantization", "train", e)
    from .data import load_fer2013_with_ferplus

    src, out = Path(args.model), Path(args.out)
    methods = CALIBRATIONS if args.calibration == "all" else (args.calibration,)
    targets = {m: out if len(methods) == 1 else out.with_suffix(f".{m}.onnx") for m in methods}
    for path in targets.values():
        if path.resolve() == src.resolve():
            raise OptionError(f"--out {path}: that is the model being quantized; name a new file")
        if path.exists() and not args.overwrite:
            raise OptionError(f"--out {path}: exists; pass --overwrite to replace it")
    data = load_fer2013_with_ferplus(args.data, args.ferplus)
    faces = calibration_faces(data.split("train").pixels, args.faces)
    report = {"model": str(src), "calibration_faces": len(faces), "files": {}}
    for method, path in targets.items():
        report["files"][method] = quantize_file(src, path, faces, method)
    val = []
    if not args.no_val:
        for spec in VAL_SOURCES:
            source = source_of(spec)
            if source.root().is_dir():
                val.append((source.name, load_source(source, "val", 0.0, None)))
    files = {"float": src, **{f"int8 {m}": p for m, p in targets.items()}}
    report["parity"] = rows = parity(files, data.split("public"), val)
    sets = [k for k in rows[0] if k not in ("file", "path")]
    print("| file | " + " | ".join(sets) + " | worst change |", file=sys.stderr)
    for row in rows:
        worst = min(row[k] - rows[0][k] for k in sets)
        row["worst_change"] = worst
        cells = " | ".join(f"{row[k]:.2%}" for k in sets)
        print(f"| {row['file']} | {cells} | {worst * 100:+.2f} pt |", file=sys.stderr)
    print(json.dumps(report))
    return 0


def _float_in(text: str, lo: float, hi: float, name: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not lo <= v <= hi:
        raise OptionError(f"{name} {text}: expected a number from {lo} to {hi}, or auto")
    return v


def _number(kind, lo=None, hi=None, hi_open=False, what=""):
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


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
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


class _Parser(argparse.ArgumentParser):
    """argparse, with one line per error (no usage block) and defaults shown in --help."""

    def __init__(self, *a, **kw):
        kw.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*a, **kw)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


#: --margin's check, from the library's range.
MARGIN = _number(float, *MARGIN_RANGE, what="must lie in {:g} to {:g}".format(*MARGIN_RANGE))


def _add_inference_options(p: argparse.ArgumentParser, scopes=("model", "detector", "stream"),
                           output: bool = True) -> None:
    """The flags of every option of :class:`mobilefer.options.Options` in ``scopes``, built
    from the record (its defaults, choices and help; its ranges are checked by ``_options``),
    and ``--format`` for commands that print records."""
    from .options import DEFAULTS, SPECS

    for name, spec in SPECS.items():
        if spec.scope not in scopes:
            continue
        flag = "--" + name.replace("_", "-")
        default = DEFAULTS[name]
        if spec.kind == "switch":
            p.add_argument(flag, choices=list(SWITCH), default="auto", help=spec.help)
        elif spec.kind == "choice":
            p.add_argument(flag, choices=spec.choices, default=default, help=spec.help)
        else:
            kind = {"int": _integer, "float": _float}.get(spec.kind, str)
            shown_default = "" if default is None else f" (default: {default:,})"
            p.add_argument(flag, type=kind, default=default,
                           help=spec.help + ("" if "default" in spec.help else shown_default))
    if output:
        p.add_argument("--format", choices=["jsonl", "csv"],
                       help="stdout format: JSON Lines or CSV, one record per face "
                       "(default: jsonl)")  # fmt: skip


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(prog="mobilefer", description="Facial expression recognition.")
    p.add_argument("--version", action="version", version=f"mobilefer {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    pr = sub.add_parser("predict", help="faces and expressions in images, folders, videos, webcams")
    pr.add_argument("source", nargs="+", help="image, folder, glob, video file or webcam index")
    pr.add_argument("--save", help="folder for annotated images and videos (input folders are "
                    "mirrored; names are never reused)")  # fmt: skip
    pr.add_argument("--engine", choices=["local", "ray"], default="local",
                    help="ray: run on a Ray cluster (needs [ray] and --out)")  # fmt: skip
    pr.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    pr.add_argument("--out", help="with --engine ray: results.parquet or results.jsonl")
    pr.add_argument("--actors", type=_number(int, 1, 1024, what="must lie in 1-1024"),
                    default=2, help="with --engine ray: Recognizer actors in the pool "
                    "(at most 1,024)")  # fmt: skip
    _add_inference_options(pr)
    pr.set_defaults(func=cmd_predict)

    w = sub.add_parser("webcam", help="live webcam with boxes, labels and frames/s")
    w.add_argument("index", nargs="?", type=_number(int, 0, what="must be >= 0"), default=0,
                   help="camera index")  # fmt: skip
    w.add_argument("--save", help="write the annotated stream to this video file (no window)")
    w.add_argument("--no-window", action="store_true", help="no window (use with --print)")
    w.add_argument("--print", action="store_true", help="also print the faces to stdout")
    _add_inference_options(w)
    w.set_defaults(func=cmd_webcam)

    rp = sub.add_parser("report", help="an HTML report of each clip's faces over time "
                        "(needs the [report] extra)")  # fmt: skip
    rp.add_argument("source", nargs="+", help="video files (or images, folders, globs)")
    rp.add_argument("--out", required=True, help="the HTML file to write (self-contained)")
    rp.add_argument("--csv", help="also write one row per tracked face to this CSV file")
    _add_inference_options(rp, output=False)
    rp.set_defaults(func=cmd_report)

    sv = sub.add_parser("serve", help="the live demo in a browser: webcam, timeline, photos")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (this machine only)")
    sv.add_argument("--port", type=_number(int, 1, 65535, what="must lie in 1-65535"),
                    default=8000, help="port to listen on")  # fmt: skip
    _add_inference_options(sv, output=False)
    sv.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                    help="another page origin (http://host:port) that may open the live "
                    "WebSocket; the server's own always may (repeatable)")  # fmt: skip
    sv.set_defaults(func=cmd_serve)

    e = sub.add_parser("evaluate", help="accuracy, macro-F1 and confusion matrix on FER2013")
    e.add_argument("--data", required=True, help="fer2013.csv, fer2013.npz or an image folder")
    e.add_argument("--split", default="private", choices=["train", "public", "private"],
                   help="which split to score")  # fmt: skip
    e.add_argument("--json", action="store_true", help="end stdout with one JSON object")
    e.add_argument("--ferplus", help="FER+ votes (default: a ferplus.npz beside --data, if any)")
    _add_inference_options(e, scopes=("model",), output=False)
    e.set_defaults(func=cmd_evaluate)

    x = sub.add_parser("export", help="checkpoint -> ONNX model file with metadata (needs [train])")
    x.add_argument("checkpoint", nargs="+",
                   help="best.pt, best_ferplus.pt or last.pt from 'mobilefer train'; several "
                   "make one ensemble file that averages them")  # fmt: skip
    x.add_argument("--out", required=True, help="the .onnx file to write")
    x.add_argument("--data", help="FER2013: for the choices, the parity batch and the scores")
    x.add_argument(
        "--flip-tta",
        choices=["auto", "on", "off"],
        default="auto",
        help="auto: on if it raises PublicTest accuracy (needs --data)",
    )
    x.add_argument("--head", default="fer2013", choices=["fer2013", "ferplus"],
                   help="which head of the checkpoint to export")  # fmt: skip
    x.add_argument("--ferplus", help="FER+ votes (default: a ferplus.npz beside --data, if any)")
    x.add_argument(
        "--prior-tau",
        default="auto",
        help="divide probabilities by the Training class prior to this power, 0-2 (auto: "
        "chosen on PublicTest for accuracy and macro-F1 together; needs --data)",
    )
    x.add_argument(
        "--zoom",
        default="auto",
        help="the model sees the central 1/ZOOM of each 48x48 face, 0.5-2 (auto: chosen on "
        "PublicTest from 1-1.2 as --prior-tau is; needs --data)",
    )
    x.add_argument("--margin", type=MARGIN,
                   default=0.0, help="crop margin stored in the file")  # fmt: skip
    x.add_argument("--int8", action="store_true", help="static int8 quantization (needs --data)")
    x.add_argument("--report-private", action="store_true",
                   help="also score PrivateTest into the file: once, for the file you ship, "
                   "after every choice was made on PublicTest (needs --data)")  # fmt: skip
    x.set_defaults(func=cmd_export)

    q = sub.add_parser("quantize", help="model file -> static int8 model file, with its "
                       "accuracy beside the float file's (needs [train])")  # fmt: skip
    q.add_argument("model", help="a model file from 'mobilefer export' (or a shipped name's file)")
    q.add_argument("--out", required=True, help="the int8 .onnx file to write (with --calibration "
                   "all: OUT.METHOD.onnx each)")  # fmt: skip
    q.add_argument("--data", required=True, help="FER2013: Training faces calibrate, PublicTest "
                   "scores")  # fmt: skip
    q.add_argument("--ferplus", help="FER+ votes (default: a ferplus.npz beside --data, if any)")
    q.add_argument("--calibration", default="minmax", choices=["minmax", "entropy", "percentile",
                   "distribution", "all"], help="ONNX Runtime's calibration method")  # fmt: skip
    q.add_argument("--faces", type=_number(int, 1, 28709, what="must lie in 1-28709"),
                   default=512, help="Training faces to calibrate on (each with its mirror)")
    q.add_argument("--no-val", action="store_true", help="score PublicTest only, not the val "
                   "folds of $MOBILEFER_SHARED/data/ood (default ../shared)")  # fmt: skip
    q.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    q.set_defaults(func=cmd_quantize)

    t = sub.add_parser("train", help="fine-tune MobileNetV2 on FER2013 (needs the [train] extra)")
    t.add_argument("--recipe", help="paper, default or distill (default: default)")
    t.add_argument("--data", required=True, help="fer2013.csv, fer2013.npz or an image folder")
    t.add_argument("--out", required=True, help="run folder: checkpoints, metrics, plots")
    t.add_argument("--ferplus", help="FER+ votes (default: a ferplus.npz beside --data)")
    t.add_argument("--ferplus-weight", type=_number(float, 0, what="must be >= 0"),
                   help="loss weight of the FER+ head (0: none; recipe default)")  # fmt: skip
    t.add_argument("--logit-adjust", type=_number(float, 0, 2, what="must lie in 0-2"),
                   help="tau of a logit-adjusted loss (0: off; recipe default)")  # fmt: skip
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue OUT/last.pt with its own settings; a larger --epochs extends it",
    )
    positive = _number(int, 1, what="must be >= 1")
    t.add_argument("--epochs", type=positive, help="epochs (recipe default)")
    t.add_argument("--input-size", type=_number(int, 32, 1024, what="must lie in 32-1024"),
                   help="model input side in px (recipe default)")  # fmt: skip
    t.add_argument("--batch-size", type=_number(int, 2, what="must be >= 2"),
                   help="faces per step (recipe default)")  # fmt: skip
    t.add_argument("--lr", type=_number(float, 0, what="must be >= 0"),
                   help="peak learning rate (recipe default)")  # fmt: skip
    t.add_argument("--seed", type=_number(int, 0, what="must be >= 0"), help="random seed")
    t.add_argument("--threads", type=positive, help="torch CPU threads")
    t.add_argument("--limit-train", type=positive, help="use only the first N training faces")
    t.add_argument("--backbone-weights", help="a local mobilenet_v2-b0353104.pth")
    t.add_argument("--no-pretrained", action="store_true", help="random backbone (tests)")
    t.add_argument("--init", help="start from a checkpoint (best.pt of a run), a model file "
                   "or a shipped model name (fer2013, ferplus; one network of it)")
    t.add_argument("--no-amp", action="store_true", help="no bf16 autocast (GPU, bf16 CPUs)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other recipe setting, e.g. --set blur_prob=0.3 --set zoom=0.8,1.3 "
                   "(repeatable; the names are those of config.json)")  # fmt: skip
    t.set_defaults(func=cmd_train)
    return p


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
        return shown(f"mobilefer: {level}{where}{record.getMessage()}")


def main(argv: list[str] | None = None) -> int:
    quiet_native_logs()
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogLine())
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    try:
        code = args.func(args)
        sys.stdout.flush()
        return code
    except MobileferError as e:
        _err(str(e))
        return 2
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, as cat does, and keep Python from
        # complaining again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as e:
        if isinstance(e, URLError):  # a download (torch hub's ImageNet weights, say)
            _err(f"cannot download ({e.reason}); without a network, pass the local file "
                 "(--backbone-weights for training, --yunet for the detector)")  # fmt: skip
            return 2
        if e.errno == errno.ENOSPC or getattr(e, "filename", None) is None:
            _err(f"cannot write the results: {e.strerror or e}")
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
