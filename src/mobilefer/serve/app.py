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
import logging
import threading

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from ..errors import InputError, LimitError
from ..options import Options
from ..recognizer import Recognizer
from .demo import LIMITS, STATIC, Demo, has_report_extra
from .doors import FRAME_PATH, Guard, name_problem, upload_type_problem
from .live import live

log = logging.getLogger(__name__)

#: Seconds an upload's body may take to arrive in full.
BODY_TIMEOUT = 30.0

__all__ = ["LIMITS", "STATIC", "Demo", "create_app"]


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
    from ..study.plan import StudyPlan, parse_events

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
        return error(501, "clip reports need the [report] extra: pip install 'mobilefer[report]'")
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


def create_app(
    options: Options | Recognizer | None = None,
    allow_origins=(),
    hosts=None,
    token: str | None = None,
):
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
    app = Starlette(
        middleware=middleware,
        routes=[
            Route("/", page),
            Route(FRAME_PATH, report_frame),
            Route("/api/info", api_info),
            Route("/api/photo", api_photo, methods=["POST"]),
            Route("/api/clip", api_clip, methods=["POST"]),
            WebSocketRoute("/ws/live", live),
            Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
        ],
    )
    app.state.demo = Demo(options, allow_origins)
    return app
