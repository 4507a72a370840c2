"""The ``mobilefer`` command: predict | webcam | evaluate | train | export.

Results go to stdout (JSON Lines or CSV); progress, warnings and errors go to stderr. Every
expected failure is one line naming the input, never a traceback; the exit code is 1 when any
input failed and 2 for a usage or set-up error.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
import time
from pathlib import Path

from .errors import InputError, MobileferError, OptionError
from .faces import NoDetector

log = logging.getLogger("mobilefer")

#: Longest side frames are shrunk to before detection, unless --detect-size says otherwise:
#: photos keep small faces findable; video and webcam faces are large and time is short.
IMAGE_DETECT_SIZE = 640
STREAM_DETECT_SIZE = 320

CSV_FIELDS = ["source", "frame", "time", "face", "x", "y", "w", "h", "label", "score",
              "detector", "detector_score", "track_id"]  # fmt: skip


def _err(msg: str) -> None:
    print(f"mobilefer: {msg}", file=sys.stderr, flush=True)


class Output:
    """Writes one record per face to stdout as JSON Lines or CSV."""

    def __init__(self, fmt: str, labels, stream=None):
        self.fmt = fmt
        self.labels = list(labels)
        self.stream = stream or sys.stdout
        if fmt == "csv":
            self._csv = csv.DictWriter(self.stream, fieldnames=CSV_FIELDS + self.labels)
            self._csv.writeheader()

    def write(self, source: str, faces, frame: int | None = None, t: float | None = None):
        for i, face in enumerate(faces):
            d = face.to_dict()
            rec = {"source": source, "frame": frame, "time": None if t is None else round(t, 3),
                   "face": i, **d}  # fmt: skip
            if self.fmt == "csv":
                x, y, w, h = d["box"]
                row = {k: rec.get(k) for k in CSV_FIELDS if k in rec}
                row |= {"x": x, "y": y, "w": w, "h": h, "score": round(face.score, 6)}
                row |= {k: round(v, 6) for k, v in d["scores"].items()}
                self._csv.writerow(row)
            else:
                self.stream.write(json.dumps(rec) + "\n")
        self.stream.flush()


class Progress:
    """A one-line progress bar on stderr (redrawn in place on a terminal, summed up otherwise)."""

    def __init__(self, name: str, total: int | None, unit: str):
        self.name, self.total, self.unit = name, total, unit
        self.tty = sys.stderr.isatty()
        self.t0 = time.perf_counter()
        self.n = 0
        self._last = 0.0

    @property
    def rate(self) -> float:
        return self.n / max(time.perf_counter() - self.t0, 1e-9)

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if self.tty and now - self._last > 0.2:
            self._last = now
            of = f"/{self.total}" if self.total else ""
            bar = ""
            if self.total:
                done = int(30 * min(self.n / self.total, 1))
                bar = "[" + "#" * done + "." * (30 - done) + "] "
            sys.stderr.write(f"\r{self.name}: {bar}{self.n}{of} {self.unit} {self.rate:.1f}/s ")
            sys.stderr.flush()

    def close(self) -> None:
        """End the bar with a summary line: count, seconds and rate."""
        lead = "\r" if self.tty else ""
        secs = time.perf_counter() - self.t0
        sys.stderr.write(f"{lead}{self.name}: {self.n} {self.unit} in {secs:.1f} s, "
                         f"{self.rate:.1f} {self.unit}/s\n")  # fmt: skip
        sys.stderr.flush()


def _recognizer(args: argparse.Namespace):
    from .recognizer import Recognizer

    flip = {"auto": None, "on": True, "off": False}[args.flip_tta]
    return Recognizer(
        model=args.model, detector=args.detector, threads=args.threads, flip_tta=flip,
        margin=args.margin, detect_max_side=_size(args, IMAGE_DETECT_SIZE), yunet=args.yunet,
    )  # fmt: skip


def _size(args: argparse.Namespace, default: int) -> int:
    return default if args.detect_size is None else args.detect_size


def _set_detect_size(rec, side: int) -> None:
    if hasattr(rec.detector, "max_side"):
        rec.detector.max_side = side


def _tracker(rec, args: argparse.Namespace):
    from .tracking import FaceTracker

    return FaceTracker(rec, detect_every=args.detect_every, smoothing=args.smoothing)


def _save_path(save_dir: Path, source: str, suffix: str) -> Path:
    name = Path(source.replace(":", "_")).name
    return save_dir / (Path(name).stem + "_mobilefer" + suffix)


def _video_writer(path: Path, fps: float, size: tuple[int, int]):
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps or 25.0, size)
    if not writer.isOpened():
        raise InputError(f"{path}: cannot write a video here")
    return writer


def run_stream(rec, frames, out: Output | None, args, show: bool = False, save: Path | None = None,
               total: int | None = None, name: str = "") -> int:  # fmt: skip
    """Track, classify and output every frame of a stream; returns the number of frames."""
    from .annotate import draw

    _set_detect_size(rec, _size(args, STREAM_DETECT_SIZE))
    tracker = _tracker(rec, args)
    progress = Progress(name, total, "frames")
    writer = None
    try:
        for frame in frames:
            faces = tracker.update(frame.image)
            if out:
                out.write(frame.source, faces, frame.index, frame.time)
            progress.update()
            if show or save:
                shown = draw(frame.image, faces, progress.rate)
                if save:
                    if writer is None:
                        h, w = shown.shape[:2]
                        writer = _video_writer(save, args.save_fps or 25.0, (w, h))
                    writer.write(shown)
                if show:
                    import cv2

                    cv2.imshow("mobilefer", shown)
                    if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                        break
            if args.max_frames and progress.n >= args.max_frames:
                break
    finally:
        progress.close()
        if writer is not None:
            writer.release()
    return progress.n


# ----------------------------------------------------------------------------- predict
def cmd_predict(args: argparse.Namespace) -> int:
    from .sources import expand, read_image, read_video, read_webcam, video_info

    rec = _recognizer(args)
    out = Output(args.format, rec.labels)
    save = Path(args.save) if args.save else None
    failed = 0
    sources = []
    for spec in args.source:
        try:
            sources += expand([spec])
        except InputError as e:
            _err(str(e))
            failed += 1
    images = [s for s in sources if s.kind == "image"]
    progress = Progress("images", len(images), "images") if len(images) > 1 else None
    for src in sources:
        try:
            if src.kind == "other":
                raise InputError(f"{src.spec}: not an image or video file; skipped")
            if src.kind == "image":
                _set_detect_size(rec, _size(args, IMAGE_DETECT_SIZE))
                image = read_image(src.spec)
                faces = rec.analyze(image)
                if not faces:
                    log.info("%s: no face found", src.spec)
                out.write(src.spec, faces)
                if save:
                    import cv2

                    from .annotate import draw

                    save.mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(_save_path(save, src.spec, ".png")), draw(image, faces))
            elif src.kind == "video":
                count, fps, _ = video_info(src.spec)
                args.save_fps = fps
                target = _save_path(save, src.spec, ".mp4") if save else None
                run_stream(rec, read_video(src.spec), out, args, save=target, total=count or None,
                           name=src.spec)  # fmt: skip
            else:  # webcam
                target = _save_path(save, f"webcam{src.spec}", ".mp4") if save else None
                run_stream(
                    rec,
                    read_webcam(int(src.spec)),
                    out,
                    args,
                    save=target,
                    name=f"webcam {src.spec}",
                )
        except InputError as e:
            _err(str(e))
            failed += 1
        if progress and src.kind == "image":
            progress.update()
    if progress:
        progress.close()
    if failed:
        _err(f"{failed} input(s) failed")
    return 1 if failed else 0


# ----------------------------------------------------------------------------- webcam
def has_display() -> bool:
    """Whether a window can be shown: a display server, and an OpenCV built with a GUI."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return False
    import cv2

    try:
        cv2.namedWindow("mobilefer")
        return True
    except cv2.error:
        return False


