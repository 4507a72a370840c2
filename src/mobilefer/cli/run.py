"""``predict``, ``report`` and ``webcam``: the commands that run the Recognizer over sources."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from contextlib import nullcontext
from pathlib import Path

import cv2

from ..errors import InputError
from ..image import printable
from ..sources import FALLBACK_FPS
from .common import Progress, err, missing_extra, options_of, recognizer_of


class ResultLoop:
    """One command's pass over a stream of Results: each error is one line on stderr and
    counted, skipped files are counted by kind (and linked folders named), a progress line runs
    per source, and :meth:`close` says what was skipped and failed. What is left (results
    that were read) comes out of :meth:`run` for the command to use."""

    def __init__(self) -> None:
        self.failed, self.skipped, self.links = 0, {}, []
        self.images = Progress("images", "images")
        self.frames: Progress | None = None

    def run(self, results):
        for result in results:
            if result.skip == "link":
                self.links.append(printable(result.source))
            elif result.kind == "skipped":
                suffix = Path(result.source).suffix.lower() or "(none)"
                self.skipped[suffix] = self.skipped.get(suffix, 0) + 1
            elif result.error:
                err(printable(result.error))
                self.failed += 1
            else:
                self._progress(result)
                yield result

    def _progress(self, result) -> None:
        if result.frame is None:
            self.images.update()
            return
        if self.frames is None or self.frames.name != printable(result.source):
            if self.frames is not None:
                self.frames.close()
            self.frames = Progress(printable(result.source), "frames")
        self.frames.update()

    def rate(self, result) -> float | None:
        """Frames/s of the source now running (video and webcams), for the live window."""
        return self.frames.rate if self.frames and result.frame is not None else None

    def close(self) -> None:
        if self.frames is not None:
            self.frames.close()
            self.frames = None
        self.images.close(summary=self.images.n > 1)
        if self.skipped:
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items()))
            err(
                f"skipped {sum(self.skipped.values())} file(s) that are not images or videos "
                f"({kinds})"
            )
        if self.links:
            more = f" and {len(self.links) - 5} more" if len(self.links) > 5 else ""
            err(
                f"skipped {len(self.links)} linked folder(s), not followed: "
                f"{', '.join(self.links[:5])}{more} (name a linked folder itself to read it)"
            )


def cmd_predict(args: argparse.Namespace) -> int:
    if args.engine == "ray":
        return _predict_ray(args)
    if args.out or args.address:
        err("--out and --address go with --engine ray; without it, records go to stdout")
        return 2
    from ..sinks import AnnotatedSaver, RecordWriter, check_save_folder

    if args.save:
        check_save_folder(args.save, args.source)
    saver = AnnotatedSaver(args.save) if args.save else None
    options = options_of(args)  # checked once, here; the library trusts the record after
    rec = recognizer_of(options)
    cal = calibration_of(rec, args.calibrate)
    out = RecordWriter(args.format or "jsonl", rec.labels, sys.stdout, options.record_extras())
    loop = ResultLoop()
    try:
        for result in loop.run(rec.stream(args.source, cal, **options.stream_options())):
            out.write(result.records())
            if result.reason:
                err(f"{printable(result.source)}: {result.reason}")
            if saver:
                try:
                    note = saver.add(result)  # frames/s is a live window's, not a file's
                    if note:
                        err(note)
                except InputError as e:
                    err(printable(str(e)))
                    loop.failed += 1
    finally:
        if saver:
            try:
                saver.close()
            except InputError as e:
                err(printable(str(e)))
                loop.failed += 1
        loop.close()
    if saver:
        err(f"annotated {saver.folder.written} file(s) under {printable(saver.folder.folder)}")
    if loop.failed:
        err(f"{loop.failed} input(s) failed")
    return 1 if loop.failed else 0


def calibration_of(rec, image):
    """The calibration on ``image`` (``--calibrate``), or None; an unusable photo is an
    :class:`InputError` before any work."""
    if image is None:
        return None
    try:
        return rec.calibrate(image)
    except InputError as e:
        raise InputError(f"--calibrate {e}") from None


def _predict_ray(args: argparse.Namespace) -> int:
    from ..sinks import RecordWriter, check_outputs

    try:
        import ray

        import mobilefer.distributed as mray
    except ImportError as e:
        return missing_extra("--engine ray", "ray", e)
    out = Path(args.out or "")
    if out.suffix not in (".parquet", ".jsonl"):
        err("--engine ray writes a file: pass --out results.parquet or --out results.jsonl")
        return 2
    if args.save or args.calibrate:
        err(f"{'--save' if args.save else '--calibrate'} is not available with --engine ray")
        return 2
    if args.format is not None:
        err(
            "--format goes with the local engine; with --engine ray the suffix of --out "
            "(.parquet or .jsonl) says the format"
        )
        return 2
    # before any work, as --save is checked: the results must have somewhere to go
    check_outputs({"--out": out}, args.source, args.overwrite)
    quiet_ray()
    if not ray.is_initialized():
        ray.init(
            address=args.address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    ds = mray.predict(args.source, options_of(args), actors=args.actors)
    errors = n = 0
    writer = None
    part = out.with_name(f".{out.name}.part")  # renamed to --out when whole
    try:
        with open(part, "w") if out.suffix == ".jsonl" else nullcontext() as text:
            for batch in mray.batches(ds):
                rows = batch.to_pylist()
                n += len(rows)
                for r in rows:
                    if r["error"]:
                        errors += 1
                        err(r["error"])
                if text is not None:
                    RecordWriter("jsonl", (), text).write(rows)
                else:
                    import pyarrow.parquet as pq

                    writer = writer or pq.ParquetWriter(part, batch.schema)
                    writer.write_table(batch)
        if writer is not None:
            writer.close()
        if part.exists():
            os.replace(part, out)
    except BaseException:  # Ctrl-C, a full disk: no half-written file is left behind
        part.unlink(missing_ok=True)
        raise
    err(f"{n} record(s) in {out}; {errors} input(s) could not be read")
    return 1 if errors else 0


def quiet_ray() -> None:
    """Ray's own lines (start-up, Ray Data's progress log and notices) are not the command's:
    they go to Ray's log files; its errors still show."""
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    if hasattr(ctx, "enable_rich_progress_bars"):
        ctx.enable_rich_progress_bars = False
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings(
        "ignore", message="The minimum number of concurrent actors", category=UserWarning
    )


