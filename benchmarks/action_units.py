"""Rules a1 and a2 (docs/experiments.md): each action unit's blendshapes and threshold, chosen on
expression-labelled faces through the EMFACS prototypes, and the proxy's scores.

    python benchmarks/action_units.py --part train   # choose: results/action-units.json
    python benchmarks/action_units.py --part val     # the chosen table on the val folds

A face's unit is "present" when the prototype of its expression holds it
(``mobilefer.action_units.PROTOTYPES``). Faces: the Taiwanese set's whole photos and SFEW's
crops of the fold, our detector (YuNet, largest face), then ``FaceMesh``. ``--part train``
scores every candidate of the rule by ROC-AUC, picks the best (the earlier within 0.005; rule
a2: none under 0.55, no constant one) and its threshold by Youden's J, and writes the table;
``--part val`` reads the table that ships (``mobilefer.action_units.UNITS``) on the val rows
and writes ``results/action-units-val.json``.
Needs the [mesh] extra and $MOBILEFER_SHARED (default ../shared).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import cv2
import numpy as np

from mobilefer.action_units import PROTOTYPES, UNITS, Unit, raw_unit, rescale
from mobilefer.data import EMOTIONS
from mobilefer.detectors import YuNetDetector
from mobilefer.mesh import FaceMesh
from mobilefer.train.recipes import MIXTURE_SOURCES
from mobilefer.train.sources import list_images, source_of
from results import run, write

#: Rule a1's candidates per unit, the name mapping first ("+": averaged).
CANDIDATES = {
    "AU1": ("browInnerUp", "browInnerUp+browOuterUp"),
    "AU2": ("browOuterUp", "browInnerUp+browOuterUp", "browInnerUp"),
    "AU4": ("browDown", "browDown+eyeSquint", "browDown+noseSneer"),
    "AU5": ("eyeWide", "eyeWide+browInnerUp"),
    "AU6": ("cheekSquint", "eyeSquint", "cheekSquint+mouthSmile", "eyeSquint+mouthSmile"),
    "AU7": ("eyeSquint", "cheekSquint", "eyeSquint+browDown"),
    "AU9": ("noseSneer", "mouthUpperUp", "noseSneer+mouthUpperUp", "browDown+mouthUpperUp"),
    "AU10": ("mouthUpperUp", "noseSneer+mouthUpperUp"),
    "AU12": ("mouthSmile", "mouthSmile+cheekSquint"),
    "AU15": ("mouthFrown", "mouthFrown+mouthShrugLower", "mouthFrown+mouthPress"),
    "AU17": ("mouthShrugLower", "mouthShrugLower+mouthShrugUpper", "mouthShrugLower+mouthPress"),
    "AU20": ("mouthStretch", "mouthStretch+jawOpen", "mouthStretch+eyeWide"),
    "AU23": ("mouthPress", "mouthRollLower+mouthRollUpper", "mouthPress+browDown", "mouthPucker"),
    "AU26": ("jawOpen", "jawOpen+mouthLowerDown"),
}
THRESHOLDS = np.round(np.arange(0.02, 0.905, 0.01), 2)
TIE = 0.005
#: Rule a2: below this ROC-AUC the proxy says nothing of a unit (its name's blendshape stays,
#: at 0.5); a candidate whose score spreads less than CONSTANT over the faces is none.
MIN_AUC = 0.55
CONSTANT = 0.01


def faces(fold: str) -> tuple[list[dict], list[str], int]:
    """The blendshapes and expression of every face found in ``fold`` of the two sets."""
    det, mesh = YuNetDetector(), FaceMesh()
    shapes, labels, missed = [], [], 0
    for spec in MIXTURE_SOURCES:
        for path, label in list_images(source_of(spec), fold):
            image = cv2.imread(str(path))
            found = det.detect(image, 0) if image is not None else []
            face = max(found, key=lambda d: d.box[2] * d.box[3]) if found else None
            got = mesh(image, face.box, face.landmarks) if face is not None else None
            if got is None:
                missed += 1
                continue
            shapes.append(got.blendshapes)
            labels.append(EMOTIONS[label])
    return shapes, labels, missed


def auc(score: np.ndarray, truth: np.ndarray) -> float:
    """ROC-AUC by ranks (ties averaged)."""
    from scipy.stats import rankdata

    pos, neg = truth.sum(), (~truth).sum()
    ranks = rankdata(score)
    return float((ranks[truth].sum() - pos * (pos + 1) / 2) / (pos * neg))


def youden(pred: np.ndarray, truth: np.ndarray) -> float:
    """Recall of the present plus recall of the absent, minus 1."""
    return float((pred & truth).sum() / truth.sum() + (~pred & ~truth).sum() / (~truth).sum() - 1)


def f1(pred: np.ndarray, truth: np.ndarray) -> float:
    tp = (pred & truth).sum()
    return float(2 * tp / max(1, pred.sum() + truth.sum()))


def unit_of(candidate: str) -> Unit:
    return Unit(tuple(candidate.split("+")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--part", choices=("train", "val"), required=True)
    args = ap.parse_args()
    os.environ.setdefault(
        "MOBILEFER_SHARED", str(Path(__file__).resolve().parents[1] / "../shared")
    )
    shapes, labels, missed = faces(args.part)
    truth_of = {u: np.array([u in PROTOTYPES[e] for e in labels]) for u in CANDIDATES}
    rows = []
    if args.part == "train":
        for unit, candidates in CANDIDATES.items():
            truth = truth_of[unit]
            scored = []
            for c in candidates:
                raw = np.array([raw_unit(s, unit_of(c)) for s in shapes])
                if np.ptp(raw) >= CONSTANT:
                    scored.append((c, auc(raw, truth), raw))
            best = max((a for _, a, _ in scored), default=0.0)
            if best >= MIN_AUC:
                name, area, raw = next(x for x in scored if x[1] >= best - TIE)
                js = [youden(raw >= t, truth) for t in THRESHOLDS]
                t = float(THRESHOLDS[int(np.argmax(js))])
            else:  # no signal in the proxy: the name's blendshape at 0.5
                name, t = candidates[0], 0.5
                raw = np.array([raw_unit(s, unit_of(name)) for s in shapes])
                area = auc(raw, truth)
            rows.append(
                {
                    "unit": unit,
                    "shapes": name,
                    "threshold": t,
                    "auc": round(area, 4),
                    "f1": round(f1(raw >= t, truth), 4),
                    "chosen": best >= MIN_AUC,
                    "candidates": {c: round(a, 4) for c, a, _ in scored},
                }
            )
    else:
        for unit in CANDIDATES:
            truth, u = truth_of[unit], UNITS[unit]
            raw = np.array([raw_unit(s, u) for s in shapes])
            value = np.array([rescale(r, u.threshold) for r in raw])
            rows.append(
                {
                    "unit": unit,
                    "shapes": "+".join(u.shapes),
                    "threshold": u.threshold,
                    "auc": round(auc(value, truth), 4),
                    "f1": round(f1(value >= 0.5, truth), 4),
                }
            )
    print(f"{len(shapes)} faces of fold={args.part} (no face or mesh: {missed})")
    print("| unit | blendshapes | threshold | proxy ROC-AUC | proxy F1 at 0.5 |")
    print("|---|---|---|---|---|")
    for r in rows:
        cells = f"{r['threshold']:.2f} | {r['auc']:.3f} | {r['f1']:.3f}"
        print(f"| {r['unit']} | {r['shapes']} | {cells} |")
    mean_auc = float(np.mean([r["auc"] for r in rows]))
    mean_f1 = float(np.mean([r["f1"] for r in rows]))
    print(f"\nmean over {len(rows)} units: ROC-AUC {mean_auc:.3f}, F1 {mean_f1:.3f}")
    name = "action-units" if args.part == "train" else "action-units-val"
    write(
        name,
        {
            "rule": "a2",
            "part": args.part,
            "faces": len(shapes),
            "missed": missed,
            "units": rows,
            "mean_auc": mean_auc,
            "mean_f1": mean_f1,
        },
    )


if __name__ == "__main__":
    run(main)