def cmd_webcam(args: argparse.Namespace, capture=None) -> int:
    import cv2

    from .sources import read_webcam

    cap = capture if capture is not None else cv2.VideoCapture(args.index)
    if not cap.isOpened():
        _err(f"webcam {args.index}: no camera found at this index (or it is busy); "
             "try another INDEX, or run 'mobilefer predict VIDEO' on a recording")  # fmt: skip
        return 1
    show = not args.save and not args.no_window
    if show and not has_display():
        cap.release()
        _err(
            "no display to show a window on (no DISPLAY, or OpenCV built without a GUI: "
            "pip install 'opencv-python<5'); use --save out.mp4 to record the annotated stream"
        )
        return 1
    rec = _recognizer(args)
    out = Output(args.format, rec.labels) if args.print else None
    args.save_fps = args.save_fps or cap.get(cv2.CAP_PROP_FPS) or 25.0
    save = Path(args.save) if args.save else None
    n = run_stream(rec, read_webcam(args.index, cap), out, args, show=show, save=save,
                   name=f"webcam {args.index}")  # fmt: skip
    if show:
        cv2.destroyAllWindows()
    return 0 if n else 1


# ----------------------------------------------------------------------------- evaluate
def _with_ferplus(data, data_path: str, ferplus: str | None):
    """FER2013 with FER+ votes from ``--ferplus``, or from a ferplus.npz beside ``--data``."""
    if ferplus is None:
        beside = Path(data_path).expanduser().parent / "ferplus.npz"
        if not beside.is_file():
            return data
        log.info("FER+ votes from %s", beside)
        ferplus = str(beside)
    return data.with_ferplus(ferplus)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .data import load_fer2013
    from .evaluate import evaluate_model, format_report

    rec = _recognizer(argparse.Namespace(**{**vars(args), "detector": NoDetector()}))
    data = _with_ferplus(load_fer2013(args.data), args.data, args.ferplus).split(args.split)
    t0 = time.perf_counter()
    result = evaluate_model(rec, data)
    result |= {"split": args.split, "model": rec.model_path, "flip_tta": rec.flip_tta,
               "prior_tau": rec.card.prior_tau,
               "seconds": round(time.perf_counter() - t0, 2)}  # fmt: skip
    print(
        f"model {rec.model_path}, split {args.split}, "
        f"flip TTA {'on' if rec.flip_tta else 'off'}, prior tau {rec.card.prior_tau}"
    )
    print(format_report(result))
    if args.json:
        print(json.dumps(result))
    return 0


