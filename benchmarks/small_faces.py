"""Small faces in a 12-megapixel photo: found or not, and the time it takes, as a table.

    python benchmarks/small_faces.py [--repeat 3]

One 4032x3024 frame per face size (40, 60, 100, 300 px wide), made from scikit-image's
astronaut() head pasted on a gray background. Each detector runs at the default detection size
for such a photo (``mobilefer.detectors.image_detect_size``: 2016 px) and at the old fixed 640 px;
times are the median of ``--repeat`` detections of the whole frame.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from mobilefer.detectors import create_detector, image_detect_size
from results import run, write
from synthetic import small_face_photo

SIZES = (40, 60, 100, 300)


def found(dets, region) -> bool:
    x, y, w, h = region
    return any(x <= d.box[0] < x + w and y <= d.box[1] < y + h for d in dets)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    default = image_detect_size(3024, 4032)
    rows, found_rows = [], []
    for name in ("haar", "yunet"):
        det = create_detector(name)
        for size in (default, 640):
            cells = []
            for face_px in SIZES:
                img, region = small_face_photo(face_px)
                times, dets = [], []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    dets = det.detect(img, size)
                    times.append(time.perf_counter() - t0)
                mark = "found" if found(dets, region) else "missed"
                cells.append(f"{mark}, {1000 * statistics.median(times):.0f} ms")
            label = "default" if size == default else "old default"
            rows.append((f"{name} at {size} px ({label})", cells))
            faces = dict(zip(map(str, SIZES), cells, strict=True))
            found_rows.append(
                {"detector": name, "detect_size": size, "default": size == default, "faces": faces}
            )
    print(f"4032x3024 photo, one face; {os.cpu_count()} CPU cores; median of {args.repeat}")
    print("| detector, detection size | " + " | ".join(f"{s} px face" for s in SIZES) + " |")
    print("|---" * (len(SIZES) + 1) + "|")
    for name, cells in rows:
        print(f"| {name} | " + " | ".join(cells) + " |")
    write("small_faces", {"photo": "4032x3024", "repeat": args.repeat, "rows": found_rows})


if __name__ == "__main__":
    run(main)
