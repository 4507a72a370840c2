"""Which way a face looks: yaw, pitch and roll from YuNet's five landmarks.

:func:`head_pose` fits a generic 3D face (five points, millimetres; :data:`FACE_3D`) to the
landmarks with ``cv2.solvePnP``, with a camera centred on the face whose focal length puts the
face at :data:`DISTANCE_MM` (62 cm, a person at a webcam). The angles are the face's turn from
looking straight along the line of sight, in degrees:

- ``yaw`` > 0: the face turns toward the image's right (the person's left);
- ``pitch`` > 0: the face turns up (chin up);
- ``roll`` > 0: the head tilts so that the eye on the image's right is lower (clockwise).

Their error, measured on synthetic rotations of real faces, is in ``results/pose.json``
(``benchmarks/pose.py``) and the README. Haar gives no landmarks, hence no angles.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

#: A generic face in camera axes (x to the image's right, y down, z away from the camera), the
#: nose tip at the origin: right eye, left eye, nose tip, right and left mouth corner, in mm
#: ("right" is the person's right), as in the landmarks' order. x and y are where YuNet puts
#: its points on a frontal face (their mean over the 466 photos of the Taiwanese set's train
#: fold, eyes 62 mm apart); z, how far each lies behind the nose tip, is anthropometric.
FACE_3D = np.array(
    [
        [-31.0, -34.0, 27.0],
        [31.0, -34.0, 27.0],
        [0.0, 0.0, 0.0],
        [-27.0, 23.0, 25.0],
        [27.0, 23.0, 25.0],
    ],
    dtype=np.float64,
)
#: The distance assumed between camera and face: it sets the perspective (mm).
DISTANCE_MM = 620.0
#: The eyes' distance in :data:`FACE_3D` (mm).
_EYES_MM = float(FACE_3D[1, 0] - FACE_3D[0, 0])


def head_pose(landmarks) -> tuple[float, float, float] | None:
    """``(yaw, pitch, roll)`` in degrees (module docstring) of a face from its five landmarks
    (right eye, left eye, nose tip, right and left mouth corner, ``(x, y)`` pixels, as YuNet
    gives them); ``None`` when there are no landmarks or they cannot be fitted (eyes on top of
    each other)."""
    if landmarks is None:
        return None
    pts = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    if pts.shape != (5, 2) or not np.isfinite(pts).all():
        return None
    eyes = float(np.hypot(*(pts[1] - pts[0])))
    if eyes < 1.0:
        return None
    focal = DISTANCE_MM * eyes / _EYES_MM
    centre = pts.mean(axis=0)
    camera = np.array([[focal, 0, centre[0]], [0, focal, centre[1]], [0, 0, 1]], np.float64)
    rvec = np.zeros((3, 1))
    tvec = np.array([[0.0], [0.0], [DISTANCE_MM]])
    ok, rvec, tvec = cv2.solvePnP(
        FACE_3D, pts, camera, None, rvec, tvec, useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE
    )
    if not ok:
        return None
    rot, _ = cv2.Rodrigues(rvec)
    facing = rot @ np.array([0.0, 0.0, -1.0])  # where the face points, toward the camera: -z
    across = rot @ np.array([1.0, 0.0, 0.0])  # from the right eye to the left
    yaw = math.degrees(math.atan2(facing[0], -facing[2]))
    pitch = math.degrees(math.atan2(-facing[1], math.hypot(facing[0], facing[2])))
    roll = math.degrees(math.atan2(across[1], across[0]))
    return round(yaw, 1), round(pitch, 1), round(roll, 1)
