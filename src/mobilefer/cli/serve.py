"""``serve``: the browser demo."""

from __future__ import annotations

import argparse
import socket
import sys

from .common import err, missing_extra, options_of

#: Names that reach only this machine (not shown as the address to open from elsewhere).
LOOPBACK = ("localhost", "127.0.0.1", "::1", "[::1]")
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
            new_token,
            serving_hosts,
        )
    except ImportError as e:
        return missing_extra("serve", "serve", e)

    if args.token not in ("auto", "off") and (
        len(args.token) < 12
        or not args.token.isprintable()
        or any(c in args.token for c in " ;,&#")
    ):
        err(
            "--token: give at least 12 characters without spaces, ';', ',', '&' or '#', "
            "or auto (a random one), or off"
        )
        return 2
    try:  # bind first: a busy port or an unknown host is a set-up error, before any address
        family, kind, _, _, address = socket.getaddrinfo(
            args.host, args.port, type=socket.SOCK_STREAM
        )[0]
        sock = socket.socket(family, kind)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as e:
        err(
            f"serve: cannot listen on {args.host} port {args.port} ({e.strerror or e}); "
            "choose another --port, or a --host of this machine"
        )
        return 2
    exposed = not is_loopback(args.host)
    token = {"auto": new_token() if exposed else None, "off": None}.get(args.token, args.token)
    hosts = serving_hosts(args.host, args.allow_host)
    app = create_app(options_of(args), allow_origins=args.allow_origin, hosts=hosts, token=token)
    shown_host = f"[{args.host}]" if ":" in args.host else args.host
    if exposed:
        err(
            f"WARNING: listening on {args.host}, not only this machine: anyone who can reach "
            f"port {args.port} can reach the demo. It answers only to the host names "
            f"{', '.join(h for h in hosts if h not in ('::1', '[::1]'))} (add one with "
            "--allow-host)"
            + (
                ", and only to requests with its token (in the address below)"
                if token
                else "; with --token off, to anyone, without a token"
            )
        )
        if args.host in ("0.0.0.0", "::"):
            shown_host = next((h for h in hosts if h not in LOOPBACK), shown_host)
    query = f"?token={token}" if token else ""
    config = uvicorn.Config(
        app,
        log_level="warning",
        limit_concurrency=SERVE_CONNECTIONS,
        timeout_keep_alive=5,
        http=header_timeout_protocol(HEADER_SECONDS),
    )
    print(
        f"mobilefer serve: open http://{shown_host}:{args.port}/{query} (Ctrl-C stops)",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0
