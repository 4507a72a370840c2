"""MediaPipe's own facial transformation matrix, run in MediaPipe's environment (it cannot share
mobilefer's: ``mediapipe`` needs OpenCV 5's contrib package), for ``pose.py``.

    ../venv-mp/bin/python benchmarks/mediapipe_peer.py TASK IMAGE... > angles.json

Prints one JSON object: image path -> ``[yaw, pitch, roll]`` in mobilefer's conventions
(``mobilefer.pose``: yaw toward the image's right, pitch up, roll clockwise), from the matrix of
the first face MediaPipe's Face Landmarker finds (images where it finds none are left out).
Set-up: ``python3 -m venv ../venv-mp && ../venv-mp/bin/pip install mediapipe==1.2.3``.
"""

import json
import math
import sys

import mediapipe as mp
import numpy as np
from mediapipe.tasks import python as tasks
from mediapipe.tasks.python import vision


def angles(matrix) -> list[float]:
    """The matrix (canonical face -> camera, both x right, y up, z toward the viewer) as yaw,
    pitch and roll in camera axes with y down and z away, as mobilefer reads them."""
    flip = np.diag([1.0, -1.0, -1.0])
    rot = flip @ np.asarray(matrix)[:3, :3] @ flip
    rot = rot / np.linalg.norm(rot[:, 0])  # the matrix carries the face's scale
    facing, across = rot @ np.array([0, 0, -1.0]), rot @ np.array([1.0, 0, 0])
    return [
        math.degrees(math.atan2(facing[0], -facing[2])),
        math.degrees(math.atan2(-facing[1], math.hypot(facing[0], facing[2]))),
        math.degrees(math.atan2(across[1], across[0])),
    ]


def main() -> None:
    task, images = sys.argv[1], sys.argv[2:]
    options = vision.FaceLandmarkerOptions(
        base_options=tasks.BaseOptions(model_asset_path=task),
        output_facial_transformation_matrixes=True,
        num_faces=1,
    )
    out = {}
    with vision.FaceLandmarker.create_from_options(options) as landmarker:
        for path in images:
            found = landmarker.detect(mp.Image.create_from_file(path))
            if found.facial_transformation_matrixes:
                out[path] = angles(found.facial_transformation_matrixes[0])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
