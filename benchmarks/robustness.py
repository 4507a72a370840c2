"""Accuracy under the framing, lighting and quality changes that real faces bring, as a table.

    python benchmarks/robustness.py --data ../shared/data/fer2013/fer2013.npz
        [--split public] [--model NAME_OR_FILE ...] [--ferplus ferplus.npz]

Each condition changes every 48x48 face of the split the same way, then the model classifies it
with its own settings (flip TTA, prior correction) as shipped. Zoom z scales the crop side
about the face centre: 0.8 crops in (the face fills 125%), 1.25 shows more around it (the face
fills 80%, edges replicated). Rotation turns the face about its centre; brightness multiplies
the pixels (clipped to 0-255); blur is Gaussian with sigma 1 px; JPEG re-encodes at quality 30.
Each model is scored against its own labels: FER2013's for a 7-class model, the FER+ majority
vote for an 8-class (FER+) one, on the faces that have one (the votes come from --ferplus or a
ferplus.npz beside --data). Choices are made on PublicTest, the default split here.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

import cv2
import numpy as np

from mobilefer import ExpressionModel
from mobilefer.data import load_fer2013_with_ferplus
from mobilefer.errors import OptionError
from mobilefer.evaluate import evaluate_model
from mobilefer.labels import FERPLUS_LABELS
from results import run, write


def affine(faces: np.ndarray, zoom: float = 1.0, angle: float = 0.0) -> np.ndarray:
    m = cv2.getRotationMatrix2D((23.5, 23.5), angle, 1.0 / zoom)
    return np.stack(
        [
            cv2.warpAffine(f, m, (48, 48), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            for f in faces
        ]
    )


def brightness(faces: np.ndarray, factor: float) -> np.ndarray:
    return np.clip(faces.astype(np.float32) * factor, 0, 255).round().astype(np.uint8)


def blur(faces: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in faces])


def jpeg(faces: np.ndarray, quality: int) -> np.ndarray:
    def one(f):
        ok, buf = cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, quality])
        return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)

    return np.stack([one(f) for f in faces])


def eye_align(faces: np.ndarray, detector) -> tuple[np.ndarray, float]:
    """Each face turned so that YuNet's eye landmarks lie level (faces where YuNet finds no
    eyes are left as they are); returns the faces and the share that YuNet found."""
    out, found = faces.copy(), 0
    pad = 40  # YuNet wants some context around a face that fills the whole crop
    for i, f in enumerate(faces):
        big = cv2.resize(f, (160, 160), interpolation=cv2.INTER_LINEAR)
        big = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        dets = detector.detect(cv2.cvtColor(big, cv2.COLOR_GRAY2BGR), 0)
        if not dets or dets[0].landmarks is None:
            continue
        (rx, ry), (lx, ly) = dets[0].landmarks[:2]
        angle = np.degrees(np.arctan2(ly - ry, lx - rx))
        m = cv2.getRotationMatrix2D((23.5, 23.5), angle, 1.0)
        out[i] = cv2.warpAffine(
            f, m, (48, 48), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        found += 1
    return out, found / max(len(faces), 1)


CONDITIONS = {
    "clean": lambda f: f,
    "zoom 0.8 (crop in)": lambda f: affine(f, zoom=0.8),
    "zoom 1.25 (crop out)": lambda f: affine(f, zoom=1.25),
    "rotation +15°": lambda f: affine(f, angle=15),
    "rotation -15°": lambda f: affine(f, angle=-15),
    "brightness x0.6": lambda f: brightness(f, 0.6),
    "brightness x1.4": lambda f: brightness(f, 1.4),
    "Gaussian blur sigma 1": lambda f: blur(f, 1.0),
    "JPEG quality 30": lambda f: jpeg(f, 30),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", required=True, help="fer2013.npz, .csv or folder")
    ap.add_argument("--split", default="public", choices=["public", "private"])
    ap.add_argument("--model", nargs="+", default=["fer2013"], help="model names or files")
    ap.add_argument("--align", action="store_true", help="also with YuNet eye alignment")
    ap.add_argument("--ferplus", help="FER+ votes (default: a ferplus.npz beside --data, if any)")
    args = ap.parse_args()

    data = load_fer2013_with_ferplus(args.data, args.ferplus).split(args.split)
    results: dict[str, dict[str, float]] = {}
    t0 = time.perf_counter()
    changed = {name: change(data.pixels) for name, change in CONDITIONS.items()}
    columns = list(args.model)
    aligned = {}
    if args.align:
        from mobilefer.detectors import create_detector

        yunet = create_detector("yunet")
        for name, faces in changed.items():
            aligned[name], share = eye_align(faces, yunet)
            print(f"{name}: YuNet found eyes in {share:.1%} of the faces")
        columns += [f"{m} + eye alignment" for m in args.model]
    targets = {}
    for model in args.model:
        rec = ExpressionModel(model)
        target = "ferplus" if rec.labels == FERPLUS_LABELS else "fer2013"
        if target == "ferplus" and data.votes is None:
            raise OptionError(
                f"{model} has FER+'s 8 classes and is scored on FER+ votes: pass "
                "--ferplus ferplus.npz"
            )
        for col, faces_of in ((model, changed), (f"{model} + eye alignment", aligned)):
            if not faces_of:
                continue
            targets[col] = target
            results[col] = {
                name: evaluate_model(rec, replace(data, pixels=faces_of[name]))[target]["accuracy"]
                for name in CONDITIONS
            }
    print(
        f"FER2013 {args.split} split, {len(data)} faces, accuracy (change vs clean in points); "
        f"{os.cpu_count()} CPU cores, {time.perf_counter() - t0:.0f} s"
    )
    titles = {"fer2013": "FER2013 labels", "ferplus": "FER+ majority vote"}
    print("| condition | " + " | ".join(f"{c} ({titles[targets[c]]})" for c in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name in CONDITIONS:
        cells = []
        for model in columns:
            acc, clean = results[model][name], results[model]["clean"]
            delta = "" if name == "clean" else f" ({100 * (acc - clean):+.1f})"
            cells.append(f"{100 * acc:.2f}%{delta}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    worst = {m: min(100 * (r[c] - r["clean"]) for c in CONDITIONS) for m, r in results.items()}
    print("| worst drop | " + " | ".join(f"{worst[m]:+.1f}" for m in columns) + " |")
    write(
        f"robustness-{args.split}",
        {
            "split": args.split,
            "faces": len(data),
            "conditions": list(CONDITIONS),
            "columns": [
                {"model": c, "target": targets[c], "accuracy": results[c]} for c in columns
            ],
        },
    )


if __name__ == "__main__":
    run(main)