# ----------------------------------------------------------------------------- train / export
def cmd_train(args: argparse.Namespace) -> int:
    try:
        from .train.loop import fit, read_run_config, recipe
        from .train.report import epoch_header, epoch_row, write_report
    except ImportError as e:
        _err(
            f"training needs the [train] extra ({e.name} is missing): "
            "pip install 'mobilefer[train]'"
        )
        return 2
    from dataclasses import replace

    from .data import load_fer2013

    given = {
        "epochs": args.epochs, "input_size": args.input_size, "batch_size": args.batch_size,
        "lr": args.lr, "seed": args.seed, "threads": args.threads, "limit_train": args.limit_train,
        "ferplus_weight": args.ferplus_weight, "logit_adjust": args.logit_adjust,
    }  # fmt: skip
    overrides = {k: v for k, v in given.items() if v is not None}
    if args.no_amp:
        overrides["amp"] = False
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
        cfg = replace(saved, **overrides)
    else:
        cfg = recipe(args.recipe or "default", **overrides)
    data = load_fer2013(args.data)
    if cfg.ferplus_weight > 0:
        data = _with_ferplus(data, args.data, args.ferplus)
    print(epoch_header(), flush=True)
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
        _err(
            f"export needs the [train] extra ({e.name} is missing): pip install 'mobilefer[train]'"
        )
        return 2
    data = None
    if args.data:
        from .data import load_fer2013

        data = _with_ferplus(load_fer2013(args.data), args.data, args.ferplus)
    flip = {"auto": "auto", "on": True, "off": False}[args.flip_tta]
    tau = args.prior_tau
    if tau != "auto":
        tau = _float_in(tau, 0, 2, "--prior-tau")
    report = export_checkpoint(
        args.checkpoint, args.out, data=data, head=args.head, flip_tta=flip, prior_tau=tau,
        margin=args.margin, int8=args.int8,
    )  # fmt: skip
    if "public_accuracy_single" in report:
        print(f"PublicTest accuracy: single {report['public_accuracy_single']:.4f}, "
              f"flip TTA {report['public_accuracy_flip']:.4f}", file=sys.stderr)  # fmt: skip
    for row in report.get("tau_table", []):
        print(f"prior tau {row['tau']:.1f}: PublicTest accuracy {row['accuracy']:.4f}, "
              f"macro-F1 {row['macro_f1']:.4f}, lowest recall {row['min_recall']:.4f}",
              file=sys.stderr)  # fmt: skip
    print(json.dumps(report))
    return 0


def _float_in(text: str, lo: float, hi: float, name: str) -> float:
    import math

    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not lo <= v <= hi:
        raise OptionError(f"{name} {text}: expected a number from {lo} to {hi}, or auto")
    return v


