"""mobilefer serve: HTTP and WebSocket through Starlette's test client, and the page in a real
browser (Debian's chromium driven by Playwright, with a fake camera playing the test photo)."""

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient  # noqa: E402

from mobilefer import Recognizer  # noqa: E402
from mobilefer.serve import LIMITS, create_app, is_loopback  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def app():
    return create_app(Recognizer(detector="haar"))


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def jpg(astronaut) -> bytes:
    import cv2

    return cv2.imencode(".jpg", astronaut)[1].tobytes()


def test_page_and_assets_are_served_by_the_package(client):
    page = client.get("/")
    assert page.status_code == 200 and "mobilefer" in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200
    assert "http://" not in page.text and "https://" not in page.text  # no CDN: works offline
    info = client.get("/api/info").json()
    assert info["labels"][3] == "happy" and info["limits"] == LIMITS


def test_photo_comes_back_annotated(client, jpg):
    r = client.post(
        "/api/photo?name=astronaut.jpg", content=jpg, headers={"content-type": "image/jpeg"}
    )
    assert r.status_code == 200
    body = r.json()
    (face,) = body["faces"]
    assert face["label"] == "happy" and body["name"] == "astronaut.jpg"
    assert body["annotated"].startswith("data:image/jpeg;base64,")


def test_photo_without_a_face(client):
    import cv2

    wall = cv2.imencode(".png", np.full((120, 160, 3), 128, np.uint8))[1].tobytes()
    (rec,) = client.post(
        "/api/photo?name=wall.png", content=wall, headers={"content-type": "image/png"}
    ).json()["faces"]
    assert rec["face"] is None and rec["label"] is None


@pytest.mark.parametrize(
    "body, kind, status, message",
    [
        (b"\xff\xd8\xff\xe0 not really", "image/jpeg", 400, "truncated"),
        (b"hello", "image/png", 400, "not a readable image"),
        (b"", "image/png", 400, "empty file"),
        (b"{}", "application/json", 415, "is not an image"),
    ],
)
def test_bad_uploads_get_a_clear_json_error(client, body, kind, status, message):
    r = client.post("/api/photo?name=x", content=body, headers={"content-type": kind})
    assert r.status_code == status and message in r.json()["error"]


def test_oversized_upload_is_refused(client, monkeypatch, jpg):
    monkeypatch.setitem(LIMITS, "upload_bytes", 1000)
    r = client.post("/api/photo?name=big.jpg", content=jpg, headers={"content-type": "image/jpeg"})
    assert r.status_code == 413 and "over the limit" in r.json()["error"]


def test_two_live_clients_keep_separate_tracks(client, jpg):
    with client.websocket_connect("/ws/live") as a, client.websocket_connect("/ws/live") as b:
        for i in range(3):
            a.send_bytes(jpg)
            ra = json.loads(a.receive_text())
            assert ra["frame"] == i and ra["faces"][0]["track_id"] == 0
        b.send_bytes(jpg)
        rb = json.loads(b.receive_text())
        assert rb["frame"] == 0 and rb["faces"][0]["track_id"] == 0  # its own tracker
        assert rb["faces"][0]["label"] == "happy"
        b.send_bytes(b"broken")
        assert "not a JPEG or PNG" in json.loads(b.receive_text())["error"]
        b.send_bytes(b"\xff\xd8broken")
        assert "truncated" in json.loads(b.receive_text())["error"]
        b.send_text("hello")
        assert "binary" in json.loads(b.receive_text())["error"]
        b.send_bytes(jpg)  # the connection survives bad frames
        assert json.loads(b.receive_text())["faces"]


def test_loopback_by_default():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")


# ----------------------------------------------------------------------------- a real browser
def write_y4m(path: Path, image: np.ndarray, frames: int = 20) -> Path:
    """A Y4M clip (what Chromium's fake camera plays) of one still image, 640x480 4:2:0."""
    import cv2

    img = cv2.resize(image, (640, 480))
    yuv = cv2.cvtColor(img, cv2.COLOR_BGR2YUV_I420).tobytes()
    with open(path, "wb") as f:
        f.write(b"YUV4MPEG2 W640 H480 F10:1 Ip A1:1 C420jpeg\n")
        for _ in range(frames):
            f.write(b"FRAME\n" + yuv)
    return path


