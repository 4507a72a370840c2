"""The benchmarks' synthetic inputs, made in one place from scikit-image's public-domain
astronaut() photo (Eileen Collins, NASA): a moving-face video, folders of varied photos and
large photos with one small face."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

#: astronaut()'s head and shoulders (rows, columns), and her head alone (the face ~100 px wide).
PERSON = (slice(0, 330), slice(90, 360))
HEAD = (slice(20, 220), slice(130, 320))
#: The person as pasted into frames: 216 x 264 px.
PERSON_SIZE = (216, 264)


def astronaut() -> np.ndarray:
    """scikit-image's astronaut() as BGR uint8."""
    from skimage.data import astronaut as photo

    return np.ascontiguousarray(photo()[:, :, ::-1])


def person() -> np.ndarray:
    """The astronaut's head and shoulders, 216 x 264 px, BGR."""
    return cv2.resize(np.ascontiguousarray(astronaut()[PERSON]), PERSON_SIZE)


def make_video(path: Path, frames: int, size=(640, 480), fps: float = 30.0) -> Path:
    """An mp4 of the astronaut's head and shoulders sliding left to right and back over a
    graded backdrop, bobbing up and down."""
    w, h = size
    who = person()
    backdrop = np.tile(np.linspace(60, 160, w, dtype=np.uint8)[None, :, None], (h, 1, 3))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    span = w - who.shape[1]
    for i in range(frames):
        phase = (i / max(frames - 1, 1)) * 2
        x = int(span * (phase if phase <= 1 else 2 - phase))
        y = 100 + int(40 * np.sin(i / 15))
        frame = backdrop.copy()
        frame[y : y + who.shape[0], x : x + who.shape[1]] = who
        writer.write(frame)
    writer.release()
    return path


def make_images(folder: Path, n: int, size=(640, 480), seed: int = 0) -> None:
    """``n`` JPEGs (quality 90), each with the person at a random place and brightness on a
    plain backdrop of random gray."""
    w, h = size
    who = person()
    rng = np.random.default_rng(seed)
    for i in range(n):
        frame = np.full((h, w, 3), int(rng.integers(40, 200)), np.uint8)
        x, y = int(rng.integers(0, w - who.shape[1])), int(rng.integers(0, h - who.shape[0]))
        frame[y : y + who.shape[0], x : x + who.shape[1]] = np.clip(
            who * rng.uniform(0.7, 1.2), 0, 255
        )
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])


def small_face_photo(
    face_px: int, size=(4032, 3024)
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A large gray photo with the astronaut's head scaled so her face is about ``face_px``
    wide; returns the photo and the head's ``(x, y, w, h)``."""
    scale = face_px / 100
    head = cv2.resize(astronaut()[HEAD], None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    w, h = size
    img = np.full((h, w, 3), 120, np.uint8)
    y, x = 1200, 1800
    img[y : y + head.shape[0], x : x + head.shape[1]] = head
    return img, (x, y, head.shape[1], head.shape[0])


def turn_face(
    image: np.ndarray, landmarks, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0
) -> np.ndarray:
    """``image`` with its face turned by ``yaw``, ``pitch`` and ``roll`` degrees (the signs of
    :mod:`mobilefer.pose`: yaw toward the image's right, pitch up, roll clockwise), as a
    camera far away would see it: the picture is laid on a generic head (an ellipsoid with a
    nose, sized by the five ``landmarks``: right eye, left eye, nose tip, mouth corners),
    rotated about the head's centre and projected straight back. Occluded parts take the
    nearest visible texture; enough for landmarks to move as a turned face's do."""
    pts = np.asarray(landmarks, np.float64)
    eyes = float(np.hypot(*(pts[1] - pts[0])))
    centre = (pts[:2].mean(0) + pts[3:].mean(0)) / 2
    a, b, c = 1.6 * eyes, 2.1 * eyes, 1.6 * eyes  # the head's half width, height and depth
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    dx, dy = xs - centre[0], ys - centre[1]
    inside = np.clip(1 - (dx / a) ** 2 - (dy / b) ** 2, 0, None)
    nose = (
        0.35
        * eyes
        * np.exp(-((xs - pts[2, 0]) ** 2 + (ys - pts[2, 1]) ** 2) / (2 * (0.28 * eyes) ** 2))
    )
    z = c * np.sqrt(inside) + nose * (inside > 0)  # toward the camera
    cy_, sy = np.cos(np.radians(yaw)), np.sin(np.radians(yaw))
    cp, sp = np.cos(np.radians(pitch)), np.sin(np.radians(pitch))
    x1, z1 = dx * cy_ + z * sy, -dx * sy + z * cy_  # yaw: about the vertical axis
    y1 = dy * cp - z1 * sp  # pitch: about the horizontal axis, the nose going up
    cr, sr = np.cos(np.radians(roll)), np.sin(np.radians(roll))
    x2, y2 = x1 * cr - y1 * sr, x1 * sr + y1 * cr  # roll: clockwise on screen (y down)
    move_x = (x2 - dx).astype(np.float32)
    move_y = (y2 - dy).astype(np.float32)
    # where each output pixel comes from: solve F(src) = out by fixed-point iteration
    src_x, src_y = xs.astype(np.float32), ys.astype(np.float32)
    out_x, out_y = src_x.copy(), src_y.copy()
    for _ in range(30):
        mx = cv2.remap(move_x, src_x, src_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        my = cv2.remap(move_y, src_x, src_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        src_x, src_y = out_x - mx, out_y - my
    return cv2.remap(image, src_x, src_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
