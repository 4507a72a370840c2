"""Expression labels.

FER2013's seven classes, in the dataset's (and the paper's) index order, and the FER+ vote columns.
"""

from __future__ import annotations

#: FER2013 class index -> name; model outputs follow this order.
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: The vote columns of FER+ (``fer2013new.csv``), in file order.
FERPLUS_COLUMNS: tuple[str, ...] = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
)


#: Class names of the FER+ models: FER2013's seven in the same order, then contempt.
FERPLUS_LABELS: tuple[str, ...] = (*EMOTIONS, "contempt")

#: For each FER+ vote column, its index in :data:`FERPLUS_LABELS` (``None``: not an emotion).
FERPLUS_COLUMN_TO_LABEL: tuple[int | None, ...] = (6, 3, 5, 4, 0, 1, 2, 7, None, None)


#: One colour per label, shared by annotated images, the report and the browser demo:
#: colour-blind-safe Okabe-Ito, grey for neutral, reddish purple for contempt.
PALETTE: dict[str, str] = {
    "angry": "#D55E00",
    "disgust": "#009E73",
    "fear": "#56B4E9",
    "happy": "#E69F00",
    "sad": "#0072B2",
    "surprise": "#F0E442",
    "neutral": "#999999",
    "contempt": "#CC79A7",
}


#: Colours for the labels of other models, given in their order.
OTHER_COLOURS = (
    "#444444",
    "#882255",
    "#117733",
    "#332288",
    "#AA4499",
    "#44AA99",
    "#DDCC77",
    "#CC6677",
    "#88CCEE",
    "#999933",
)


def colour_of(label: str, labels=()) -> str:
    """The ``"#RRGGBB"`` colour of ``label``: :data:`PALETTE`'s, else one of
    :data:`OTHER_COLOURS` by its place among ``labels`` (a model's, in order)."""
    if label in PALETTE:
        return PALETTE[label]
    at = list(labels).index(label) if label in labels else 0
    return OTHER_COLOURS[at % len(OTHER_COLOURS)]


def bgr(hex_colour: str) -> tuple[int, int, int]:
    """``"#RRGGBB"`` as OpenCV's (blue, green, red)."""
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return b, g, r
