"""Load on `mobilefer serve`: 1, 2 and 4 WebSocket clients at once, as a table.

    python benchmarks/serve_load.py [--frames 150] [--detector yunet]

Starts `mobilefer serve` on a free loopback port (127.0.0.1 only), then for each client count
runs that many clients in parallel, each sending the frames of the 640x480 benchmark video
(speed.py's astronaut clip, JPEG-encoded as a browser would) one at a time, waiting for each
reply. Bounded: ``--frames`` per client and 120 s per round. Prints frames/s per client,
p50 and p95 latency (send to reply) and the server's resident memory before and after.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2

from results import run, write
from speed import decode
from synthetic import make_video


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def client(url: str, frames: list[bytes], deadline: float, out: list) -> None:
    from websockets.sync.client import connect

    latencies = []
    with connect(url, max_size=None) as ws:
        t0 = time.perf_counter()
        for data in frames:
            if time.perf_counter() > deadline:
                break
            sent = time.perf_counter()
            ws.send(data)
            ws.recv()
            latencies.append(time.perf_counter() - sent)
        out.append((len(latencies) / (time.perf_counter() - t0), latencies))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--detector", default="auto")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        images, _ = decode(make_video(Path(tmp) / "clip.mp4", args.frames))
    frames = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes() for f in images]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mobilefer",
            "serve",
            "--port",
            str(port),
            "--detector",
            args.detector,
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(200):  # wait for the port
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.1)
        url = f"ws://127.0.0.1:{port}/ws/live"
        rows, start_mb = [], rss_mb(server.pid)
        for n in (1, 2, 4):
            out: list = []
            deadline = time.perf_counter() + 120
            threads = [
                threading.Thread(target=client, args=(url, frames, deadline, out)) for _ in range(n)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            lat = sorted(x for _, ls in out for x in ls)
            fps = statistics.mean(f for f, _ in out)
            p95 = lat[int(0.95 * (len(lat) - 1))]
            rows.append((n, fps, 1e3 * statistics.median(lat), 1e3 * p95, rss_mb(server.pid)))
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(
        f"mobilefer serve, 640x480 JPEG frames, {len(frames)} per client; "
        f"{os.cpu_count()} CPU cores; server memory at start {start_mb:.0f} MB"
    )
    print("| clients | frames/s per client | p50 latency ms | p95 latency ms | server MB after |")
    print("|---|---|---|---|---|")
    for n, fps, p50, p95, mb in rows:
        print(f"| {n} | {fps:.1f} | {p50:.0f} | {p95:.0f} | {mb:.0f} |")
    write(
        "serve_load",
        {
            "frames_per_client": len(frames),
            "detector": args.detector,
            "server_mb_at_start": start_mb,
            "rows": [
                {
                    "clients": n,
                    "fps_per_client": fps,
                    "p50_ms": p50,
                    "p95_ms": p95,
                    "server_mb_after": mb,
                }
                for n, fps, p50, p95, mb in rows
            ],
        },
    )


if __name__ == "__main__":
    run(main)
