"""How well yaw, pitch and roll are read: faces turned by known angles, as a table.

    python benchmarks/pose.py [--faces 40]

Each face is a studio photo of the Taiwanese set's ``fold=train`` rows (front view, 256x256; no
model is chosen on these numbers) and scikit-image's astronaut. Each is turned by known angles
(``synthetic.turn_face``: the picture laid on a generic head and rotated; roll is an exact
rotation of the picture) and read by :func:`mobilefer.pose.head_pose` from YuNet's landmarks
(with and without the detector's upright re-detection) and by the face mesh (``--mesh``,
:mod:`mobilefer.mesh`; needs the [mesh] extra). The error of an angle is the reading of the
turned face minus the reading of the face as photographed, minus the turn. What each method
reads on the photos as photographed (front views, the performers facing the camera) is the
other figure: its mean is a method's offset on real front views.
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


def largest(det: YuNetDetector, image: np.ndarray, upright: bool = True):
    found = det.detect(image, 0, upright=upright)
    return max(found, key=lambda d: d.box[2] * d.box[3]) if found else None


def reader(method: str, det: YuNetDetector):
    """``read(image) -> (yaw, pitch, roll) | None`` for a method: ``five points`` (YuNet's
    landmarks, ``mobilefer.pose``), the same without the detector's upright re-detection, or
    ``mesh`` (``mobilefer.mesh``: MediaPipe's face mesh on the face YuNet found)."""
    if method == "mesh":
        from mobilefer.mesh import FaceMesh

        mesh = FaceMesh()

        def read(image):
            d = largest(det, image)
            got = None if d is None else mesh(image, d.box, d.landmarks)
            return None if got is None else got.angles

        return read
    upright = method == "five points"

    def read(image):
        d = largest(det, image, upright)
        return None if d is None else head_pose(d.landmarks)

    return read


def against_mediapipe(python: str, read, n: int, det) -> dict:
    """How far the mesh's angles are from MediaPipe's own facial transformation matrix
    (``mediapipe_peer.py`` in its environment): the mean and largest absolute difference per
    angle on the Taiwanese train photos as photographed, and what each reads for the same
    photos turned 30 degrees either way (a synthetic turn that MediaPipe reads short too)."""
    import json
    import subprocess
    import tempfile

    from mobilefer.mesh import task_path

    root = SHARED / "data/ood/taiwanese"
    with open(root / "labels.csv", newline="") as f:
        paths = [str(root / r["file"]) for r in csv.DictReader(f) if r["fold"] == "train"][:n]
    tmp = Path(tempfile.mkdtemp())
    turned = []
    for i, p in enumerate(paths[:12]):
        image = cv2.imread(p)
        found = largest(det, image)
        for yaw in (-30, 30):
            if found is not None:
                turned.append(str(tmp / f"{i}_{yaw}.png"))
                cv2.imwrite(turned[-1], turn_face(image, found.landmarks, yaw=yaw))
    here = Path(__file__).parent / "mediapipe_peer.py"
    done = subprocess.run(
        [python, str(here), str(task_path()), *paths, *turned],
        capture_output=True,
        text=True,
        check=True,
    )
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    mine = {p: read(cv2.imread(p)) for p in theirs}
    front = np.array([np.subtract(mine[p], theirs[p]) for p in paths if mine.get(p)])
    out = {"faces": len(front)}
    for i, axis in enumerate(("yaw", "pitch", "roll")):
        out[f"{axis}_mean_abs"] = round(float(abs(front[:, i]).mean()), 2)
        out[f"{axis}_max_abs"] = round(float(abs(front[:, i]).max()), 2)
        out[f"{axis}_mean"] = round(float(front[:, i].mean()), 2)
    both = [p for p in turned if p in theirs and mine.get(p)]
    out["turned_30"] = len(both)
    out["mediapipe_reads_30_yaw_as"] = round(float(np.mean([abs(theirs[p][0]) for p in both])), 1)
    out["mesh_reads_30_yaw_as"] = round(float(np.mean([abs(mine[p][0]) for p in both])), 1)
    return out


#: The methods, in the table's order.
METHODS = ("five points", "five points, no upright re-detection", "mesh")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--faces", type=int, default=40)
    ap.add_argument(
        "--mediapipe-python",
        help="MediaPipe's python (mediapipe_peer.py): how far the mesh's angles are from "
        "MediaPipe's own matrix on the front views",
    )
    args = ap.parse_args()
    det = YuNetDetector()
    readers = {m: reader(m, det) for m in METHODS}
    agreement = None
    if args.mediapipe_python:
        agreement = against_mediapipe(args.mediapipe_python, readers["mesh"], args.faces, det)
        print("the mesh against MediaPipe's own matrix, front views:", agreement)
    axes = {"yaw": 0, "pitch": 1, "roll": 2}
    errors = {(m, axis, t): [] for m in METHODS for axis in TURNS for t in TURNS[axis]}
    front = {m: [] for m in METHODS}  # the photos as photographed: front views
    missed = 0
    for _, image in faces(args.faces):
        found = largest(det, image)
        if found is None:
            continue
        base = {m: readers[m](image) for m in METHODS}
        for m in METHODS:
            if base[m] is not None:
                front[m].append(base[m])
        for axis, turns in TURNS.items():
            for t in turns:
                turned = turn_face(image, found.landmarks, **{axis: t})
                for m in METHODS:
                    got = readers[m](turned)
                    if base[m] is None or got is None:
                        missed += 1
                        continue
                    errors[(m, axis, t)].append(got[axes[axis]] - base[m][axes[axis]] - t)
    rows = []
    print(f"{args.faces} faces; error = reading - reading as photographed - turn, degrees")
    print("| axis | turn | " + " | ".join(f"{m}: mean | abs" for m in METHODS) + " |")
    print("|---|---|" + "---|---|" * len(METHODS))
    for axis, turns in TURNS.items():
        for t in turns:
            row = {"axis": axis, "turn": t}
            for m in METHODS:
                e = np.array(errors[(m, axis, t)])
                key = {"five points": "", "mesh": "_mesh"}.get(m, "_without")
                row["n" + key] = len(e)
                row["mean" + key] = round(float(e.mean()), 1)
                row["mae" + key] = round(float(abs(e).mean()), 1)
            rows.append(row)
            cells = " | ".join(
                f"{row['mean' + k]:+.1f} | {row['mae' + k]:.1f}" for k in ("", "_without", "_mesh")
            )
            print(f"| {axis} | {t:+d} | {cells} |")
    summaries = {}
    for m in METHODS:
        summary = {}
        for axis, turns in TURNS.items():
            for lim in (15, 30, 45):
                e = np.concatenate([errors[(m, axis, t)] for t in turns if abs(t) <= lim] or [[]])
                if len(e):
                    summary[f"{axis}_mae_within_{lim}"] = round(float(abs(e).mean()), 1)
                    summary[f"{axis}_p90_within_{lim}"] = round(float(np.percentile(abs(e), 90)), 1)
        views = np.array(front[m], float)
        summary["front_views"] = len(views)
        for axis, i in axes.items():  # what a front view reads: its offset from 0
            summary[f"{axis}_front_mean"] = round(float(views[:, i].mean()), 1)
            summary[f"{axis}_front_mae"] = round(float(abs(views[:, i]).mean()), 1)
        summaries[m] = summary
        print(m, summary)
    write(
        "pose",
        {
            "faces": args.faces,
            "missed": missed,
            "rows": rows,
            "summary": summaries["five points"],
            "summary_mesh": summaries["mesh"],
            "summary_without": summaries["five points, no upright re-detection"],
            "mesh_against_mediapipe": agreement,
        },
    )


if __name__ == "__main__":
    main()
