"""How well yaw, pitch and roll are read: faces turned by known angles, as a table.

    python benchmarks/pose.py [--faces 40]

Each face is a studio photo of the Taiwanese set's ``fold=train`` rows (front view, 256x256; no
model is chosen on these numbers) and scikit-image's astronaut. Each is turned by known angles
(``synthetic.turn_face``: the picture laid on a generic head and rotated; roll is an exact
rotation of the picture) and read by :func:`mobilefer.pose.head_pose` from YuNet's landmarks,
with and without the detector's upright re-detection. The error of an angle is the reading of
the turned face minus the reading of the face as photographed, minus the turn.
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

import cv2
import numpy as np

from mobilefer.detectors import YuNetDetector
from mobilefer.pose import head_pose
from results import write
from synthetic import astronaut, turn_face

#: The turns read, per axis (degrees).
TURNS = {
    "yaw": (-45, -30, -15, 15, 30, 45),
    "pitch": (-20, -10, 10, 20),
    "roll": (-30, -20, -10, 10, 20, 30),
}
SHARED = Path(os.environ.get("MOBILEFER_SHARED", Path(__file__).resolve().parents[1] / "../shared"))


def faces(n: int) -> list[tuple[str, np.ndarray]]:
    """Up to ``n`` photos: the Taiwanese set's train fold (one per performer and expression
    first), then the astronaut."""
    root = SHARED / "data/ood/taiwanese"
    out = [("astronaut", astronaut())]
    with open(root / "labels.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["fold"] == "train"]
    for r in rows[: n - 1]:
        out.append((r["file"], cv2.imread(str(root / r["file"]))))
    return out


def read(det: YuNetDetector, image: np.ndarray, upright: bool):
    found = det.detect(image, 0, upright=upright)
    if not found:
        return None
    best = max(found, key=lambda d: d.box[2] * d.box[3])
    return head_pose(best.landmarks)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--faces", type=int, default=40)
    args = ap.parse_args()
    det = YuNetDetector()
    axes = {"yaw": 0, "pitch": 1, "roll": 2}
    errors = {(up, axis, t): [] for up in (True, False) for axis in TURNS for t in TURNS[axis]}
    missed = 0
    for _, image in faces(args.faces):
        base_marks = det.detect(image, 0)
        if not base_marks:
            continue
        marks = max(base_marks, key=lambda d: d.box[2] * d.box[3]).landmarks
        for axis, turns in TURNS.items():
            for t in turns:
                turned = turn_face(image, marks, **{axis: t})
                for up in (True, False):
                    base, got = read(det, image, up), read(det, turned, up)
                    if base is None or got is None:
                        missed += 1
                        continue
                    errors[(up, axis, t)].append(got[axes[axis]] - base[axes[axis]] - t)
    rows = []
    print(f"{args.faces} faces; error = reading - turn, degrees")
    print("| axis | turn | upright re-detection: mean error | mean abs | without: mean | abs |")
    print("|---|---|---|---|---|---|")
    for axis, turns in TURNS.items():
        for t in turns:
            on, off = np.array(errors[(True, axis, t)]), np.array(errors[(False, axis, t)])
            row = {
                "axis": axis,
                "turn": t,
                "n": len(on),
                "mean": round(float(on.mean()), 1),
                "mae": round(float(abs(on).mean()), 1),
                "mean_without": round(float(off.mean()), 1),
                "mae_without": round(float(abs(off).mean()), 1),
            }
            rows.append(row)
            print(
                f"| {axis} | {t:+d} | {row['mean']:+.1f} | {row['mae']:.1f} | "
                f"{row['mean_without']:+.1f} | {row['mae_without']:.1f} |"
            )
    summary = {}
    for axis, turns in TURNS.items():
        for lim in (15, 30, 45):
            e = np.concatenate([errors[(True, axis, t)] for t in turns if abs(t) <= lim] or [[]])
            if len(e):
                summary[f"{axis}_mae_within_{lim}"] = round(float(abs(e).mean()), 1)
                summary[f"{axis}_p90_within_{lim}"] = round(float(np.percentile(abs(e), 90)), 1)
    print(summary)
    write("pose", {"faces": args.faces, "missed": missed, "rows": rows, "summary": summary})


if __name__ == "__main__":
    main()
