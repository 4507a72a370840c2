"""Participant calibration on posed studio photos: each performer's first neutral photo is the
reference, their other photos are scored, plain and calibrated, through the public API
(``Recognizer.calibrate`` and ``analyze(..., calibration=)``); writes JSON and prints tables.

    python benchmarks/calibration.py [--part val|report] [--model NAME_OR_FILE]
        [--beta B ...] [--floor F ...] [--out FILE]

``--part val`` reads the Taiwanese ``fold=val`` performers (for choosing: rule c1 in
docs/experiments.md), ``--part report`` the report performers (read once per shipped file).
Each photo is classified by its largest face; a photo with no face found counts as wrong, and
a performer whose reference photo has no face is scored plain only (counted in ``no_reference``).
With several ``--beta`` and ``--floor`` values every pair is scored (the rule's grid).
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from mobilefer import EMOTIONS, InputError, Recognizer
from mobilefer.evaluate import scores
from mobilefer.image import read_image
from results import run, write

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
NO_FACE = "no face"


def performers(root: Path, part: str) -> dict[str, list[dict]]:
    """The photos of each performer of one part (``val``: the ``fold=val`` rows of ``choose``),
    in file order."""
    with (root / "taiwanese" / "labels.csv").open(newline="") as f:
        rows = [
            r
            for r in csv.DictReader(f)
            if (
                r["part"] == "report"
                if part == "report"
                else (r["part"], r["fold"]) == ("choose", "val")
            )
        ]
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["performer"], []).append(r)
    return out


def table(y: list[int], pred: list[int | None], labels) -> dict:
    """Accuracy, macro-F1 and per-class recall (a photo with no face counts wrong)."""
    labels = list(labels)
    truth = np.array([labels.index(EMOTIONS[i]) for i in y])
    guess = np.array([len(labels) if p is None else p for p in pred])
    r = scores(truth, guess, labels=[*labels, NO_FACE])
    return {
        "n": len(y),
        "accuracy": r["accuracy"],
        "macro_f1": r["macro_f1"],
        "recall": {k: r["per_class_recall"][k] for k in labels},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", default="val", choices=["val", "report"])
    ap.add_argument("--model", default="fer2013", help="a model name or file")
    ap.add_argument("--beta", nargs="+", type=float, help="powers (default: the library's)")
    ap.add_argument("--floor", nargs="+", type=float, help="floors (default: the library's)")
    ap.add_argument("--ood", default=SHARED / "ood", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, help="JSON file (default: results/calibration-PART.json)")
    args = ap.parse_args()
    if not (args.ood / "taiwanese" / "labels.csv").is_file():
        raise InputError(f"{args.ood}/taiwanese: no labels.csv; pass --ood")
    rec = Recognizer(args.model, threads=args.threads)
    t0 = time.perf_counter()
    plain_y, plain_pred = [], []
    scored = []  # (label, probabilities) of photos whose performer has a reference
    refs = {}
    no_reference = 0
    for who, rows in performers(args.ood, args.part).items():
        neutral = [r for r in rows if EMOTIONS[int(r["label"])] == "neutral"]
        if not neutral:
            continue  # the benchmark is of performers with a neutral photo
        ref_row = neutral[0]
        try:
            refs[who] = rec.calibrate(read_image(args.ood / "taiwanese" / ref_row["file"]))
        except InputError:
            no_reference += 1
        for r in rows:
            if r is ref_row:
                continue
            faces = rec.analyze(read_image(args.ood / "taiwanese" / r["file"]))
            face = max(faces, key=lambda f: f.box[2] * f.box[3]) if faces else None
            y = int(r["label"])
            plain_y.append(y)
            plain_pred.append(None if face is None else rec.labels.index(face.label))
            p = None if face is None else np.array(list(face.scores.values()))
            scored.append((y, p, refs.get(who)))
    runs = []
    for beta in args.beta or [None]:
        for floor in args.floor or [None]:
            pred = []
            for _, p, cal in scored:
                if p is None:
                    pred.append(None)
                    continue
                if cal is not None:
                    cal = replace(
                        cal,
                        **{k: v for k, v in (("beta", beta), ("floor", floor)) if v is not None},
                    )
                    p = cal.apply(p[None])[0]
                pred.append(int(np.argmax(p)))
            one = table([y for y, _, _ in scored], pred, rec.labels)
            used = next(iter(refs.values())) if refs else None
            runs.append(
                {
                    "beta": beta if beta is not None else used and used.beta,
                    "floor": floor if floor is not None else used and used.floor,
                    **one,
                }
            )
    plain = table(plain_y, plain_pred, rec.labels)
    best = max(runs, key=lambda r: ((r["accuracy"] + r["macro_f1"]) / 2, -r["beta"], r["floor"]))
    out = {
        "part": args.part,
        "model": Path(rec.model_path).name,
        "performers": len(refs),
        "no_reference": no_reference,
        "photos": len(scored),
        "plain": plain,
        "calibrated": runs,
        "best": best,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(
        f"Taiwanese {args.part} performers with a neutral photo: {len(refs)}, photos scored "
        f"{len(scored)} (the first neutral photo of each is the reference)\n"
    )
    print("| setting | accuracy | macro-F1 | " + " | ".join(rec.labels) + " |")
    print("|---" * (3 + len(rec.labels)) + "|")
    for name, r in [("plain analyze", plain)] + [
        (f"calibrated, beta {c['beta']}, floor {c['floor']}", c) for c in runs
    ]:
        rec_cells = " | ".join(f"{r['recall'].get(k, 0):.2f}" for k in rec.labels)
        print(f"| {name} | {r['accuracy']:.1%} | {r['macro_f1']:.3f} | {rec_cells} |")
    write(f"calibration-{args.part}", out, args.out)


if __name__ == "__main__":
    run(main)
