"""FER2013 accuracy of mobilefer and of the peer `fer`, measured in one run, printed as a table.

    python benchmarks/accuracy.py --data ../shared/data/fer2013/fer2013.npz [--split private]
        [--model FILE] [--fer-python /path/to/venv-fer/bin/python]

The peer runs in its own virtual environment (see benchmarks/README.md); without one its row
says so. Both systems classify the same 48x48 faces with their own preprocessing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from fer_peer import run_peer
from mobilefer import EMOTIONS, ExpressionModel
from mobilefer.data import load_fer2013, split_code
from mobilefer.evaluate import evaluate_model, scores
from results import run, write


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", required=True, help="fer2013.npz (the peer reads npz only)")
    ap.add_argument("--split", default="private", choices=["public", "private"])
    ap.add_argument("--model", help="mobilefer model name or file (default: the shipped one)")
    ap.add_argument("--fer-python", default=os.environ.get("FER_PYTHON"), help="the peer's python")
    args = ap.parse_args()

    data = load_fer2013(args.data).split(args.split)
    rows = []
    for flip in (False, True):
        rec = ExpressionModel(args.model, flip_tta=flip)
        t0 = time.perf_counter()
        r = evaluate_model(rec, data)
        name = "mobilefer" + (" + flip TTA" if flip else "")
        if flip == rec.card.flip_tta:
            name += " (as shipped)"
        rows.append((name, r, time.perf_counter() - t0))
    if args.fer_python:
        peer = run_peer(args.fer_python, "accuracy", args.data, str(split_code(args.split)))
        rows.append(
            (
                "fer 25.10.3 (TFLite mini-Xception)",
                scores(data.labels, peer["predictions"]),
                peer["seconds"],
            )
        )
    else:
        print("(fer: no --fer-python given; its row is left out)", file=sys.stderr)

    print(f"FER2013 {args.split} split, {len(data)} faces; {os.cpu_count()} CPU cores")
    print("| system | accuracy | macro-F1 | seconds |")
    print("|---|---|---|---|")
    for name, r, secs in rows:
        print(f"| {name} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {secs:.1f} |")
    print()
    print("| recall per class | " + " | ".join(EMOTIONS) + " |")
    print("|---" * (len(EMOTIONS) + 1) + "|")
    for name, r, _ in rows:
        cells = " | ".join(f"{r['per_class_recall'][k]:.3f}" for k in EMOTIONS)
        print(f"| {name} | {cells} |")
    write(
        f"accuracy-{args.split}",
        {
            "split": args.split,
            "model": args.model or "fer2013",
            "rows": [{"system": name, "seconds": secs, **r} for name, r, secs in rows],
        },
    )


if __name__ == "__main__":
    run(main)
