"""The peer: the `fer` package (Haar cascade + its quantized TFLite mini-Xception), measured
from inside its own virtual environment (tensorflow-cpu, `fer --no-deps`, opencv-python-headless<5).

Run by accuracy.py and speed.py through ``--fer-python``; prints one JSON object on stdout.

    fer_peer.py accuracy NPZ SPLIT_CODE     predictions for FER2013 faces (48x48 gray)
    fer_peer.py speed VIDEO                 detect_emotions on every frame of a video
"""

from __future__ import annotations

import json
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
    found = 0
    t0 = time.perf_counter()
    for frame in frames:
        found += len(model.detect_emotions(frame)) > 0
    secs = time.perf_counter() - t0
    return {"frames": len(frames), "seconds": secs, "fps": len(frames) / secs, "found": found}


if __name__ == "__main__":
    mode = sys.argv[1]
    result = accuracy(sys.argv[2], int(sys.argv[3])) if mode == "accuracy" else speed(sys.argv[2])
    print(json.dumps(result))
