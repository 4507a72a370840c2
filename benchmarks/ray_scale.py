"""Images/s of `mobilefer predict` in one process beside the Ray Data path, as a table.

    python benchmarks/ray_scale.py [--images 2000] [--detector yunet]

Writes ``--images`` 640x480 JPEGs (scikit-image's astronaut() shifted, scaled and lit
differently in each) into a temporary folder, then times, on the same folder: `mobilefer
predict` in one process (the CLI, records to /dev/null), and `mobilefer.distributed.predict`
on a local Ray (``ray.init(num_cpus=2)``) with 1 and 2 actors, its start-up (``ray.init``)
timed apart.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results import run, write
from synthetic import make_images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--detector", default="auto")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_images(folder, args.images)
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "mobilefer",
                "predict",
                str(folder),
                "--detector",
                args.detector,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        secs = time.perf_counter() - t0
        rows.append(("mobilefer predict, one process (CLI, start-up included)", secs))

        import ray

        import mobilefer.distributed as mray
        from mobilefer.options import Options

        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        startup = time.perf_counter() - t0
        for actors in (1, 2):
            t0 = time.perf_counter()
            n = mray.predict(
                str(folder), Options(detector=args.detector), actors=actors, batch_size=32
            ).count()
            rows.append((f"Ray Data, {actors} actor(s) ({n} records)", time.perf_counter() - t0))
        ray.shutdown()
    print(
        f"{args.images} images of 640x480, one face each; {os.cpu_count()} CPU cores; "
        f"ray.init took {startup:.1f} s (not counted below)"
    )
    print("| path | seconds | images/s |")
    print("|---|---|---|")
    for name, secs in rows:
        print(f"| {name} | {secs:.1f} | {args.images / secs:.1f} |")
    write(
        "ray_scale",
        {
            "images": args.images,
            "detector": args.detector,
            "ray_init_s": startup,
            "rows": [
                {"path": name, "seconds": secs, "images_per_s": args.images / secs}
                for name, secs in rows
            ],
        },
    )


if __name__ == "__main__":
    run(main)