def cmd_report(args: argparse.Namespace) -> int:
    try:
        import plotly  # noqa: F401

        from ..study.report import Collector, write_report
    except ImportError as e:
        return missing_extra("report", "report", e)
    from ..sinks import check_outputs
    from ..study.plan import StudyPlan

    out = Path(args.out)
    if out.suffix.lower() not in (".html", ".htm"):
        err(f"--out {printable(out)}: the report is one HTML file; name it report.html")
        return 2
    given = [f for f in (args.events, args.participants) if f]
    check_outputs({"--out": out, "--csv": args.csv}, [*args.source, *given], args.overwrite)
    plan = StudyPlan.from_files(args.events, args.baseline, args.participants, args.calibrate)
    sources, seen = [], set()
    for spec in args.source:  # a clip given twice would be one clip of twice its frames
        key = os.path.realpath(spec) if os.path.exists(spec) else spec
        if key in seen:
            err(f"{printable(spec)}: given twice; read once")
            continue
        seen.add(key)
        sources.append(spec)
    options = options_of(args)
    rec = recognizer_of(options)
    collector, loop = Collector(), ResultLoop()
    for result in loop.run(rec.stream(sources, **options.stream_options())):
        collector.add(result)
    loop.close()
    if not collector.count:
        err("nothing was read, so no report was written")
        return 1
    read = collector.sources
    for name in plan.unmatched(read):
        err(f"{printable(name)}: named in --events or --participants but not among the clips read")
    if plan.events and not any(read.values()):
        err("--events mark times in videos, and no video was read: the report has no events")
    try:
        plan.check_sources(read)
        made = write_report(collector, out, args.csv, plan, rec.card.class_weights())
    except InputError as e:
        err(printable(str(e)))
        return 1
    err(
        f"report: {made['tracks']} face track(s) in {made['clips']} clip(s) -> "
        f"{printable(out)} ({made['bytes'] / 1e6:.1f} MB)"
    )
    return 1 if loop.failed else 0


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
    from ..sinks import RecordWriter, VideoSink, check_outputs

    check_outputs({"--save": args.save}, overwrite=args.overwrite)  # before the camera opens
    show = not args.save and not args.no_window
    if show and not has_display():
        err(
            "no window can be shown here (no display, or an OpenCV without a GUI, as the "
            "headless one mobilefer installs); use --save out.mp4 to record the annotated "
            "stream, --no-window --print for the records, or 'mobilefer serve' for the "
            "browser demo"
        )
        return 2
    options = options_of(args)
    rec = recognizer_of(options)
    cal = calibration_of(rec, args.calibrate)
    extras = options.record_extras()
    out = (
        RecordWriter(args.format or "jsonl", rec.labels, sys.stdout, extras) if args.print else None
    )
    writer, loop, shown_frames = None, ResultLoop(), 0
    try:  # no such camera, or one that gives no frames: one error line from the loop
        for result in loop.run(rec.stream(args.index, cal, **options.stream_options())):
            shown_frames += 1
            if out:
                out.write(result.records())
            if args.save:  # the recording without the frames/s, which is the window's
                drawn = result.draw()
                if writer is None:
                    h, w = drawn.shape[:2]
                    writer = VideoSink(Path(args.save), result.fps or FALLBACK_FPS, (w, h))
                writer.write(drawn)
            if show:
                cv2.imshow("mobilefer", result.draw(loop.rate(result)))
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    break
    finally:
        loop.close()
        if writer is not None:
            writer.close()
        if show:
            cv2.destroyAllWindows()
    return 0 if shown_frames and not loop.failed else 1
