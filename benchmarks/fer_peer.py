"""The peer: the `fer` package (Haar cascade + its quantized TFLite mini-Xception), measured
from inside its own virtual environment (tensorflow-cpu, `fer --no-deps`, opencv-python-headless<5).

Run by accuracy.py and speed.py through ``--fer-python``; prints one JSON object on stdout.

    fer_peer.py accuracy NPZ SPLIT_CODE     predictions for FER2013 faces (48x48 gray)
    fer_peer.py speed VIDEO                 detect_emotions on every frame of a video
    fer_peer.py domains NPZ SPLIT_CODE LIST   FER2013 faces, and the photos (detect_emotions,
                                            largest face) and crops (classified whole) of LIST
"""

from __future__ import annotations

import json
import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def run_peer(fer_python: str, *args: str) -> dict:
    """Run this script in the peer's environment (from mobilefer's) and return its JSON."""
    import subprocess

    out = subprocess.run([fer_python, __file__, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def fer_model():
    import logging

    from fer.fer import FER

    logging.getLogger("fer").setLevel(logging.WARNING)
    return FER(mtcnn=False)  # the defaults: Haar cascade, use_tflite=True


def accuracy(npz: str, split: int) -> dict:
    import cv2
    import numpy as np

    with np.load(npz, allow_pickle=False) as z:
        mask = z["usage"] == split
        pixels = z["pixels"][mask]
    model = fer_model()
    # fer's own preprocessing: 64x64 gray, x / 255, then (x - 0.5) * 2; label order is FER2013's
    faces = np.stack([cv2.resize(p, (64, 64)) for p in pixels]).astype("float32") / 255.0
    faces = (faces - 0.5) * 2.0
    t0 = time.perf_counter()
    probs = np.concatenate(
        [model._classify_emotions(faces[i : i + 256]) for i in range(0, len(faces), 256)]
    )
    return {
        "predictions": probs.argmax(1).tolist(),
        "seconds": time.perf_counter() - t0,
        "labels": model._get_labels(),
    }


def classify(model, gray_faces) -> list[int]:
    """fer's own preprocessing (64x64 gray, x / 255, then (x - 0.5) * 2); FER2013's order."""
    import cv2
    import numpy as np

    faces = np.stack([cv2.resize(p, (64, 64)) for p in gray_faces]).astype("float32") / 255.0
    faces = (faces - 0.5) * 2.0
    probs = np.concatenate(
        [model._classify_emotions(faces[i : i + 256]) for i in range(0, len(faces), 256)]
    )
    return probs.argmax(1).tolist()


def domains(npz: str, split: int, list_file: str) -> dict:
    """Predictions (FER2013 index, -1 for no face) on FER2013 faces, whole photos, face crops."""
    import cv2
    import numpy as np

    order = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    with np.load(npz, allow_pickle=False) as z:
        pixels = z["pixels"][z["usage"] == split]
    lists = json.loads(open(list_file).read())
    model = fer_model()

    def largest_face(path: str) -> int:
        faces = model.detect_emotions(cv2.imread(path))
        if not faces:
            return -1
        top = max(faces, key=lambda f: f["box"][2] * f["box"][3])
        return order.index(max(top["emotions"], key=top["emotions"].get))

    crops = [cv2.imread(p, cv2.IMREAD_GRAYSCALE) for p in lists["sfew"]]
    return {
        "fer2013": classify(model, pixels),
        "sfew": classify(model, crops),
        "taiwanese": [largest_face(p) for p in lists["taiwanese"]],
        "sfew_detected": [largest_face(p) for p in lists["sfew"]],
    }


#: Timed passes over the video; the fastest counts (a shared machine's other work only slows).
PASSES = 3


def speed(video: str) -> dict:
    import cv2

    model = fer_model()
    cap = cv2.VideoCapture(video)
    frames = []
    ok, frame = cap.read()
    while ok:
        frames.append(frame)
        ok, frame = cap.read()
    model.detect_emotions(frames[0])  # warm-up
    best = math.inf
    for _ in range(PASSES):  # the best of three passes, as mobilefer's side is timed
        found = 0
        t0 = time.perf_counter()
        for frame in frames:
            found += len(model.detect_emotions(frame)) > 0
        best = min(best, time.perf_counter() - t0)
    return {"frames": len(frames), "seconds": best, "fps": len(frames) / best, "found": found}


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "accuracy":
        result = accuracy(sys.argv[2], int(sys.argv[3]))
    elif mode == "domains":
        result = domains(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        result = speed(sys.argv[2])
    print(json.dumps(result))
