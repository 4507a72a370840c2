"""Accuracy on the faces users bring: FER2013 beside two sets from elsewhere, for model files side
by side, with the peers `fer` and face-api.js in the same run; writes JSON and prints tables.

    python benchmarks/domains.py [--part val|report] [--model NAME_OR_FILE ...]
        [--margin M ...] [--tau T ...] [--fer-python PY] [--faceapi DIR] [--out FILE]

The four sets, each through the public API as a user would call it:
- FER2013: its 48x48 faces through ``Recognizer.classify`` (PublicTest for ``--part val``,
  PrivateTest for ``report``); an 8-class (FER+) model is scored on the FER+ majority vote.
- Taiwanese: whole 256x256 studio photos; the default detector finds the faces and the largest
  is classified (as ``Recognizer.analyze`` does); a photo with no face found counts as wrong.
- SFEW: film-still face crops, each classified whole (``Recognizer.classify``).
- SFEW detected: the same film stills through the detector, as a user's film still would go.

``--part val`` reads the ``fold=val`` rows of ``../shared/data/ood`` (for choosing; the
``fold=train`` rows may be trained on and are never scored here); ``--part report`` the report
parts and PrivateTest: once per shipped file. The domain score is the mean of the four
macro-F1s: the rule by which every choice is made (docs/experiments.md). ``--margin`` and
``--tau`` score each model at several crop margins and prior corrections (default: as its file
says). The data come from ``--ood`` and ``--data``
(default: ``../shared/data``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fer_peer import run_peer
from mobilefer import EMOTIONS, Recognizer
from mobilefer.data import load_fer2013_with_ferplus
from mobilefer.evaluate import evaluate_model, scores
from mobilefer.image import read_image
from results import machine, run, write

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
NO_FACE = "no face"
SETS = ("fer2013", "taiwanese", "sfew", "sfew_detected")
NAMES = {
    "fer2013": "FER2013",
    "taiwanese": "Taiwanese",
    "sfew": "SFEW crops",
    "sfew_detected": "SFEW detected",
}


def read_set(root: Path, name: str, part: str) -> tuple[list[Path], np.ndarray]:
    """The image paths and FER2013 label indices of one part of an ood set: ``val`` is the
    ``fold=val`` rows of the ``choose`` part, ``report`` the report part."""
    with (root / name / "labels.csv").open(newline="") as f:
        if part == "val":
            rows = [r for r in csv.DictReader(f) if r["part"] == "choose" and r["fold"] == "val"]
        else:
            rows = [r for r in csv.DictReader(f) if r["part"] == part]
    return [root / name / r["file"] for r in rows], np.array([int(r["label"]) for r in rows])


def largest(detections):
    return [max(detections, key=lambda d: d.box[2] * d.box[3])] if detections else []


def score_predictions(y: np.ndarray, pred: list[int | None], labels) -> dict:
    """Scores of predicted label indices (``None``: no face found, which counts as wrong) against
    FER2013 label indices ``y``; the model's ``labels`` are matched to FER2013's by name."""
    labels = list(labels)
    truth = [labels.index(EMOTIONS[i]) for i in y]
    guess = [len(labels) if p is None else p for p in pred]
    r = scores(np.array(truth), np.array(guess), labels=[*labels, NO_FACE])
    r["no_face"] = sum(p is None for p in pred)
    return r


def mobilefer_rows(args, detector, photos, sfew, fer) -> list[dict]:
    """Every model at every margin and tau, on the four sets."""
    rows = []
    for model in args.model:
        for margin in args.margin or [None]:
            for tau in args.tau or [None]:
                rec = Recognizer(
                    model, detector=detector, threads=args.threads, margin=margin, prior_tau=tau
                )
                t0 = time.perf_counter()
                ev = evaluate_model(rec, fer[0] if rec.labels == EMOTIONS else fer[1])
                own = ev["fer2013"] if rec.labels == EMOTIONS else ev["ferplus"]
                tw = [rec.classify_boxes(img, dets) for img, dets in photos["images"]]
                tw_pred = [rec.labels.index(f[0].label) if f else None for f in tw]
                sf = rec.classify(sfew["images"])
                sf_pred = [rec.labels.index(f.label) for f in sf]
                sd = [rec.classify_boxes(img, dets) for img, dets in sfew["detected"]]
                sd_pred = [rec.labels.index(f[0].label) if f else None for f in sd]
                name = Path(rec.model_path).name if Path(model).is_file() else model
                rows.append(
                    {
                        "system": f"mobilefer {name}",
                        "model": str(model),
                        "margin": rec.margin,
                        "prior_tau": rec.card.prior_tau,
                        "flip_tta": rec.flip_tta,
                        "seconds": time.perf_counter() - t0,
                        "fer2013": {k: own[k] for k in own if k not in ("fer2013", "ferplus")},
                        "taiwanese": score_predictions(photos["labels"], tw_pred, rec.labels),
                        "sfew": score_predictions(sfew["labels"], sf_pred, rec.labels),
                        "sfew_detected": score_predictions(sfew["labels"], sd_pred, rec.labels),
                    }
                )
    return rows


def fer_row(args, photo_paths, photos, sfew, fer_split) -> dict:
    t0 = time.perf_counter()
    try:
        peer = run_peer(args.fer_python, "domains", str(args.data), str(fer_split), args.list_file)
    except subprocess.CalledProcessError as e:
        raise PeerError("fer", e.stderr) from None
    labels = EMOTIONS
    return {
        "system": "fer 25.10.3 (Haar + mini-Xception)",
        "seconds": time.perf_counter() - t0,
        "fer2013": scores(args.fer_labels, np.array(peer["fer2013"])),
        "taiwanese": score_predictions(photos["labels"], peer["taiwanese"], labels),
        "sfew": score_predictions(sfew["labels"], peer["sfew"], labels),
        "sfew_detected": score_predictions(
            sfew["labels"], [None if p < 0 else p for p in peer["sfew_detected"]], labels
        ),
    }


def faceapi_row(args, photo_paths, photos, sfew, fer_pixels, fer_labels) -> dict:
    """face-api.js in Node: the images decoded here (RGB), its own pipeline on the photos."""
    import cv2

    items, blobs, offset = [], [], 0
    sets = [
        ("detect", [read_image(p) for p in photo_paths]),
        ("classify", sfew["images"]),
        ("detect", sfew["images"]),
        ("classify", [cv2.cvtColor(p, cv2.COLOR_GRAY2BGR) for p in fer_pixels]),
    ]
    for mode, images in sets:
        for img in images:
            rgb = np.ascontiguousarray(img[:, :, ::-1])
            items.append(
                {"offset": offset, "height": rgb.shape[0], "width": rgb.shape[1], "mode": mode}
            )
            blobs.append(rgb.tobytes())
            offset += rgb.nbytes
    with tempfile.TemporaryDirectory() as tmp:
        manifest, pixels = Path(tmp) / "manifest.json", Path(tmp) / "pixels.bin"
        manifest.write_text(json.dumps(items))
        pixels.write_bytes(b"".join(blobs))
        t0 = time.perf_counter()
        command = ["node", str(HERE / "faceapi_peer.js"), args.faceapi, str(manifest), str(pixels)]
        out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode:
        raise PeerError("face-api.js", out.stderr)
    peer = json.loads(out.stdout.strip().splitlines()[-1])
    pred = [None if p < 0 else p for p in peer["predictions"]]
    n_tw, n_sf = len(photo_paths), len(sfew["images"])
    return {
        "system": f"face-api.js {peer.get('version', '')} (SSD + landmarks + expressions)",
        "seconds": time.perf_counter() - t0,
        "fer2013": scores(fer_labels, np.array(pred[n_tw + 2 * n_sf :])),
        "taiwanese": score_predictions(photos["labels"], pred[:n_tw], EMOTIONS),
        "sfew": score_predictions(sfew["labels"], pred[n_tw : n_tw + n_sf], EMOTIONS),
        "sfew_detected": score_predictions(
            sfew["labels"], pred[n_tw + n_sf : n_tw + 2 * n_sf], EMOTIONS
        ),
    }


class PeerError(Exception):
    """A peer's process failed: its row is left out, the others are kept."""

    def __init__(self, peer: str, stderr: str):
        tail = (stderr or "").strip().splitlines()[-3:]
        super().__init__(f"{peer} failed, its row is left out: " + " / ".join(tail))