def _add_inference_options(p: argparse.ArgumentParser, detector: bool = True) -> None:
    p.add_argument(
        "--model",
        help="a shipped model by name (fer2013: 7 classes, the default; ferplus: 8 classes) "
        "or a model file from 'mobilefer export'",
    )
    p.add_argument("--threads", type=int, help="ONNX Runtime threads (default: all cores)")
    p.add_argument(
        "--flip-tta",
        choices=["auto", "on", "off"],
        default="auto",
        help="average each face with its mirror image (auto: as the model file says)",
    )
    if detector:
        p.add_argument(
            "--detector", default="auto", help="haar, yunet or auto (yunet if available)"
        )
        p.add_argument("--yunet", help="a local face_detection_yunet_2023mar.onnx")
        p.add_argument(
            "--detect-size",
            type=int,
            help=f"shrink frames to this longest side before detection (default: images "
            f"{IMAGE_DETECT_SIZE}, video and webcam {STREAM_DETECT_SIZE})",
        )
        p.add_argument("--margin", type=float, help="grow face boxes by this fraction per side")
        p.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
        p.add_argument(
            "--detect-every",
            type=int,
            default=10,
            help="video/webcam: full-frame detection every N frames, tracking between (1: always)",
        )
        p.add_argument(
            "--smoothing",
            type=float,
            default=0.6,
            help="video/webcam: weight of past scores per tracked face (0: off)",
        )
        p.add_argument(
            "--max-frames", type=int, default=0, help="video/webcam: stop after N frames"
        )
    else:
        p.set_defaults(margin=None, detect_size=None, yunet=None)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mobilefer", description="Facial expression recognition.")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    sub = p.add_subparsers(dest="command", required=True)

    pr = sub.add_parser("predict", help="faces and expressions in images, folders, videos, webcams")
    pr.add_argument("source", nargs="+", help="image, folder, glob, video file or webcam index")
    pr.add_argument("--save", help="folder for annotated images and videos")
    _add_inference_options(pr)
    pr.set_defaults(func=cmd_predict, save_fps=None)

    w = sub.add_parser("webcam", help="live webcam with boxes, labels and frames/s")
    w.add_argument("index", nargs="?", type=int, default=0, help="camera index (default 0)")
    w.add_argument("--save", help="write the annotated stream to this video file (no window)")
    w.add_argument("--no-window", action="store_true", help="no window (use with --print)")
    w.add_argument("--print", action="store_true", help="also print the faces to stdout")
    _add_inference_options(w)
    w.set_defaults(func=cmd_webcam, save_fps=None)

    e = sub.add_parser("evaluate", help="accuracy, macro-F1 and confusion matrix on FER2013")
    e.add_argument("--data", required=True, help="fer2013.csv, fer2013.npz or an image folder")
    e.add_argument("--split", default="private", choices=["train", "public", "private"])
    e.add_argument("--json", action="store_true", help="end stdout with one JSON object")
    e.add_argument("--ferplus", help="FER+ votes (default: a ferplus.npz beside --data, if any)")
    _add_inference_options(e, detector=False)
    e.set_defaults(func=cmd_evaluate)

    x = sub.add_parser("export", help="checkpoint -> ONNX model file with metadata (needs [train])")
    x.add_argument("checkpoint", help="best.pt or last.pt from 'mobilefer train'")
    x.add_argument("--out", required=True, help="the .onnx file to write")
    x.add_argument("--data", help="FER2013: for the parity batch and the scores stored in the file")
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
    x.add_argument("--margin", type=float, default=0.0, help="crop margin stored in the file")
    x.add_argument("--int8", action="store_true", help="static int8 quantization (needs --data)")
    x.set_defaults(func=cmd_export)

    t = sub.add_parser("train", help="fine-tune MobileNetV2 on FER2013 (needs the [train] extra)")
    t.add_argument("--recipe", help="paper or default (default: default)")
    t.add_argument("--data", required=True, help="fer2013.csv, fer2013.npz or an image folder")
    t.add_argument("--out", required=True, help="run folder: checkpoints, metrics, plots")
    t.add_argument("--ferplus", help="FER+ votes (default: a ferplus.npz beside --data)")
    t.add_argument("--ferplus-weight", type=float, help="loss weight of the FER+ head (0: none)")
    t.add_argument("--logit-adjust", type=float, help="tau of a logit-adjusted loss (0: off)")
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue OUT/last.pt with its own settings; a larger --epochs extends it",
    )
    t.add_argument("--epochs", type=int)
    t.add_argument("--input-size", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--seed", type=int)
    t.add_argument("--threads", type=int, help="torch CPU threads")
    t.add_argument("--limit-train", type=int, help="use only the first N training faces")
    t.add_argument("--backbone-weights", help="a local mobilenet_v2-b0353104.pth")
    t.add_argument("--no-pretrained", action="store_true", help="random backbone (tests)")
    t.add_argument("--no-amp", action="store_true", help="no bf16 autocast on GPU")
    t.set_defaults(func=cmd_train)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.func(args)
    except MobileferError as e:
        _err(str(e))
        return 2
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
