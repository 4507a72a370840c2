"""The web app: one page, a photo endpoint and a live WebSocket, over the public API.

Routes:

- ``GET /``: the page (Live, Timeline, Photos); ``GET /static/...``: its script and styles.
- ``GET /report-frame``: a sandboxed page that shows the clip report the page posts to it.
- ``GET /api/info``: labels, model, detector and the limits below, as JSON.
- ``POST /api/photo?name=NAME``: the raw bytes of one image file as the body. Answers
  ``{"name", "width", "height", "faces": [records], "annotated": "data:image/jpeg;base64,..."}``
  or ``{"error": "..."}`` with status 400 (unreadable), 413 (too large) or 415 (not an image).
- ``POST /api/clip?name=NAME[&events=CSV&baseline=EVENT]``: the raw bytes of one video file
  (``events``: the text of an events file, :func:`mobilefer.events.read_events`'s format, at
  most 8 KB; its events are marked in the report); answers ``{"name", "frames",
  "tracks", "html"}`` with the page of ``mobilefer report`` (or ``{"error"}``, 400, 413 or 501
  without the ``[report]`` extra). The video is written to a temporary file that is always
  removed; its size, duration and frame size are checked before any frame is analysed.
  On the live socket, the text message ``report`` answers ``{"report": html, "tracks"}``: the
  same page for this connection's session so far; ``calibrate`` answers ``{"calibration":
  "collecting"}`` and the next 2 s of frames are the person's neutral face: frame replies say
  ``"calibration": "collecting"``, then ``"on"`` (every face calibrated from then on) or
  ``"failed"`` with an error.
- ``WS /ws/live``: the client sends one JPEG or PNG frame (binary) at a time and gets
  ``{"frame", "faces": [records with track_id], "ms"}`` back (or ``{"frame", "error"}``); each
  connection has its own tracker and smoothing, freed when it closes. Only pages of the
  server's own origin (and those of ``allow_origins``) may open it: any page open in the
  user's browser could otherwise drive the demo.

Records are those of ``mobilefer predict`` (:mod:`mobilefer.records`). Recognition runs in a worker
thread, one frame at a time across all clients (the detector keeps per-size state); at most
:data:`DECODERS` uploads are decoded at once, and an upload whose body stalls for
:data:`BODY_TIMEOUT` seconds is refused, so that neither holds memory without bound.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import replace
from importlib import resources

import cv2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..errors import InputError, LimitError
from ..image import decode_image
from ..labels import colour_of
from ..options import Options
from ..recognizer import Recognizer, calibrated
from ..records import records
from .doors import FRAME_PATH, Guard, name_problem, same_origin, upload_type_problem

log = logging.getLogger(__name__)

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
#: Seconds of live frames a calibration gathers the person's neutral face from.
CALIBRATION_SECONDS = 2.0
#: Seconds an upload's body may take to arrive in full.
BODY_TIMEOUT = 30.0
#: Uploads and frames decoded at the same time (each photo may take ~300 MB while decoded).
DECODERS = 2
#: JPEG quality of the annotated photo sent back.
ANNOTATED_JPEG_QUALITY = 88
#: What a refused oversized image is told (the server has no option to raise its limits).
SERVER_LIMIT = "shrink it; this server takes images of at most the pixels /api/info states"
#: The formats the live endpoint takes, by their first bytes.
LIVE_FORMATS = {b"\xff\xd8": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG"}


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
        return {"labels": list(rec.labels), "model": rec.model_path.rsplit("/", 1)[-1],
                "detector": rec.detector.name, "limits": LIMITS,
                "palette": {k: colour_of(k, rec.labels) for k in rec.labels}}  # fmt: skip

    def analyze_photo(self, data: bytes, name: str) -> dict:
        with self.decoders:
            image = decode_image(data, name, LIMITS["upload_pixels"], SERVER_LIMIT)
        with self.lock:  # a photo, searched at the size predict searches it
            (result,) = self.rec.stream(image, **self.stream_options)
        quality = [cv2.IMWRITE_JPEG_QUALITY, ANNOTATED_JPEG_QUALITY]
        ok, jpg = cv2.imencode(".jpg", result.draw(), quality)
        return {
            "name": name, "width": image.shape[1], "height": image.shape[0],
            "faces": records(name, result.faces, detector=self.rec.detector.name),
            "annotated": "data:image/jpeg;base64," + base64.b64encode(jpg.tobytes()).decode(),
        }  # fmt: skip

    def analyze_clip(self, data: bytes, name: str, gone: threading.Event, plan=None) -> dict:
        from ..report import Collector, render_report
        from ..sources import video_info

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
                raise LimitError(f"{name}: {count / fps:.0f} s is over the limit of "
                                 f"{LIMITS['clip_seconds']} s; cut the clip")  # fmt: skip
            if w * h > LIMITS["frame_pixels"]:
                raise LimitError(f"{name}: {w}x{h} frames are over the limit of 1920x1080; "
                                 "scale the clip down")  # fmt: skip
            collector, frames = Collector(), self.rec.stream(path, **self.stream_options)
            for decoded in itertools.count():
                if decoded >= LIMITS["clip_frames"]:  # the header's rate may lie
                    raise LimitError(f"{name}: over the limit of {LIMITS['clip_frames']:,} "
                                     "frames; cut the clip")  # fmt: skip
                if gone.is_set():
                    raise InputError(f"{name}: the client went away")
                with self.lock:  # one frame at a time, between live clients' frames
                    result = next(frames, None)
                if result is None:
                    break
                if result.error:
                    raise InputError(result.error.replace(path, name))
                if (result.time or 0) > LIMITS["clip_seconds"]:
                    raise LimitError(f"{name}: over the limit of {LIMITS['clip_seconds']} s; "
                                     "cut the clip")  # fmt: skip
                collector.add(replace(result, source=name))
        page, clips, _ = render_report(collector, plan, cancelled=gone.is_set)
        return {"name": name, "frames": clips[0].frames if clips else 0,
                "tracks": sum(len(c.tracks) for c in clips), "html": page}  # fmt: skip


class LiveSession:
    """One live connection: its tracks and smoothing, what its report is made of, and its
    calibration: after the text message ``calibrate``, the largest face of the next
    :data:`CALIBRATION_SECONDS` of frames is the person's neutral face, and every face is
    calibrated on it from then on (:mod:`mobilefer.calibration`)."""

    def __init__(self, demo: Demo) -> None:
        self.demo = demo
        self.tracked = demo.rec.session("webcam", "webcam", **demo.options.session_options())
        self.report = report_collector()
        self.started = time.perf_counter()
        self.calibration = None
        self.neutral: list | None = None  # faces gathered while calibrating
        self.until = 0.0

    def start_calibration(self) -> dict:
        self.neutral, self.until = [], time.perf_counter() + CALIBRATION_SECONDS
        return {"calibration": "collecting", "seconds": CALIBRATION_SECONDS}

    def _calibrating(self, result) -> dict | None:
        """Gather the largest scored face while calibrating; when the time is up, the
        calibration (or why there is none) as a reply field."""
        if self.neutral is None:
            return None
        scored = [f for f in result.faces if f.scores is not None]
        if scored:
            self.neutral.append(max(scored, key=lambda f: f.box[2] * f.box[3]))
        if time.perf_counter() < self.until:
            return {"calibration": "collecting"}
        faces, self.neutral = self.neutral, None
        if not faces:
            return {"calibration": "failed", "error": "no face was in view while calibrating; "
                    "face the camera with a neutral face and try again"}  # fmt: skip
        self.calibration = self.demo.rec.calibrate(faces)
        return {"calibration": "on", "calibrated_frames": len(faces)}

    def step(self, data: bytes, frame: int) -> dict:
        """The reply to one frame (JPEG or PNG bytes)."""
        demo = self.demo
        if not any(data.startswith(magic) for magic in LIVE_FORMATS):
            raise InputError(f"frame {frame}: not a JPEG or PNG; send frames as one of these")
        with demo.decoders:
            image = decode_image(data, f"frame {frame}", LIMITS["frame_pixels"], SERVER_LIMIT)
        t0 = time.perf_counter()
        with demo.lock:
            result = self.tracked.update(image, frame, t0 - self.started)
        ms = round(1000 * (time.perf_counter() - t0), 1)
        state = self._calibrating(result)
        if self.calibration is not None:
            result = calibrated(result, self.calibration)
        if self.report is not None and frame < LIMITS["live_report_frames"]:
            self.report.add(result)  # bounded: a long session's report keeps its start
        recs = records("webcam", result.faces, frame, None, demo.rec.detector.name, empty=False)
        return {"frame": frame, "width": image.shape[1], "height": image.shape[0],
                "faces": recs, "ms": ms, **(state or {})}  # fmt: skip

    def report_page(self) -> dict:
        if self.report is None:
            return {"error": "session reports need the [report] extra: pip install -e '.[report]'"}
        from ..report import render_report

        page, clips, _ = render_report(self.report)
        return {"report": page, "tracks": sum(len(c.tracks) for c in clips)}


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
    from ..report import Collector

    return Collector()


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def upload_problem(request: Request, name: str, wanted: str, limit: int) -> JSONResponse | None:
    """The error response for an upload refused before its body is read: a name with control
    characters (400), the wrong type (415), a declared size over ``limit`` (413)."""
    if name_problem(name):
        return error(400, name_problem(name))
    kind = upload_type_problem(request.headers.get("content-type", ""), name, wanted)
    if kind:
        return error(415, kind)
    length = request.headers.get("content-length") or "0"
    declared = int(length) if length.isdigit() else 0
    if declared > limit:
        return error(413, f"{name}: {declared:,} bytes is over the limit of {limit:,}")
    return None


async def read_body(request: Request, name: str, limit: int, seconds: float):
    """The upload's bytes, or the error response: over ``limit`` bytes (413), not all there
    within ``seconds`` (408), or the client gone (logged once)."""
    body = bytearray()
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    return error(413, f"{name}: over the limit of {limit:,} bytes")
    except TimeoutError:
        return error(408, f"{name}: the upload did not arrive within {seconds:g} s")
    except ClientDisconnect:
        log.info("%s: the client went away during its upload", name)
        return Response(status_code=400)
    return bytes(body)


async def page(request: Request):
    return FileResponse(str(STATIC / "index.html"))


#: The report frame's page: it writes the report the Clips tab posts to it (and nothing else:
#: its policy, :data:`mobilefer.serve.doors.FRAME_HEADERS`, sandboxes it).
FRAME_PAGE = """<!doctype html><meta charset=utf-8><title>report</title><script>
addEventListener("message", (e) => {
  if (e.source !== parent || typeof e.data !== "string") return;
  document.open(); document.write(e.data); document.close();
});
</script>"""


async def report_frame(request: Request):
    return HTMLResponse(FRAME_PAGE)


async def api_info(request: Request):
    return JSONResponse(request.app.state.demo.info())


async def api_photo(request: Request):
    demo: Demo = request.app.state.demo
    name = request.query_params.get("name", "photo")[:200]
    refused = upload_problem(request, name, "image", LIMITS["upload_bytes"])
    if refused:
        return refused
    body = await read_body(request, name, LIMITS["upload_bytes"], BODY_TIMEOUT)
    if not isinstance(body, bytes):
        return body  # the error response
    try:
        return JSONResponse(await run_in_threadpool(demo.analyze_photo, body, name))
    except InputError as e:
        return error(e.status, str(e))


def clip_plan(query):
    """The study plan of a clip upload: ``events`` (the CSV text of an events file, at most
    ``LIMITS["events_bytes"]``) and ``baseline``; ``None`` without events."""
    from ..events import StudyPlan, parse_events

    text, baseline = query.get("events"), query.get("baseline") or None
    if not text:
        if baseline:
            raise InputError("baseline goes with an events file")
        return None
    if len(text.encode()) > LIMITS["events_bytes"]:
        raise LimitError(f"the events file is over the limit of {LIMITS['events_bytes']:,} bytes")
    return StudyPlan(parse_events(text), baseline).checked()


async def api_clip(request: Request):
    demo: Demo = request.app.state.demo
    name = request.query_params.get("name", "clip.mp4")[:200]
    if not has_report_extra():
        return error(501, "clip reports need the [report] extra: pip install -e '.[report]'")
    refused = upload_problem(request, name, "video", LIMITS["clip_bytes"])
    if refused:
        return refused
    try:
        plan = clip_plan(request.query_params)
    except InputError as e:
        return error(e.status, str(e))
    body = await read_body(request, name, LIMITS["clip_bytes"], BODY_TIMEOUT * 4)
    if not isinstance(body, bytes):
        return body  # the error response
    if not body:
        return error(400, f"{name}: empty upload")
    try:
        gone = threading.Event()
        work = asyncio.ensure_future(run_in_threadpool(demo.analyze_clip, body, name, gone, plan))
        while not work.done():  # the work stops when the client leaves
            await asyncio.wait({work}, timeout=1.0)
            if not work.done() and await request.is_disconnected():
                gone.set()
        return JSONResponse(work.result())
    except InputError as e:
        return error(e.status, str(e))


async def live(ws: WebSocket):
    demo: Demo = ws.app.state.demo
    if not same_origin(ws.headers.get("origin"), ws.headers.get("host"), demo.allow_origins):
        log.info("refused a live connection from the page at %s", ws.headers.get("origin"))
        await ws.close(code=1008)  # policy violation
        return
    if demo.live_sockets >= LIMITS["live_sockets"]:
        await ws.close(code=1013)  # try again later: pages and uploads keep their room
        return
    await ws.accept()
    session = LiveSession(demo)
    frame = 0
    demo.live_sockets += 1
    try:
        while True:
            try:
                async with asyncio.timeout(LIMITS["live_idle_seconds"]):
                    message = await ws.receive()
            except TimeoutError:
                await ws.close(code=1001)  # idle: it held a connection and sent nothing
                break
            if message["type"] == "websocket.disconnect":
                break
            data = message.get("bytes")
            if data is None and message.get("text") == "report":
                await ws.send_text(json.dumps(await run_in_threadpool(session.report_page)))
                continue
            if data is None and message.get("text") == "calibrate":
                await ws.send_text(json.dumps(session.start_calibration()))
                continue
            if data is None:
                hint = "send frames as binary JPEG or PNG, or the text 'report' or 'calibrate'"
                await ws.send_text(json.dumps({"frame": frame, "error": hint}))
                continue
            if len(data) > LIMITS["frame_bytes"]:
                reply = {"frame": frame, "error": f"frame of {len(data):,} bytes is over "
                         f"the limit of {LIMITS['frame_bytes']:,}"}  # fmt: skip
            else:
                try:
                    reply = await run_in_threadpool(session.step, data, frame)
                except InputError as e:
                    reply = {"frame": frame, "error": str(e)}
            await ws.send_text(json.dumps(reply))
            frame += 1
    except (WebSocketDisconnect, asyncio.CancelledError):
        pass  # the session (this client's tracks and smoothing) ends with this handler
    finally:
        demo.live_sockets -= 1


def create_app(options: Options | Recognizer | None = None, allow_origins=(), hosts=None,
               token: str | None = None):  # fmt: skip
    """The Starlette app around one :class:`Recognizer`: made from ``options`` (an
    :class:`mobilefer.options.Options`, whose stream options photos, clips and live sessions
    follow), or given (with the default stream options). ``allow_origins``: other page origins
    (``http://host:port``) that may open the live WebSocket, beside the server's own.
    ``hosts``: the ``Host`` names it answers to (:func:`serving_hosts`; None: any).
    ``token``: every request must carry it (``?token=``, then a cookie; or ``Authorization:
    Bearer``), for a server other machines can reach. Every response carries a
    Content-Security-Policy, ``nosniff`` and ``frame-ancestors 'none'``
    (:class:`mobilefer.serve.doors.Guard`)."""
    middleware = [Middleware(Guard, token=token)]
    if hosts:
        middleware.insert(0, Middleware(TrustedHostMiddleware, allowed_hosts=list(hosts)))
    app = Starlette(middleware=middleware, routes=[
        Route("/", page),
        Route(FRAME_PATH, report_frame),
        Route("/api/info", api_info),
        Route("/api/photo", api_photo, methods=["POST"]),
        Route("/api/clip", api_clip, methods=["POST"]),
        WebSocketRoute("/ws/live", live),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ])  # fmt: skip
    app.state.demo = Demo(options, allow_origins)
    return app
