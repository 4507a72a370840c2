"""What the server's handlers share: the :class:`Demo` (one Recognizer, its stream options, a
lock around recognition, a bound on decodes), the documented :data:`LIMITS`, and whether the
``[report]`` extra is there."""

from __future__ import annotations

import base64
import itertools
import os
import tempfile
import threading
from dataclasses import replace
from importlib import resources

import cv2

from ..errors import InputError, LimitError
from ..image import decode_image
from ..labels import colour_of
from ..options import Options
from ..recognizer import Recognizer
from ..records import records

#: The page's files, served by the package.
STATIC = resources.files("mobilefer.serve") / "static"

#: Documented limits of what the server accepts.
LIMITS = {
    "upload_bytes": 20_000_000,  # one photo
    "upload_pixels": 40_000_000,  # 40 megapixels
    "frame_bytes": 2_000_000,  # one live frame
    "frame_pixels": 2_100_000,  # 1920x1080 at most
    "clip_bytes": 50_000_000,  # one uploaded video
    "clip_seconds": 300,  # its duration, as its container states it
    "clip_frames": 9_000,  # frames decoded from one clip (5 minutes at 30 frames/s)
    "live_sockets": 48,  # live connections at once, below the server's 64 connections
    "live_idle_seconds": 30,  # a live connection that sends nothing this long is closed
    "events_bytes": 8192,  # an events file sent with a clip (in its query)
    "live_report_frames": 18_000,  # frames a live session's report keeps (the first ones)
}
#: Uploads and frames decoded at the same time (each photo may take ~300 MB while decoded).
DECODERS = 2
#: JPEG quality of the annotated photo sent back.
ANNOTATED_JPEG_QUALITY = 88
#: What a refused oversized image is told (the server has no option to raise its limits).
SERVER_LIMIT = "shrink it; this server takes images of at most the pixels /api/info states"


class Demo:
    """What the app's handlers share: the Recognizer, the stream options, one lock around
    recognition, a bound on decodes and the count of open live sockets."""

    def __init__(self, options: Options | Recognizer | None, allow_origins=()) -> None:
        if isinstance(options, Recognizer):
            self.rec, self.options = options, Options()
        else:
            self.options = (options or Options()).check()
            self.rec = Recognizer.from_options(self.options)
        self.stream_options = self.options.stream_options()
        self.allow_origins = tuple(allow_origins)
        self.lock = threading.Lock()
        self.decoders = threading.Semaphore(DECODERS)
        self.live_sockets = 0

    def info(self) -> dict:
        rec = self.rec
        return {
            "labels": list(rec.labels),
            "model": rec.model_path.rsplit("/", 1)[-1],
            "detector": rec.detector.name,
            "limits": LIMITS,
            "palette": {k: colour_of(k, rec.labels) for k in rec.labels},
        }

    def analyze_photo(self, data: bytes, name: str) -> dict:
        with self.decoders:
            image = decode_image(data, name, LIMITS["upload_pixels"], SERVER_LIMIT)
        with self.lock:  # a photo, searched at the size predict searches it
            (result,) = self.rec.stream(image, **self.stream_options)
        quality = [cv2.IMWRITE_JPEG_QUALITY, ANNOTATED_JPEG_QUALITY]
        ok, jpg = cv2.imencode(".jpg", result.draw(), quality)
        return {
            "name": name,
            "width": image.shape[1],
            "height": image.shape[0],
            "faces": records(name, result.faces, detector=self.rec.detector.name),
            "annotated": "data:image/jpeg;base64," + base64.b64encode(jpg.tobytes()).decode(),
        }

    def analyze_clip(self, data: bytes, name: str, gone: threading.Event, plan=None) -> dict:
        from ..sources import video_info
        from ..study.report import Collector, render_report

        suffix = os.path.splitext(name)[1].lower() or ".mp4"
        with tempfile.TemporaryDirectory(prefix="mobilefer-clip-") as tmp:
            path = os.path.join(tmp, "clip" + suffix)
            with open(path, "wb") as f:
                f.write(data)
            count, fps, (w, h) = video_info(path)
            if w <= 0 or h <= 0:
                raise InputError(f"{name}: not a readable video (no frame size)")
            # A browser's MediaRecorder writes WebM without a frame count: such a clip is held
            # to the limits by the frames it decodes and their times, below.
            if count > 0 and fps > 0 and count / fps > LIMITS["clip_seconds"]:
                raise LimitError(
                    f"{name}: {count / fps:.0f} s is over the limit of "
                    f"{LIMITS['clip_seconds']} s; cut the clip"
                )
            if w * h > LIMITS["frame_pixels"]:
                raise LimitError(
                    f"{name}: {w}x{h} frames are over the limit of 1920x1080; scale the clip down"
                )
            collector, frames = Collector(), self.rec.stream(path, **self.stream_options)
            for decoded in itertools.count():
                if decoded >= LIMITS["clip_frames"]:  # the header's rate may lie
                    raise LimitError(
                        f"{name}: over the limit of {LIMITS['clip_frames']:,} frames; cut the clip"
                    )
                if gone.is_set():
                    raise InputError(f"{name}: the client went away")
                with self.lock:  # one frame at a time, between live clients' frames
                    result = next(frames, None)
                if result is None:
                    break
                if result.error:
                    raise InputError(result.error.replace(path, name))
                if (result.time or 0) > LIMITS["clip_seconds"]:
                    raise LimitError(
                        f"{name}: over the limit of {LIMITS['clip_seconds']} s; cut the clip"
                    )
                collector.add(replace(result, source=name))
        page, clips, _ = render_report(collector, plan, cancelled=gone.is_set)
        return {
            "name": name,
            "frames": clips[0].frames if clips else 0,
            "tracks": sum(len(c.tracks) for c in clips),
            "html": page,
        }


def has_report_extra() -> bool:
    """Whether plotly (the ``[report]`` extra) is installed: reports need it."""
    try:
        import plotly  # noqa: F401
    except ImportError:
        return False
    return True


def report_collector():
    """A report Collector, or None without the ``[report]`` extra (the live tab works without)."""
    if not has_report_extra():
        return None
    from ..study.report import Collector

    return Collector()
