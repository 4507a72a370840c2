"""The server's doors: which pages, host names, uploads and names it lets in. Pure functions of
headers and names, tested on their own."""

from __future__ import annotations

import ipaddress

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
    return (f"{name}: {kind or 'no Content-Type'} is not an {wanted}; send it with "
            f"Content-Type {wanted}/... or application/octet-stream")


def name_problem(name: str) -> str | None:
    """Why an upload's name is refused (NUL or other control characters), or None."""
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "the name holds control characters; rename the file"
    return None


def serving_hosts(host: str) -> list[str]:
    """The ``Host`` header names a server listening on ``host`` answers to: the loopback names
    for a loopback address, the address itself otherwise, any for all interfaces (0.0.0.0,
    ::). A page on another name (a DNS-rebinding attack) is refused."""
    if is_loopback(host):
        return ["localhost", "127.0.0.1", "::1", "[::1]"]
    if host in ("0.0.0.0", "::", ""):
        return ["*"]
    return [host, f"[{host}]"]


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
            if self.cycle is None:  # still no whole request: the deadline stands
                self._arm()

        def _arm(self) -> None:
            if self.timeout_keep_alive_task is None:
                delay = max(0.0, self.header_deadline - self.loop.time())
                self.timeout_keep_alive_task = self.loop.call_later(
                    delay, self.timeout_keep_alive_handler
                )

    return HeaderTimeout
