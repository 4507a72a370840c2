"""Boxes, labels and scores drawn on BGR frames."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .labels import PALETTE, bgr

#: BGR colour per label (:data:`mobilefer.labels.PALETTE`).
COLORS = {label: bgr(hex_colour) for label, hex_colour in PALETTE.items()}


def draw(image: np.ndarray, faces: Sequence, fps: float | None = None) -> np.ndarray:
    """A copy of a BGR image with each face's box, label and score drawn (a face not scored,
    turned beyond ``max_yaw``: a gray box, "turned away"; with the face mesh, the action units
    present under the box; and frames/s); ``faces`` are :class:`mobilefer.Face` objects
    (anything with box, label and score)."""
    out = image.copy()
    thick = max(1, round(max(out.shape[:2]) / 400))
    for f in faces:
        x, y, w, h = f.box
        color = COLORS.get(f.label, (0, 255, 0)) if f.label else (160, 160, 160)
        cv2.rectangle(out, (x, y), (x + w, y + h), color, thick)
        text = f"{f.label} {f.score:.0%}" if f.label else "turned away"
        scale = max(0.4, w / 200)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        top = max(y - th - base - 2, 0)
        cv2.rectangle(out, (x, top), (x + tw + 2, top + th + base + 2), color, -1)
        cv2.putText(
            out, text, (x + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick
        )
        units = present_units(f)
        if units:  # with the face mesh: the action units present, under the box
            small = 0.8 * scale
            (uw, uh), ub = cv2.getTextSize(units, cv2.FONT_HERSHEY_SIMPLEX, small, thick)
            below = min(y + h + 2, out.shape[0] - uh - ub - 2)
            cv2.rectangle(out, (x, below), (x + uw + 2, below + uh + ub + 2), color, -1)
            cv2.putText(
                out,
                units,
                (x + 1, below + uh + 1),
                cv2.FONT_HERSHEY_SIMPLEX,
                small,
                (0, 0, 0),
                thick,
            )
    if fps is not None:
        cv2.putText(out, f"{fps:.1f} fps", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 255, 0), 2)
    return out


def present_units(face) -> str:
    """The action units a face shows (0.5 and above), strongest first, e.g. ``"AU12 AU6"``;
    empty without the face mesh or when none is present."""
    units = getattr(face, "action_units", None) or {}
    on = sorted((k for k, v in units.items() if v >= 0.5), key=lambda k: -units[k])
    return " ".join(on)
