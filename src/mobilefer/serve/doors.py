"""The server's doors: which pages, host names, uploads and names it lets in. Pure functions of
headers and names, tested on their own."""

from __future__ import annotations

import ipaddress
import secrets
import socket
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

#: Seconds a connection may take to send its request's headers (slow-loris senders are closed).
HEADER_SECONDS = 10.0


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def same_origin(origin: str | None, host: str | None, allowed=()) -> bool:
    """Whether a WebSocket's ``Origin`` header may drive the demo: absent (not a browser page),
    the server's own (``http://`` + its ``Host`` header), or one of ``allowed``."""
    if origin is None:
        return True
    origin = origin.rstrip("/").lower()
    own = {f"http://{host}".lower(), f"https://{host}".lower()} if host else set()
    return origin in own or origin in {a.rstrip("/").lower() for a in allowed}


def upload_type_problem(kind: str, name: str, wanted: str) -> str | None:
    """Why an upload's ``Content-Type`` is refused, or None: it must be ``wanted/*`` or
    ``application/octet-stream``. A missing type, or ``text/plain`` (which any page may send
    cross-site without a preflight), is refused."""
    kind = kind.split(";")[0].strip().lower()
    if kind.startswith(f"{wanted}/") or kind == "application/octet-stream":
        return None
    return (
        f"{name}: {kind or 'no Content-Type'} is not an {wanted}; send it with "
        f"Content-Type {wanted}/... or application/octet-stream"
    )


def name_problem(name: str) -> str | None:
    """Why an upload's name is refused (NUL or other control characters), or None."""
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "the name holds control characters; rename the file"
    return None


#: The names of this machine's loopback interface.
LOOPBACK_NAMES = ["localhost", "127.0.0.1", "::1", "[::1]"]


def serving_hosts(host: str, allow=()) -> list[str]:
    """The ``Host`` header names a server listening on ``host`` answers to, and no other (a
    page on another name, a DNS-rebinding attack, is refused): the loopback names for a
    loopback address; the address itself for another; for all interfaces (0.0.0.0, ::), the
    loopback names and this machine's own name and addresses. ``allow`` adds names (a DNS name
    the machine is reached by)."""
    if is_loopback(host):
        names = list(LOOPBACK_NAMES)
    elif host in ("0.0.0.0", "::", ""):
        names = [*LOOPBACK_NAMES, *own_names()]
    else:
        names = [host, f"[{host}]"] if ":" in host else [host]
    return list(dict.fromkeys([*names, *allow]))


def own_names() -> list[str]:
    """This machine's host name, the addresses it resolves to and the address of its default
    route (found without sending anything; IPv6 in brackets)."""
    name = socket.gethostname()
    try:
        found = {a[4][0] for a in socket.getaddrinfo(name, None)}
    except OSError:
        found = set()
    for family, probe in ((socket.AF_INET, "10.255.255.255"), (socket.AF_INET6, "fd00::1")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))  # a UDP "connection" only picks the outgoing address
                found.add(s.getsockname()[0])
        except OSError:
            pass
    return [name, *sorted(f"[{a}]" if ":" in a else a for a in found)]


#: Every response's headers: no page may frame the demo or sniff a type; the page loads
#: nothing but the server's own files, and runs no inline script.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "media-src 'self' blob: mediastream:; connect-src 'self'; frame-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}
#: The report frame's policy: a sandbox (an opaque origin, no cookies, no server) in which the
#: report's own inline scripts (plotly) may run, and which may load and send nothing.
FRAME_HEADERS = {
    "content-security-policy": (
        "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
        "style-src 'unsafe-inline'; img-src data: blob:; font-src data:"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
#: The path of the report frame (:data:`FRAME_HEADERS`).
FRAME_PATH = "/report-frame"
#: The cookie that carries a server's token once its address has been opened with it.
TOKEN_COOKIE = "mobilefer_token"


def new_token() -> str:
    """A random token for a server reachable from other machines."""
    return secrets.token_urlsafe(18)


def token_of(scope: dict) -> str | None:
    """The token a request carries: ``?token=``, ``Authorization: Bearer``, or the cookie."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("token"):
        return query["token"][0]
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    cookie = SimpleCookie()
    try:
        cookie.load(headers.get("cookie", ""))
    except Exception:  # a malformed cookie header carries no token
        return None
    morsel = cookie.get(TOKEN_COOKIE)
    return morsel.value if morsel else None


class Guard:
    """ASGI middleware at the server's door: every HTTP response gets
    :data:`SECURITY_HEADERS` (the report frame :data:`FRAME_HEADERS`); with a ``token``, a
    request without it is refused (HTTP 401, a WebSocket closed with 1008) and a request that
    brings it in its query gets it as an HttpOnly, same-site cookie for the page's later
    requests."""

    def __init__(self, app, token: str | None = None) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        given = token_of(scope) if self.token else None
        if self.token and not (given and secrets.compare_digest(given, self.token)):
            return await self.refuse(scope, send)
        frame = scope["type"] == "http" and scope.get("path") == FRAME_PATH
        extra = dict(FRAME_HEADERS if frame else SECURITY_HEADERS)
        if self.token and b"token=" in scope.get("query_string", b""):
            extra["set-cookie"] = f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                message = {
                    **message,
                    "headers": [
                        *message.get("headers", []),
                        *(
                            (k.encode(), v.encode())
                            for k, v in extra.items()
                            if k.encode() not in have
                        ),
                    ],
                }
            await send(message)

        await self.app(scope, receive, send_with_headers if scope["type"] == "http" else send)

    async def refuse(self, scope, send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = (
            b'{"error": "this server wants its token: open the address mobilefer serve '
            b'printed (with ?token=...)"}'
        )
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *((k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()),
        ]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def header_timeout_protocol(seconds: float):
    """uvicorn's h11 protocol, closing a connection whose first request's headers have not all
    come within ``seconds`` of its opening (slow-loris senders held every connection: uvicorn
    arms its keep-alive timer only after a response, and disarms it on any byte received)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeout(H11Protocol):
        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.header_deadline = self.loop.time() + seconds
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.cycle is None and not getattr(self, "upgraded", False):
                self._arm()  # still no whole request: the deadline stands

        def handle_websocket_upgrade(self, event) -> None:
            # the connection is a WebSocket's from now on: its timer must not fire on it
            self.upgraded = True
            self._unset_keepalive_if_required()
            super().handle_websocket_upgrade(event)

        def _arm(self) -> None:
            if self.timeout_keep_alive_task is None:
                delay = max(0.0, self.header_deadline - self.loop.time())
                self.timeout_keep_alive_task = self.loop.call_later(
                    delay, self.timeout_keep_alive_handler
                )

    return HeaderTimeout
