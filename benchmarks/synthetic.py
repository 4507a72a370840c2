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
