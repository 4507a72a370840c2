"""``mobilefer serve``: the live webcam demo in any browser (needs the ``[serve]`` extra).

The page streams webcam frames over a WebSocket and draws the faces the server finds; photos
are posted one by one and come back annotated. Everything is served by the package (no CDN);
nothing is written to disk. See :func:`mobilefer.serve.app.create_app` for the routes and limits.
"""

from __future__ import annotations

from .app import LIMITS, create_app
from .doors import HEADER_SECONDS, header_timeout_protocol, is_loopback, new_token, serving_hosts

__all__ = [
    "HEADER_SECONDS",
    "LIMITS",
    "create_app",
    "header_timeout_protocol",
    "is_loopback",
    "new_token",
    "serving_hosts",
]
