"""The live WebSocket: one :class:`LiveSession` per connection (its tracks, smoothing, report
and calibration), and the handler that feeds it frames."""

from __future__ import annotations

import asyncio
import json
import logging
import time

from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..errors import InputError
from ..image import decode_image
from ..recognizer import calibrated
from ..records import records
from .demo import LIMITS, SERVER_LIMIT, Demo, report_collector
from .doors import same_origin

log = logging.getLogger(__name__)

#: Seconds of live frames a calibration gathers the person's neutral face from.
CALIBRATION_SECONDS = 2.0
#: The formats the live endpoint takes, by their first bytes.
LIVE_FORMATS = {b"\xff\xd8": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG"}


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
            return {
                "calibration": "failed",
                "error": "no face was in view while calibrating; "
                "face the camera with a neutral face and try again",
            }
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
        return {
            "frame": frame,
            "width": image.shape[1],
            "height": image.shape[0],
            "faces": recs,
            "ms": ms,
            **(state or {}),
        }

    def report_page(self) -> dict:
        if self.report is None:
            return {
                "error": "session reports need the [report] extra: pip install 'mobilefer[report]'"
            }
        from ..study.report import render_report

        page, clips, _ = render_report(self.report)
        return {"report": page, "tracks": sum(len(c.tracks) for c in clips)}


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
                reply = {
                    "frame": frame,
                    "error": f"frame of {len(data):,} bytes is over "
                    f"the limit of {LIMITS['frame_bytes']:,}",
                }
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