def domain_score(row: dict) -> float:
    return float(np.mean([row[s]["macro_f1"] for s in SETS]))


def print_tables(result: dict) -> None:
    part, rows = result["part"], result["rows"]
    fer_name = "PublicTest" if part == "val" else "PrivateTest"
    print(
        f"Faces from elsewhere, part {part!r}: FER2013 {fer_name} ({result['n']['fer2013']}), "
        f"Taiwanese ({result['n']['taiwanese']} photos), SFEW ({result['n']['sfew']} images, "
        f"as crops and through the detector); {result['machine']}"
    )
    print("accuracy (macro-F1); FER+ models on the FER+ majority vote; no face = wrong")
    print()
    print("| system | margin | tau | " + " | ".join(NAMES[s] for s in SETS) + " | domain score |")
    print("|---|---|---|" + "---|" * len(SETS) + "---|")
    for r in rows:
        cells = " | ".join(f"{r[s]['accuracy']:.1%} ({r[s]['macro_f1']:.3f})" for s in SETS)
        margin = f"{r['margin']:g}" if "margin" in r else ""
        tau = f"{r['prior_tau']:g}" if "prior_tau" in r else ""
        print(f"| {r['system']} | {margin} | {tau} | {cells} | {r['domain_score']:.4f} |")
    for s in SETS[1:]:
        print()
        print(f"recall per class, {s}: | system | " + " | ".join(EMOTIONS) + " | no face |")
        for r in rows:
            rec = r[s]["per_class_recall"]
            cells = " | ".join(f"{rec.get(k, 0):.2f}" for k in EMOTIONS)
            print(
                f"| {r['system']} m{r.get('margin', '')} t{r.get('prior_tau', '')} | {cells} "
                f"| {r[s]['no_face']} |"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--part", default="val", choices=["val", "report"])
    ap.add_argument("--model", nargs="+", default=["fer2013"], help="model names or files")
    ap.add_argument("--margin", nargs="+", type=float, help="crop margins (default: the file's)")
    ap.add_argument("--tau", nargs="+", type=float, help="prior corrections (default: the file's)")
    ap.add_argument("--data", default=SHARED / "fer2013" / "fer2013.npz", type=Path)
    ap.add_argument("--ood", default=SHARED / "ood", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--detector",
        default="auto",
        choices=["auto", "haar", "yunet"],
        help="the detector of the whole photos (default: the library's)",
    )
    ap.add_argument("--fer-python", default=os.environ.get("FER_PYTHON"), help="the peer's python")
    ap.add_argument(
        "--faceapi",
        default=os.environ.get("FACEAPI_DIR"),
        help="folder where npm installed face-api.js (see benchmarks/README.md)",
    )
    ap.add_argument("--out", type=Path, help="JSON file (default: results/domains-PART.json)")
    args = ap.parse_args()
    out = args.out

    split = "public" if args.part == "val" else "private"
    data = load_fer2013_with_ferplus(args.data).split(split)
    plain = type(data)(data.pixels, data.labels, data.usage)  # no votes: FER2013 labels only
    photo_paths, photo_labels = read_set(args.ood, "taiwanese", args.part)
    sfew_paths, sfew_labels = read_set(args.ood, "sfew", args.part)
    first = Recognizer(args.model[0], threads=args.threads, detector=args.detector)
    detector = first.detector  # every model sees the same detections of each photo
    images = [read_image(p) for p in photo_paths]
    photos = {
        "images": [(img, largest(detector.detect(img))) for img in images],
        "labels": photo_labels,
    }
    sfew = {"images": [read_image(p) for p in sfew_paths], "labels": sfew_labels}
    sfew["detected"] = [(img, largest(detector.detect(img))) for img in sfew["images"]]

    rows = mobilefer_rows(args, detector, photos, sfew, (plain, data))
    if args.fer_python:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(
                {"taiwanese": [str(p) for p in photo_paths], "sfew": [str(p) for p in sfew_paths]},
                f,
            )
        args.list_file, args.fer_labels = f.name, data.labels
        try:
            rows.append(fer_row(args, photo_paths, photos, sfew, 1 if split == "public" else 2))
        except PeerError as e:
            print(e, file=sys.stderr)
        finally:
            os.unlink(f.name)
    else:
        print("(fer: no --fer-python given; its row is left out)", file=sys.stderr)
    if args.faceapi:
        try:
            rows.append(faceapi_row(args, photo_paths, photos, sfew, data.pixels, data.labels))
        except PeerError as e:
            print(e, file=sys.stderr)
    else:
        print("(face-api.js: no --faceapi given; its row is left out)", file=sys.stderr)
    for r in rows:
        r["domain_score"] = domain_score(r)
    result = {
        "part": args.part,
        "detector": detector.name,
        "machine": machine(),
        "n": {"fer2013": len(data), "taiwanese": len(photo_paths), "sfew": len(sfew_paths)},
        "rows": rows,
    }
    write(f"domains-{args.part}", result, out)
    print_tables(result)


if __name__ == "__main__":
    run(main)