def camera_frame(astronaut: np.ndarray) -> np.ndarray:
    """The astronaut on a plain background, as a webcam would frame her (640x480)."""
    import cv2

    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[60:420, 170:470] = cv2.resize(astronaut[0:380, 80:400], (300, 360))
    return frame


def camera_args(clip: Path) -> list[str]:
    """Chromium's flags for a page whose camera plays ``clip`` (a Y4M file)."""
    return [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={clip}",
    ]


def serving(app):
    """A real server (uvicorn in a thread) for ``app``, on a free port: its address."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(app):
    yield from serving(app)


@pytest.fixture(scope="module")
def turned_server():
    """A server whose every face counts as turned away (yunet, ``max_yaw=0``)."""
    yield from serving(create_app(Recognizer(detector="yunet", max_yaw=0)))


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")
@pytest.mark.parametrize("turned", [False, True])
def test_live_page_in_chromium(request, tmp_path, astronaut, turned):
    """The live page; with ``--max-yaw 0`` every face is turned away (not scored): drawn gray,
    listed as such, and the page goes on (a face without scores broke its bars and timeline)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    server = request.getfixturevalue("turned_server" if turned else "server")
    args = camera_args(write_y4m(tmp_path / "camera.y4m", camera_frame(astronaut)))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 900})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server)
            if turned:
                item = page.wait_for_selector("#face-list li", timeout=10_000)
                assert "turned away" in item.text_content()
                page.click("nav button[data-tab=timeline]")
                page.wait_for_timeout(1500)  # frames keep coming, and nothing breaks
                assert not errors, errors
                return
            page.wait_for_selector("#face-list li[data-label=happy]", timeout=10_000)
            page.wait_for_function(
                "parseFloat(document.getElementById('fps').textContent) > 0", timeout=10_000
            )
            assert not errors, errors
            page.screenshot(path=str(tmp_path / "serve.png"))
            if os.environ.get("MOBILEFER_SCREENSHOT"):
                shutil.copy(tmp_path / "serve.png", os.environ["MOBILEFER_SCREENSHOT"])
            page.click("nav button[data-tab=photos]")
            page.set_input_files(
                "#files",
                files=[{"name": "broken.jpg", "mimeType": "image/jpeg", "buffer": b"\xff\xd8junk"}],
            )
            error = page.wait_for_selector("#photo-error:not([hidden])", timeout=10_000)
            assert "broken.jpg" in error.text_content()
        finally:
            browser.close()


# ------------------------------------------------------------ hostile clients and set-up errors
def test_live_socket_refuses_pages_of_other_origins(app, jpg):
    from starlette.websockets import WebSocketDisconnect

    with TestClient(app) as c:
        with pytest.raises(WebSocketDisconnect) as refused:
            with c.websocket_connect("/ws/live", headers={"origin": "http://evil.example"}) as ws:
                ws.send_bytes(jpg)
                ws.receive_text()
        assert refused.value.code == 1008
        with c.websocket_connect("/ws/live", headers={"origin": "http://testserver"}) as ws:
            ws.send_bytes(jpg)
            assert "faces" in json.loads(ws.receive_text())
    allowed = create_app(Recognizer(detector="haar"), allow_origins=["http://localhost:5173"])
    with TestClient(allowed) as c:
        with c.websocket_connect("/ws/live", headers={"origin": "http://localhost:5173"}) as ws:
            ws.send_bytes(jpg)
            assert "faces" in json.loads(ws.receive_text())


def test_live_frames_are_jpeg_or_png_only(client, astronaut):
    import cv2

    tiff = cv2.imencode(".tiff", cv2.resize(astronaut, (64, 64)))[1].tobytes()
    with client.websocket_connect("/ws/live") as ws:
        ws.send_bytes(tiff)
        reply = json.loads(ws.receive_text())
    assert "not a JPEG or PNG" in reply["error"] and "faces" not in reply


def test_the_servers_pixel_limit_advises_what_the_server_allows(client):
    from conftest import png_header

    png = png_header(20000, 20000)
    r = client.post("/api/photo?name=big.png", content=png, headers={"content-type": "image/png"})
    assert r.status_code == 413 and "over the limit" in r.json()["error"]
    assert "--max-pixels" not in r.json()["error"] and "/api/info" in r.json()["error"]


