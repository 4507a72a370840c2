"""Action units, named as FACS names them, from MediaPipe's 52 blendshapes (:mod:`mobilefer.mesh`).

Each unit is the mean of one or more blendshapes (a blendshape with a left and a right side
counts as the larger of the two: FACS codes a unit on either side as present), then rescaled so
that its threshold reads 0.5: ``intensity = raw / (2 t)`` up to ``t``, and ``0.5 + (raw - t) /
(2 (1 - t))`` above. So 0.5 means present, 0 absent, 1 the blendshapes' most.

:data:`UNITS` holds each unit's blendshapes and threshold. The names alone map poorly for some
units, and no action-unit-coded faces were at hand: the combinations and thresholds marked
``rule a2`` were set on expression-labelled faces through the EMFACS prototypes (happy: AU6+12;
surprise: AU1+2+5+26; sad: AU1+4+15; angry: AU4+5+7+23; disgust: AU9+10+17; fear:
AU1+2+4+5+7+20+26), by rules a1 and a2 of ``docs/experiments.md`` (``benchmarks/action_units.py``);
the rest keep their name's blendshape at 0.5. The intensities are MediaPipe's estimates
rescaled, not a FACS coder's scores.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: What each unit is called in FACS.
NAMES = {
    "AU1": "inner brow raiser",
    "AU2": "outer brow raiser",
    "AU4": "brow lowerer",
    "AU5": "upper lid raiser",
    "AU6": "cheek raiser",
    "AU7": "lid tightener",
    "AU9": "nose wrinkler",
    "AU10": "upper lip raiser",
    "AU12": "lip corner puller",
    "AU14": "dimpler",
    "AU15": "lip corner depressor",
    "AU17": "chin raiser",
    "AU20": "lip stretcher",
    "AU23": "lip tightener",
    "AU25": "lips part",
    "AU26": "jaw drop",
    "AU45": "blink",
}

#: The EMFACS prototypes: the units each expression shows (neutral: none).
PROTOTYPES = {
    "happy": ("AU6", "AU12"),
    "surprise": ("AU1", "AU2", "AU5", "AU26"),
    "sad": ("AU1", "AU4", "AU15"),
    "angry": ("AU4", "AU5", "AU7", "AU23"),
    "disgust": ("AU9", "AU10", "AU17"),
    "fear": ("AU1", "AU2", "AU4", "AU5", "AU7", "AU20", "AU26"),
    "neutral": (),
}


@dataclass(frozen=True)
class Unit:
    """How one unit is read: the mean of ``shapes`` (blendshape names; a name without a side,
    such as ``mouthSmile``, is the larger of its Left and Right), with ``threshold`` reading 0.5."""

    shapes: tuple[str, ...]
    threshold: float = 0.5


#: Each unit's blendshapes and threshold: the names' own mapping, replaced by rule a2's choices
#: (``benchmarks/action_units.py`` writes them to ``results/action-units.json``).
UNITS: dict[str, Unit] = {
    "AU1": Unit(("browInnerUp",), 0.09),  # rule a2
    "AU2": Unit(("browInnerUp",), 0.09),  # rule a2
    "AU4": Unit(("browDown",)),  # rule a2: no signal in the proxy
    "AU5": Unit(("eyeWide",), 0.02),  # rule a2
    "AU6": Unit(("cheekSquint", "mouthSmile"), 0.09),  # rule a2
    "AU7": Unit(("eyeSquint",)),  # rule a2: no signal in the proxy
    "AU9": Unit(("browDown", "mouthUpperUp"), 0.19),  # rule a2
    "AU10": Unit(("mouthUpperUp",)),  # rule a2: no signal in the proxy
    "AU12": Unit(("mouthSmile",), 0.18),  # rule a2
    "AU14": Unit(("mouthDimple",)),  # no prototype holds it
    "AU15": Unit(("mouthFrown",), 0.08),  # rule a2
    "AU17": Unit(("mouthShrugLower",), 0.02),  # rule a2
    "AU20": Unit(("mouthStretch",)),  # rule a2: no signal in the proxy
    "AU23": Unit(("mouthPress",)),  # rule a2: no signal in the proxy
    "AU25": Unit(("mouthLowerDown",)),  # no prototype holds it
    "AU26": Unit(("jawOpen",), 0.02),  # rule a2
    "AU45": Unit(("eyeBlink",)),  # no prototype holds it
}
#: The units, in order.
ACTION_UNITS = tuple(UNITS)


def shape_value(blendshapes: Mapping[str, float], name: str) -> float:
    """One blendshape's score; a name without its side (``mouthSmile``) is the larger side."""
    if name in blendshapes:
        return float(blendshapes[name])
    return max(float(blendshapes[name + "Left"]), float(blendshapes[name + "Right"]))


def raw_unit(blendshapes: Mapping[str, float], unit: Unit) -> float:
    """A unit's score before rescaling: the mean of its blendshapes."""
    return sum(shape_value(blendshapes, s) for s in unit.shapes) / len(unit.shapes)


def rescale(raw: float, threshold: float) -> float:
    """``raw`` (0-1) mapped so that ``threshold`` reads 0.5, 0 reads 0 and 1 reads 1."""
    raw = min(max(raw, 0.0), 1.0)
    if raw <= threshold:
        return 0.5 * raw / threshold
    return 0.5 + 0.5 * (raw - threshold) / (1.0 - threshold)


def action_units(
    blendshapes: Mapping[str, float], units: Mapping[str, Unit] | None = None
) -> dict[str, float]:
    """Each unit's intensity (0-1, 0.5: present) from a face's 52 blendshapes (name -> 0-1)."""
    table = UNITS if units is None else units
    return {
        name: round(rescale(raw_unit(blendshapes, u), u.threshold), 4) for name, u in table.items()
    }
