"""What ``mobilefer report`` adds to ``mobilefer predict`` on the same clip, in one run.

    python benchmarks/report_cost.py [--frames 600] [--model NAME_OR_FILE]

Times the stream with records written (what ``predict`` does) and the stream with the report's
collector (thumbnails of the sharpest and peak faces) and the HTML page written; prints the
extra time and the page's size, and writes results/report_cost.json.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

from mobilefer import Recognizer
from mobilefer.sinks import RecordWriter
from mobilefer.study.report import Collector, write_report
from results import run, write
from synthetic import make_video


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--model", help="mobilefer model name or file (default: the shipped one)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    video = str(make_video(tmp / "clip.mp4", args.frames))
    rec = Recognizer(args.model, threads=args.threads)
    list(rec.stream(video, max_frames=30))  # warm-up

    t0 = time.perf_counter()
    out = RecordWriter("jsonl", rec.labels, io.StringIO())
    for result in rec.stream(video):
        out.write(result.records())
    predict_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    collector = Collector()
    for result in rec.stream(video):
        collector.add(result)
    made = write_report(collector, tmp / "report.html")
    report_s = time.perf_counter() - t0
    extra = report_s / predict_s - 1
    print(
        f"{args.frames} frames of 640x480 video: predict {predict_s:.2f} s, report "
        f"{report_s:.2f} s ({extra:+.1%}); page {made['bytes'] / 1e6:.2f} MB, "
        f"{made['tracks']} track(s)"
    )
    write(
        "report_cost",
        {
            "frames": args.frames,
            "predict_s": predict_s,
            "report_s": report_s,
            "extra": extra,
            "page_bytes": made["bytes"],
        },
    )


if __name__ == "__main__":
    run(main)