def upload(app, messages, delay=0.0):
    """Drive ``app`` with one POST /api/photo whose body arrives as ``messages`` (``delay``
    seconds before each after the first); returns what the app sent."""
    import asyncio

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/photo",
        "query_string": b"name=a",
        "headers": [(b"content-type", b"image/jpeg")],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 5),
    }
    pending, sent = list(messages), []

    async def receive():
        if len(pending) < len(messages):
            await asyncio.sleep(delay)
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def test_a_stalled_upload_times_out(monkeypatch, jpg):
    import mobilefer.serve.app as serve_app

    monkeypatch.setattr(serve_app, "BODY_TIMEOUT", 0.3)
    app = create_app(Recognizer(detector="haar"))
    sent = upload(
        app,
        [
            {"type": "http.request", "body": jpg[:100], "more_body": True},
            {"type": "http.request", "body": jpg[100:]},
        ],
        delay=1.0,
    )
    assert sent[0]["status"] == 408 and b"did not arrive within 0.3 s" in sent[1]["body"]


def test_a_client_leaving_mid_upload_is_one_log_line(app, caplog):
    with caplog.at_level("INFO", logger="mobilefer.serve.app"):
        upload(
            app,
            [
                {"type": "http.request", "body": b"\xff\xd8", "more_body": True},
                {"type": "http.disconnect"},
            ],
        )
    assert [r.getMessage() for r in caplog.records] == ["a: the client went away during its upload"]


def test_serve_binds_before_it_prints_an_address(capsys):
    from conftest import run

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        for host, p in (("127.0.0.1", port), ("no-such-host.invalid", 8000)):
            code, out, err = run(
                capsys, "serve", "--host", host, "--port", str(p), "--detector", "haar"
            )
            (line,) = err.strip().splitlines()
            assert code == 2 and "cannot listen on" in line and "open http" not in err
    finally:
        busy.close()


# ------------------------------------------------------------------------------- clips
@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory, astronaut) -> bytes:
    from conftest import write_video

    return write_video(
        tmp_path_factory.mktemp("clip") / "clip.mp4", astronaut, frames=15
    ).read_bytes()


def test_a_clip_comes_back_as_a_report(client, clip_bytes):
    import glob
    import tempfile

    pytest.importorskip("plotly")
    before = set(glob.glob(f"{tempfile.gettempdir()}/mobilefer-clip-*"))
    r = client.post(
        "/api/clip?name=interview.mp4", content=clip_bytes, headers={"content-type": "video/mp4"}
    )
    assert r.status_code == 200, r.text[:300]
    body = r.json()
    assert body["name"] == "interview.mp4" and body["frames"] == 15 and body["tracks"] >= 1
    assert "Facial expressions over time" in body["html"] and "interview.mp4" in body["html"]
    assert set(glob.glob(f"{tempfile.gettempdir()}/mobilefer-clip-*")) == before  # removed


