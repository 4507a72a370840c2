"""Video speed of mobilefer, stage by stage, beside the peer `fer` in the same run.

    python benchmarks/speed.py [--model FILE] [--frames 300] [--fer-python PATH] [--threads N]

Builds a 640x480 test video from scikit-image's public-domain astronaut() photo (her face moving
across the frame), then prints one table: frames/s through the public API on every frame
(frames already decoded, and end to end with decoding), per stage (decode, detect, classify),
with each detector, with the tracker, and for `fer` (its Haar cascade + quantized TFLite
mini-Xception) when its virtual environment is given; and the classifier alone in faces/s at
batch 1, 32 and 256, the models timed in turn over three rounds. Each figure is the fastest of
three passes or rounds (the peer's too): a shared CPU's other work only slows a pass. Figures
depend on the machine; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from fer_peer import run_peer
from mobilefer import Recognizer
from mobilefer.tracking import FaceTracker
from results import machine, run, write
from synthetic import make_video


def baseline_model(rev: str, folder: Path) -> str:
    """The default model file as it was at git revision ``rev``, written under ``folder``."""
    import subprocess

    path = folder / f"mobilefer_fer2013@{rev}.onnx"
    blob = subprocess.run(
        ["git", "show", f"{rev}:src/mobilefer/models/mobilefer_fer2013.onnx"],
        capture_output=True,
        check=True,
    ).stdout
    path.write_bytes(blob)
    return str(path)


def decode(path: Path) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(path))
    frames, t0 = [], time.perf_counter()
    ok, frame = cap.read()
    while ok:
        frames.append(frame)
        ok, frame = cap.read()
    return frames, time.perf_counter() - t0


def per_frame(rec: Recognizer, frames) -> dict:
    """Recognizer.analyze on every (decoded) frame, timed as a whole and stage by stage."""
    rec.analyze(frames[0])  # warm-up
    t_det = t_cls = 0.0
    found = 0
    for f in frames:
        t0 = time.perf_counter()
        dets = rec.detector.detect(f)
        t1 = time.perf_counter()
        rec.classify_boxes(f, dets)
        t_det += t1 - t0
        t_cls += time.perf_counter() - t1
        found += bool(dets)
    t0 = time.perf_counter()
    for f in frames:
        rec.analyze(f)
    total = time.perf_counter() - t0
    n = len(frames)
    return {
        "fps": n / total,
        "detect_ms": 1e3 * t_det / n,
        "classify_ms": 1e3 * t_cls / n,
        "found": found / n,
    }


def end_to_end(path: Path, step) -> float:
    """Frames/s reading the video file and running ``step`` on every frame."""
    from mobilefer.sources import read_video

    t0, n = time.perf_counter(), 0
    for frame in read_video(path):
        step(frame.image)
        n += 1
    return n / (time.perf_counter() - t0)


def tracked(rec: Recognizer, frames) -> dict:
    tracker = FaceTracker(rec.detector.detect, rec.boxes_proba)
    t0, found = time.perf_counter(), 0
    for f in frames:
        found += bool(tracker.update(f))
    return {"fps": len(frames) / (time.perf_counter() - t0), "found": found / len(frames)}


#: Timed passes (stream) and rounds (classifier); the fastest counts.
PASSES = 3
#: The classifier's batch sizes.
BATCHES = (1, 32, 256)
VIDEO_FIELDS = ("pipeline", "fps", "fps_with_decoding", "stages_ms", "found")
STAGES = (
    "decode",
    "full-frame detection",
    "window search (tracker)",
    "crop and preprocess",
    "model (ONNX Runtime)",
    "head angles (five points)",
    "tracker, smoothing, results (the rest)",
)


def stream_stages(rec: Recognizer, video: Path) -> dict:
    """Where a frame's time goes in ``rec.stream(video)`` with its defaults: ms per frame for
    each of :data:`STAGES`, timed by wrapping the functions that do each (the rest is the
    loop's own time less theirs). The wrappers cost a little; the headline frames/s is taken
    without them."""
    from collections import defaultdict

    import mobilefer.model as model_module
    import mobilefer.recognizer as recognizer_module
    import mobilefer.results as results_module
    import mobilefer.stream as stream_module
    from mobilefer.tracking import FaceTracker

    spent: dict[str, float] = defaultdict(float)
    in_window = [False]

    def timed(stage, fn):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[stage] += time.perf_counter() - t0

        return wrapper

    def frames(path):
        it = read_video(path)
        while True:
            t0 = time.perf_counter()
            frame = next(it, None)
            spent["decode"] += time.perf_counter() - t0
            if frame is None:
                return
            yield frame

    def window(tracker, image, det):
        in_window[0] = True
        try:
            return search(tracker, image, det)
        finally:
            in_window[0] = False

    def detect(image, detect_size=None):
        t0 = time.perf_counter()
        out = plain_detect(image, detect_size)
        stage = "window search (tracker)" if in_window[0] else "full-frame detection"
        spent[stage] += time.perf_counter() - t0
        return out

    read_video, search = stream_module.read_video, FaceTracker._search_window
    prepare, crop = model_module.prepare, recognizer_module.crop
    pose = results_module.head_pose
    results_module.head_pose = timed("head angles (five points)", pose)
    plain_detect, run_model = rec.detector.detect, rec.model._run
    stream_module.read_video, FaceTracker._search_window = frames, window
    model_module.prepare = timed("crop and preprocess", prepare)
    recognizer_module.crop = timed("crop and preprocess", crop)
    rec.detector.detect, rec.model._run = detect, timed("model (ONNX Runtime)", run_model)
    try:
        t0, n = time.perf_counter(), 0
        for _ in rec.stream(str(video)):
            n += 1
        total = time.perf_counter() - t0
    finally:
        stream_module.read_video, FaceTracker._search_window = read_video, search
        model_module.prepare, recognizer_module.crop = prepare, crop
        results_module.head_pose = pose
        del rec.detector.detect, rec.model._run
    spent[STAGES[-1]] = total - sum(spent.values())
    return {stage: 1e3 * spent[stage] / n for stage in STAGES}


def classifier_alone(rec: Recognizer, batch: int, seconds: float = 2.0) -> float:
    faces = list(np.random.default_rng(0).integers(0, 256, (batch, 48, 48), dtype=np.uint8))
    rec.predict_proba(faces)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        rec.predict_proba(faces)
        n += batch
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", help="mobilefer model file (default: the shipped one)")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--threads", type=int, help="ONNX Runtime threads (default: all cores)")
    ap.add_argument("--fer-python", default=os.environ.get("FER_PYTHON"), help="the peer's python")
    ap.add_argument("--detectors", default="haar,yunet")
    ap.add_argument(
        "--baseline",
        default="dc2cf94",
        help="a git revision whose default model file is timed beside (empty: none)",
    )
    ap.add_argument(
        "--also", nargs="*", default=[], help="more model files for the classifier table"
    )
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp())
    video = make_video(tmp / "astronaut_640x480.mp4", args.frames)
    frames, t_decode = decode(video)
    rows = [("decode only (OpenCV)", len(frames) / t_decode, "", "", "")]
    for name in args.detectors.split(","):
        for side in (640, 320):
            rec = Recognizer(args.model, detector=name, threads=args.threads, detect_size=side)
            r = per_frame(rec, frames)
            e2e = end_to_end(video, rec.analyze)
            tta = " + flip TTA" if rec.flip_tta else ""
            rows.append(
                (
                    f"mobilefer analyze(), {name} at {side} px{tta}",
                    r["fps"],
                    f"{e2e:.1f}",
                    f"{r['detect_ms']:.2f} / {r['classify_ms']:.2f}",
                    f"{r['found']:.1%}",
                )
            )
        tr = tracked(rec, frames)
        e2e_t = end_to_end(video, FaceTracker(rec.detector.detect, rec.boxes_proba).update)
        rows.append(
            (
                f"mobilefer tracker (full detection every 10th frame), {name} at 320 px{tta}",
                tr["fps"],
                f"{e2e_t:.1f}",
                "",
                f"{tr['found']:.1%}",
            )
        )
    # The public pipeline with its defaults, reading the file: what a user's own loop gets; the
    # fastest of PASSES passes (the peer is timed the same way).
    rec = Recognizer(args.model, threads=args.threads)
    stream_fps = 0.0
    for _ in range(PASSES):
        t0, n, found = time.perf_counter(), 0, 0
        for result in rec.stream(str(video)):
            n += 1
            found += bool(result.faces)
        stream_fps = max(stream_fps, n / (time.perf_counter() - t0))
    rows.append(
        (
            f"mobilefer Recognizer().stream(video), defaults ({rec.detector.name})",
            stream_fps,
            f"{stream_fps:.1f}",
            "",
            f"{found / n:.1%}",
        )
    )
    stages = stream_stages(rec, video)
    mesh_fps = None
    try:  # the face mesh on every face of every frame (the [mesh] extra)
        meshed = Recognizer(args.model, threads=args.threads, mesh=True)
    except ImportError:
        meshed = None
    if meshed is not None:
        mesh_fps = 0.0
        for _ in range(PASSES):
            t0, n = time.perf_counter(), 0
            for _ in meshed.stream(str(video)):
                n += 1
            mesh_fps = max(mesh_fps, n / (time.perf_counter() - t0))
        rows.append(
            (
                "mobilefer Recognizer(mesh=True).stream(video): + face mesh, action units",
                mesh_fps,
                f"{mesh_fps:.1f}",
                "",
                "",
            )
        )
    if args.fer_python:
        peer = run_peer(args.fer_python, "speed", str(video))
        rows.append(
            (
                "fer 25.10.3 detect_emotions() (Haar + TFLite)",
                peer["fps"],
                "",
                "",
                f"{peer['found'] / peer['frames']:.1%}",
            )
        )

    print(
        f"{len(frames)} frames of 640x480 video; {machine()}; ONNX Runtime threads: "
        f"{args.threads or 'default'}"
    )
    print(
        "| pipeline | frames/s (decoded frames) | frames/s (with decoding) "
        "| detect / classify ms per frame | frames with a face |"
    )
    print("|---|---|---|---|---|")
    for name, fps, e2e, split, found in rows:
        print(f"| {name} | {fps:.1f} | {e2e} | {split} | {found} |")
    if args.fer_python:
        print(
            f"\nRecognizer().stream(video) with its defaults: {stream_fps / peer['fps']:.2f}x "
            "the frames/s of fer's detect_emotions, same run"
        )
    print()
    print("| Recognizer().stream(video), where a frame's time goes | ms per frame | share |")
    print("|---|---|---|")
    whole = sum(stages.values())
    for stage, ms in stages.items():
        print(f"| {stage} | {ms:.2f} | {ms / whole:.0%} |")
    print()
    print("| classifier alone, faces/s | batch 1 | batch 32 | batch 256 |")
    print("|---|---|---|---|")
    classifier = []
    baseline = baseline_model(args.baseline, tmp) if args.baseline else None
    configs = []
    for model in [args.model, *args.also, *([baseline] if baseline else [])]:
        shipped = Recognizer(model, detector="haar").flip_tta
        for flip in (True, False):
            rec = Recognizer(model, detector="haar", threads=args.threads, flip_tta=flip)
            configs.append((model, flip, shipped, rec, {b: 0.0 for b in BATCHES}))
    # round-robin, the fastest round of each kept: a shared CPU's other work slows some
    # rounds, and timing the models one after the other let it fall on one of them only
    for _ in range(PASSES):
        for *_, rec, best in configs:
            for b in BATCHES:
                best[b] = max(best[b], classifier_alone(rec, b, seconds=1.0))
    for model, flip, shipped, _, best in configs:
        name = (
            f"{Path(model).name if model else 'shipped model'}"
            + (" + flip TTA" if flip else ", single crop")
            + (" (as shipped)" if flip == shipped else "")
        )
        classifier.append(
            {
                "model": name,
                "flip_tta": flip,
                "as_shipped": flip == shipped,
                "baseline": model == baseline and baseline is not None,
                "faces_per_s": {str(b): v for b, v in best.items()},
            }
        )
        print(f"| {name} | " + " | ".join(f"{v:.0f}" for v in best.values()) + " |")
    ratio = None
    if baseline:
        now = next(c for c in classifier if c["as_shipped"] and not c["baseline"])
        then = next(c for c in classifier if c["as_shipped"] and c["baseline"])
        ratio = now["faces_per_s"]["32"] / then["faces_per_s"]["32"]
        print(
            f"\nThe default model as shipped classifies {ratio:.2f}x the faces/s at batch 32 of "
            f"the one shipped at {args.baseline}, same run"
        )
    write(
        "speed",
        {
            "frames": len(frames),
            "threads": args.threads,
            "model": args.model or "fer2013",
            "baseline": args.baseline or None,
            "batch32_ratio_to_baseline": ratio,
            "video": [dict(zip(VIDEO_FIELDS, r, strict=True)) for r in rows],
            "stream_fps": stream_fps,
            "stream_mesh_fps": mesh_fps,
            "fer_fps": peer["fps"] if args.fer_python else None,
            "stream_stages_ms": stages,
            "classifier": classifier,
        },
    )


if __name__ == "__main__":
    run(main)
