"""``serve``: the browser demo."""

from __future__ import annotations

import argparse
import socket
import sys

from .common import err, missing_extra, options_of

#: Connections ``serve`` holds at once; more are answered 503 (stalled uploads hold memory).
SERVE_CONNECTIONS = 64


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..serve import (
            HEADER_SECONDS,
            create_app,
            header_timeout_protocol,
            is_loopback,
            serving_hosts,
        )
    except ImportError as e:
        return missing_extra("serve", "serve", e)

    try:  # bind first: a busy port or an unknown host is a set-up error, before any address
        family, kind, _, _, address = socket.getaddrinfo(
            args.host, args.port, type=socket.SOCK_STREAM
        )[0]
        sock = socket.socket(family, kind)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as e:
        err(f"serve: cannot listen on {args.host} port {args.port} ({e.strerror or e}); "
             "choose another --port, or a --host of this machine")  # fmt: skip
        return 2
    app = create_app(options_of(args), allow_origins=args.allow_origin,
                     hosts=serving_hosts(args.host))
    if not is_loopback(args.host):
        err(f"warning: listening on {args.host}, not only this machine: anyone who can reach "
             f"port {args.port} sees the demo and can send it images")  # fmt: skip
    shown_host = f"[{args.host}]" if ":" in args.host else args.host
    config = uvicorn.Config(app, log_level="warning", limit_concurrency=SERVE_CONNECTIONS,
                            timeout_keep_alive=5, http=header_timeout_protocol(HEADER_SECONDS))
    print(f"mobilefer serve: open http://{shown_host}:{args.port}/ (Ctrl-C stops)",
          file=sys.stderr, flush=True)  # fmt: skip
    uvicorn.Server(config).run(sockets=[sock])
    return 0