@pytest.mark.parametrize(
    "limit, value, status, message",
    [
        (None, None, 400, "not a readable video"),
        ("clip_bytes", 1000, 413, "over the limit"),
        ("clip_seconds", 1, 413, "s is over the limit of 1 s"),
    ],
    ids=["broken", "too-large", "too-long"],
)
def test_bad_clips_get_a_clear_error(app, monkeypatch, clip_bytes, limit, value, status, message):
    pytest.importorskip("plotly")
    import mobilefer.serve.app as serve_app

    if limit:
        monkeypatch.setitem(serve_app.LIMITS, limit, value)
    data = b"not a video at all" if limit is None else clip_bytes
    with TestClient(app) as c:
        r = c.post("/api/clip?name=bad.mp4", content=data, headers={"content-type": "video/mp4"})
    assert r.status_code == status and message in r.json()["error"], r.json()


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")
def test_the_clips_tab_in_chromium(server, tmp_path, clip_bytes):
    pytest.importorskip("plotly")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1000})
            page.goto(server)
            page.click("nav button[data-tab=clips]")
            page.set_input_files(
                "#clip-events",
                files=[
                    {
                        "name": "events.csv",
                        "mimeType": "text/csv",
                        "buffer": b"name,start,end\nintro,0,0.5\nad,0.5,5\n",
                    }
                ],
            )
            page.fill("#clip-baseline", "intro")
            page.set_input_files(
                "#clip-file",
                files=[{"name": "clip.mp4", "mimeType": "video/mp4", "buffer": clip_bytes}],
            )
            page.wait_for_selector("#clip-report:not([hidden])", timeout=60_000)
            frame = page.frame_locator("#clip-report")
            frame.locator(".track").first.wait_for(timeout=20_000)
            frame.locator(".main-svg").first.wait_for(timeout=20_000)  # plotly ran, sandboxed
            assert page.frames[1].evaluate("origin") == "null"  # an origin of its own
            assert frame.locator(".track").count() >= 1
            assert frame.locator("#study").count() == 1  # the events made it a study
            assert frame.locator("table.events").first.inner_text().count("ad") >= 1
            assert page.locator("#clip-download:not([hidden])").count() == 1
            page.screenshot(path=str(tmp_path / "clips.png"))
            page.set_input_files(
                "#clip-file",
                files=[{"name": "broken.mp4", "mimeType": "video/mp4", "buffer": b"junk"}],
            )
            error = page.wait_for_selector("#clip-error:not([hidden])", timeout=30_000)
            assert "broken.mp4" in error.text_content()
        finally:
            browser.close()


@pytest.mark.parametrize(
    "query, status, message",
    [
        ("events=name,start\nad,0", 400, "needs columns name,start,end"),
        ("events=name,start,end\nad,2,1", 400, "needs 0 <= start < end"),
        ("events=name,start,end\nad,0,1&baseline=intro", 400, "'intro' is not an event"),
        ("baseline=intro", 400, "goes with an events file"),
        ("events=" + "x" * 9000, 413, "over the limit"),
    ],
)
def test_a_clips_events_are_checked_before_its_upload(client, clip_bytes, query, status, message):
    pytest.importorskip("plotly")
    from urllib.parse import quote

    encoded = "&".join(k + "=" + quote(v) for k, v in (p.split("=", 1) for p in query.split("&")))
    r = client.post(
        f"/api/clip?name=c.mp4&{encoded}", content=clip_bytes, headers={"content-type": "video/mp4"}
    )
    assert r.status_code == status and message in r.json()["error"]


def live_report(ws, frame: bytes, n: int) -> dict:
    """Send ``n`` frames with a face on a live socket, then ask for the session's report."""
    for _ in range(n):
        ws.send_bytes(frame)
        assert json.loads(ws.receive_text())["faces"]
    ws.send_text("report")
    return json.loads(ws.receive_text())


def test_the_live_session_report(client, jpg):
    pytest.importorskip("plotly")
    with client.websocket_connect("/ws/live") as ws:
        reply = live_report(ws, jpg, 3)
        assert reply["tracks"] == 1 and "Facial expressions over time" in reply["report"]
        ws.send_bytes(jpg)  # the session goes on after its report
        assert json.loads(ws.receive_text())["frame"] == 3


def test_a_page_on_another_host_name_is_refused(tmp_path):
    """DNS rebinding: a page at evil.example whose name resolves to 127.0.0.1 sends
    Host: evil.example; the server answers only to the names of the address it serves."""
    from mobilefer.serve import serving_hosts

    app = create_app(Recognizer(detector="haar"), hosts=serving_hosts("127.0.0.1"))
    assert TestClient(app, base_url="http://127.0.0.1:8000").get("/api/info").status_code == 200
    assert TestClient(app, base_url="http://localhost:8000").get("/api/info").status_code == 200
    evil = TestClient(app, base_url="http://evil.example:8000")
    assert evil.get("/api/info").status_code == 400
    from starlette.testclient import WebSocketDenialResponse

    with pytest.raises(WebSocketDenialResponse):  # the socket is refused before it opens
        with evil.websocket_connect("/ws/live", headers={"origin": "http://evil.example:8000"}):
            pass
    assert "*" not in serving_hosts("0.0.0.0") and serving_hosts("10.0.0.5") == ["10.0.0.5"]


