"""Rule fu1 (docs/experiments.md): the network's log-probabilities and the face mesh's 52
blendshapes fused by a logistic regression, fitted on train faces and scored on the val rows.

    python benchmarks/fusion.py [--model fer2013] [--write FILE]

Fits on the ``fold=train`` Taiwanese photos and SFEW stills (detector, largest face, its mesh)
and 3,000 FER2013 Training faces (the network on the 48x48 crop; the mesh on the crop enlarged
to 128 px in a 32 px replicated border), then scores, beside the plain network in one run,
PublicTest (``classify``: the mesh does not touch crops) and the ``fold=val`` rows as
``domains.py`` does (photos and detected stills through the detector, where mesh mode applies),
plus PublicTest through the enlarged-crop mesh, to report. ``--write`` saves the fusion
(``mobilefer.fusion.Fusion``) for shipping. Writes ``results/fusion-val.json``. Needs the
[mesh] extra, scikit-learn and $MOBILEFER_SHARED (default ../shared).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import cv2
import numpy as np

from mobilefer import EMOTIONS, Recognizer
from mobilefer.data import load_fer2013_with_ferplus
from mobilefer.fusion import Fusion
from mobilefer.image import read_image
from mobilefer.mesh import BLENDSHAPES
from mobilefer.model import model_digest
from mobilefer.train.recipes import MIXTURE_SOURCES
from mobilefer.train.sources import list_images, source_of
from results import run, write

#: FER2013 Training faces in the fit, and how a 48x48 crop is shown to the mesh.
FER_FACES = 3000
SIDE, BORDER = 128, 32
#: The sets of the domain score, as domains.py names them.
SETS = ("fer2013", "taiwanese", "sfew", "sfew_detected")


def crop_mesh(rec: Recognizer, crop: np.ndarray):
    """The mesh of a 48x48 gray crop: enlarged, in a replicated border, the whole crop the box."""
    big = cv2.resize(crop, (SIDE, SIDE), interpolation=cv2.INTER_CUBIC)
    big = cv2.copyMakeBorder(big, BORDER, BORDER, BORDER, BORDER, cv2.BORDER_REPLICATE)
    return rec.mesh(cv2.cvtColor(big, cv2.COLOR_GRAY2BGR), (BORDER, BORDER, SIDE, SIDE))


def shapes_of(mesh) -> np.ndarray | None:
    return None if mesh is None else np.array([mesh.blendshapes[k] for k in BLENDSHAPES])


def photo_rows(rec: Recognizer, paths, labels):
    """Per photo: the largest face's network probabilities and blendshapes (None: no face /
    no mesh), through the detector."""
    probs, shapes = [], []
    for path in paths:
        image = read_image(path)
        dets = rec.detector.detect(image)
        if not dets:
            probs.append(None)
            shapes.append(None)
            continue
        d = max(dets, key=lambda d: d.box[2] * d.box[3])
        p = rec.boxes_proba(image, [d])[0]
        probs.append(p)
        shapes.append(shapes_of(rec.mesh(image, d.box, d.landmarks)))
    return probs, shapes, np.asarray(labels)


def ood(fold: str):
    out = {}
    for spec in MIXTURE_SOURCES:
        items = list_images(source_of(spec), fold)
        out[spec["name"]] = ([p for p, _ in items], [lab for _, lab in items])
    return out


def macro_f1(y, pred) -> tuple[float, float]:
    """Accuracy and macro-F1 over the seven classes; ``None`` (no face) counts wrong."""
    y = np.asarray(y)
    pred = np.array([-1 if p is None else p for p in pred])
    f1s = [
        2 * np.sum((pred == i) & (y == i)) / max(1, np.sum(pred == i) + np.sum(y == i))
        for i in range(len(EMOTIONS))
    ]
    return float(np.mean(pred == y)), float(np.mean(f1s))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="fer2013")
    ap.add_argument("--write", type=Path, help="save the fusion here (to ship it)")
    args = ap.parse_args()
    os.environ.setdefault("MOBILEFER_SHARED", str(Path(__file__).resolve().parents[2] / "shared"))
    shared = Path(os.environ["MOBILEFER_SHARED"])
    from sklearn.linear_model import LogisticRegression

    rec = Recognizer(args.model, mesh=True, threads=2)
    rec.fusion = None  # the plain network's scores
    data = load_fer2013_with_ferplus(shared / "data/fer2013/fer2013.npz")

    # --- the fit: train faces only ---
    feats, ys = [], []
    for name, (paths, labels) in ood("train").items():
        probs, shapes, y = photo_rows(rec, paths, labels)
        for p, s, lab in zip(probs, shapes, y, strict=True):
            if p is not None and s is not None:
                feats.append(Fusion.features(p[None], s[None])[0])
                ys.append(lab)
        print(f"train {name}: {len(paths)} photos", flush=True)
    train = data.split("train")
    step = max(1, len(train) // FER_FACES)
    crops, labels = train.pixels[::step][:FER_FACES], train.labels[::step][:FER_FACES]
    probs = rec.predict_proba(list(crops))
    for crop, p, lab in zip(crops, probs, labels, strict=True):
        s = shapes_of(crop_mesh(rec, crop))
        if s is not None:
            feats.append(Fusion.features(p[None], s[None])[0])
            ys.append(int(lab))
    x, y = np.array(feats), np.array(ys)
    print(f"fit on {len(y)} faces", flush=True)
    fitted = {}
    for name, cols in (("fused", slice(None)), ("log-probabilities alone", slice(0, 7))):
        mean, scale = x[:, cols].mean(0), x[:, cols].std(0) + 1e-6
        lr = LogisticRegression(C=1.0, max_iter=3000).fit((x[:, cols] - mean) / scale, y)
        fitted[name] = (cols, mean, scale, lr)
    cols, mean, scale, lr = fitted["fused"]
    fusion = Fusion(
        tuple(rec.labels),
        model_digest(rec.model_path),
        mean,
        scale,
        lr.coef_,
        lr.intercept_,
        {"rule": "fu1", "faces": int(len(y)), "C": 1.0},
    )

    def predict(name, p, s):
        if p is None:
            return None
        if name == "network" or s is None:
            return int(np.argmax(p))
        cols, mean, scale, lr = fitted[name]
        f = Fusion.features(p[None], s[None])[:, cols]
        return int(lr.predict((f - mean) / scale)[0])

    # --- the val rows, as domains.py reads them ---
    public = data.split("public")
    p_public = rec.predict_proba(list(public.pixels))
    s_public = [shapes_of(crop_mesh(rec, c)) for c in public.pixels]
    sets = {}
    for name, (paths, labels) in ood("val").items():
        sets[name] = photo_rows(rec, paths, labels)
    sfew_paths, sfew_labels = ood("val")["sfew"]
    p_sfew = rec.predict_proba([read_image(p) for p in sfew_paths])
    methods = ("network", "fused", "log-probabilities alone")
    rows = []
    for m in methods:
        crops_only = [int(np.argmax(p)) for p in p_public]  # classify: the mesh does not apply
        row = {"method": m}
        row["fer2013"] = macro_f1(public.labels, crops_only)
        row["taiwanese"] = macro_f1(
            sets["taiwanese"][2],
            [predict(m, p, s) for p, s in zip(*sets["taiwanese"][:2], strict=True)],
        )
        row["sfew"] = macro_f1(np.asarray(sfew_labels), [int(np.argmax(p)) for p in p_sfew])
        row["sfew_detected"] = macro_f1(
            sets["sfew"][2], [predict(m, p, s) for p, s in zip(*sets["sfew"][:2], strict=True)]
        )
        row["domain_score"] = float(np.mean([row[k][1] for k in SETS]))
        row["fer2013_through_mesh"] = macro_f1(
            public.labels, [predict(m, p, s) for p, s in zip(p_public, s_public, strict=True)]
        )
        rows.append(row)
    base = rows[0]
    fused = rows[1]
    falls = {k: base[k][0] - fused[k][0] for k in SETS}
    ships = fused["domain_score"] > base["domain_score"] and max(falls.values()) <= 0.01
    print("| method | " + " | ".join(SETS) + " | domain score | PublicTest through the mesh |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        cells = " | ".join(f"{r[k][0]:.1%} ({r[k][1]:.3f})" for k in SETS)
        mesh = r["fer2013_through_mesh"]
        print(f"| {r['method']} | {cells} | {r['domain_score']:.4f} | {mesh[0]:.1%} |")
    verdict = "ships" if ships else "does not ship"
    print(f"\nrule fu1: {verdict} (largest fall of a set's accuracy {max(falls.values()):.2%})")
    if args.write:
        args.write.write_text(fusion.to_json() + "\n")
        print(f"fusion written: {args.write}")
    write("fusion-val", {"rule": "fu1", "faces": int(len(y)), "rows": rows, "ships": bool(ships)})


if __name__ == "__main__":
    run(main)