@pytest.mark.parametrize(
    ("path", "headers", "status", "message"),
    [
        ("/api/clip?name=c.mp4", {"content-type": "text/plain"}, 415, "text/plain is not an video"),
        ("/api/photo?name=p.jpg", {}, 415, "no Content-Type is not an image"),
        (
            "/api/clip?name=c.mp4",
            {"content-type": "video/mp4", "content-length": str(10**10)},
            413,
            "over the limit",
        ),
        ("/api/photo?name=a%00b.jpg", {"content-type": "image/jpeg"}, 400, "control characters"),
        ("/api/clip?name=a%0Ab.mp4", {"content-type": "video/mp4"}, 400, "control characters"),
    ],
)
def test_uploads_need_their_type_a_plain_name_and_a_size_within_limits(
    client, path, headers, status, message
):
    r = client.post(path, content=b"\x00" * 64, headers=headers)
    assert r.status_code == status and message in r.json()["error"]


def test_live_sockets_are_capped_and_idle_ones_closed(monkeypatch):
    """64 live sockets that never send held every connection: they are capped below the
    server's connections, and one that sends nothing is closed."""
    from starlette.websockets import WebSocketDisconnect

    import mobilefer.serve.app as serve_app

    monkeypatch.setitem(serve_app.LIMITS, "live_sockets", 1)
    monkeypatch.setitem(serve_app.LIMITS, "live_idle_seconds", 0.5)
    with TestClient(create_app(Recognizer(detector="haar"))) as c:
        with c.websocket_connect("/ws/live") as first:
            with pytest.raises(WebSocketDisconnect) as refused:
                with c.websocket_connect("/ws/live") as second:
                    second.receive_text()
            assert refused.value.code == 1013
            with pytest.raises(WebSocketDisconnect) as idle:
                first.receive_text()  # nothing sent: closed after the idle limit
            assert idle.value.code == 1001
        with c.websocket_connect("/ws/live") as again:  # its place is free again
            again.send_text("hello")
            assert "error" in again.receive_text()


def test_a_clip_is_limited_by_the_frames_it_decodes(app, monkeypatch, clip_bytes):
    """The 5-minute limit trusted the header's rate: a clip claiming 1,000 frames/s held 20,000
    frames. Frames actually decoded are counted."""
    pytest.importorskip("plotly")
    import mobilefer.serve.app as serve_app

    monkeypatch.setitem(serve_app.LIMITS, "clip_frames", 5)
    with TestClient(app) as c:
        r = c.post(
            "/api/clip?name=long.mp4", content=clip_bytes, headers={"content-type": "video/mp4"}
        )
    assert r.status_code == 413 and "over the limit of 5 frames" in r.json()["error"]


def test_limits_are_a_typed_error_with_their_status():
    """The server classified errors by their text ("over the limit"); a LimitError carries 413."""
    from mobilefer import InputError, LimitError
    from mobilefer.image import decode_image

    assert InputError("x").status == 400 and issubclass(LimitError, InputError)
    big = np.zeros((100, 100, 3), np.uint8)
    import cv2

    data = cv2.imencode(".png", big)[1].tobytes()
    with pytest.raises(LimitError) as e:
        decode_image(data, "big.png", 100)
    assert e.value.status == 413


def test_a_connection_that_never_finishes_its_headers_is_closed():
    """64 slow-loris senders held every connection: one that has not sent its headers within
    the limit is closed (uvicorn armed no timer before a first request)."""
    for _ in header_timeout_server():
        pass


def test_a_live_socket_outlives_the_header_timer(caplog):
    """The header timer fired on a live socket open past its deadline: an exception logged."""
    import asyncio
    import logging

    websockets = pytest.importorskip("websockets")

    async def hold(port):
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws/live") as ws:
            await asyncio.sleep(2.0)  # twice the header timeout
            await ws.send("hello")
            return json.loads(await ws.recv())

    with caplog.at_level(logging.ERROR):
        for port in header_timeout_server():
            reply = asyncio.run(hold(port))
    assert "binary" in reply["error"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def header_timeout_server():
    """A real server with a header timeout of 1 s, checked to close a slow sender and answer a
    whole request; yields its port."""
    import socket
    import threading
    import time

    import uvicorn

    from mobilefer.serve import header_timeout_protocol

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        create_app(Recognizer(detector="haar")),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        http=header_timeout_protocol(1.0),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never ends
            t0 = time.perf_counter()
            assert c.recv(100) == b""  # closed by the server
            assert time.perf_counter() - t0 < 4
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:  # a whole request
            c.sendall(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert c.recv(100).startswith(b"HTTP/1.1 200")
        yield port
    finally:
        server.should_exit = True
        thread.join(5)


def test_a_live_sessions_report_keeps_a_bounded_number_of_frames(monkeypatch, jpg):
    """A live connection kept about 1.8 KB per frame for its whole life; its report now keeps
    the first LIMITS['live_report_frames'] frames."""
    pytest.importorskip("plotly")

    import mobilefer.serve.app as serve_app

    monkeypatch.setitem(serve_app.LIMITS, "live_report_frames", 3)
    with TestClient(create_app(Recognizer(detector="haar"))) as c:
        with c.websocket_connect("/ws/live") as ws:
            report = live_report(ws, jpg, 6)
    assert report["tracks"] == 1 and "3 frames" in report["report"]


def test_a_clips_work_stops_when_its_client_leaves(app, server, monkeypatch, tmp_path, astronaut):
    """A client that sends a clip and goes away: the server stops working on it within a few
    seconds (it kept decoding and classifying every frame for minutes)."""
    pytest.importorskip("plotly")
    from urllib.parse import urlparse

    from conftest import write_video

    data = write_video(tmp_path / "long.mp4", astronaut, frames=60).read_bytes()
    rec = app.state.demo.rec
    calls = []

    def slow(image, detections, real=rec.boxes_proba):
        calls.append(time.monotonic())
        time.sleep(0.1)
        return real(image, detections)

    monkeypatch.setattr(rec, "boxes_proba", slow)  # a frame takes 0.1 s: 60 take 6 s
    url = urlparse(server)
    with socket.create_connection((url.hostname, url.port)) as s:
        s.sendall(
            f"POST /api/clip?name=long.mp4 HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Content-Type: video/mp4\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        deadline = time.monotonic() + 20
        while len(calls) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(calls) >= 5, "the clip's work never started"
    left = time.monotonic()  # the client has gone
    time.sleep(3.5)
    after = [t for t in calls if t > left + 2.5]  # checked once a second, then a frame ends
    assert not after and len(calls) < 60, f"{len(calls)} frames, {len(after)} after leaving"


# ------------------------------------------------------------ round four: the page and its doors
HOSTILE_NAME = '<img src=x onerror="window.__xss=1">.jpg'


def test_the_page_never_turns_text_into_markup():
    """Names and labels reach the page from uploads and model files: the script builds
    elements and sets text, never markup."""
    from mobilefer.serve.app import STATIC

    script = (STATIC / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "srcdoc"):
        assert sink not in script, sink
    page = (STATIC / "index.html").read_text()
    assert 'id="clip-report"' in page and 'sandbox="allow-scripts"' in page


def test_every_response_carries_the_security_headers(client, jpg):
    for r in (
        client.get("/"),
        client.get("/static/app.js"),
        client.get("/api/info"),
        client.post("/api/photo?name=a.jpg", content=jpg, headers={"content-type": "image/jpeg"}),
        client.post("/api/photo?name=a.jpg", content=b"x", headers={"content-type": "text/plain"}),
    ):
        policy = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert r.headers["x-content-type-options"] == "nosniff"
    frame = client.get("/report-frame")
    assert frame.headers["content-security-policy"].startswith("sandbox allow-scripts;")
    assert "connect-src" not in frame.headers["content-security-policy"]  # default-src 'none'


def test_a_token_is_asked_of_every_request_when_given():
    from starlette.websockets import WebSocketDisconnect

    app = create_app(Recognizer(detector="haar"), token="a-long-enough-token")
    c = TestClient(app)
    assert c.get("/").status_code == 401 and c.get("/api/info").status_code == 401
    assert "token" in c.get("/api/info").json()["error"]
    with pytest.raises(WebSocketDisconnect) as refused:
        with c.websocket_connect("/ws/live") as ws:
            ws.receive_text()
    assert refused.value.code == 1008
    assert c.get("/?token=wrong-token-value").status_code == 401
    first = c.get("/?token=a-long-enough-token")
    assert first.status_code == 200 and "HttpOnly" in first.headers["set-cookie"]
    assert c.get("/api/info").status_code == 200  # the cookie carries it from now on
    bearer = {"authorization": "Bearer a-long-enough-token"}
    assert TestClient(app).get("/api/info", headers=bearer).status_code == 200


def test_all_interfaces_answer_only_this_machines_names():
    from mobilefer.serve import serving_hosts

    hosts = serving_hosts("0.0.0.0", ["fer.example.org"])
    assert "*" not in hosts and "localhost" in hosts and "fer.example.org" in hosts
    assert socket.gethostname() in hosts
    app = create_app(Recognizer(detector="haar"), hosts=hosts)
    assert TestClient(app, base_url="http://fer.example.org").get("/api/info").status_code == 200
    assert TestClient(app, base_url="http://evil.example").get("/api/info").status_code == 400


@pytest.mark.parametrize(
    "host, token, says, code", [("127.0.0.1", "short", "--token: give at least 12", 2)]
)
def test_serve_refuses_a_weak_token(capsys, host, token, says, code):
    from conftest import run

    got, _, err = run(capsys, "serve", "--host", host, "--port", "1", "--token", token)
    assert got == code and says in err


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")
def test_a_hostile_photo_name_stays_text_in_chromium(server, jpg):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server)
            page.click("nav button[data-tab=photos]")
            page.set_input_files(
                "#files", files=[{"name": HOSTILE_NAME, "mimeType": "image/jpeg", "buffer": jpg}]
            )
            shown = page.wait_for_selector("#results .result strong", timeout=20_000)
            assert shown.text_content() == HOSTILE_NAME  # the name, as text
            page.wait_for_timeout(300)
            assert page.evaluate("window.__xss") is None
            assert page.locator("#results img[src='x']").count() == 0
            assert not errors, errors
        finally:
            browser.close()


# ------------------------------------------------------------------ participant calibration, live
def test_a_live_session_calibrates_on_its_next_frames(monkeypatch, jpg):
    import mobilefer.serve.live as live

    monkeypatch.setattr(live, "CALIBRATION_SECONDS", 0.3)
    with TestClient(create_app(Recognizer(detector="haar"))) as c:
        with c.websocket_connect("/ws/live") as ws:
            ws.send_bytes(jpg)
            before = json.loads(ws.receive_text())["faces"][0]
            assert before["calibrated"] is False
            ws.send_text("calibrate")
            assert json.loads(ws.receive_text())["calibration"] == "collecting"
            states = []
            for _ in range(200):
                ws.send_bytes(jpg)
                reply = json.loads(ws.receive_text())
                states.append(reply.get("calibration"))
                if reply.get("calibration") == "on":
                    break
            assert states[0] == "collecting" and states[-1] == "on"
            ws.send_bytes(jpg)
            after = json.loads(ws.receive_text())["faces"][0]
            assert after["calibrated"] is True
            assert after["scores"]["happy"] < before["scores"]["happy"]  # her smile is her rest
            blank = __import__("cv2").imencode(".jpg", np.full((120, 160, 3), 128, np.uint8))[1]
            ws.send_text("calibrate")
            json.loads(ws.receive_text())
            time.sleep(0.35)
            ws.send_bytes(blank.tobytes())
            failed = json.loads(ws.receive_text())
            assert failed["calibration"] == "failed" and "no face was in view" in failed["error"]


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")
def test_the_calibrate_button_in_chromium(server, tmp_path, astronaut):
    sync_api = pytest.importorskip("playwright.sync_api")
    args = camera_args(write_y4m(tmp_path / "camera.y4m", camera_frame(astronaut)))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 1000})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server)
            page.wait_for_selector("#face-list li[data-label]", timeout=10_000)
            assert page.text_content("#calibration") == "not calibrated"
            page.click("#live-calibrate")
            page.wait_for_selector("#calibration[data-state=collecting]", timeout=5_000)
            page.wait_for_selector("#calibration[data-state=on]", timeout=15_000)
            assert "calibrated on" in page.text_content("#calibration")
            page.wait_for_timeout(500)  # bars keep coming, now calibrated
            assert page.locator("#bars .bar").count() == 7
            page.screenshot(path=str(tmp_path / "calibrated.png"))
            assert not errors, errors
        finally:
            browser.close()
