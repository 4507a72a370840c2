"""The model file's metadata: one typed record that export writes and inference reads.

A mobilefer model is an ONNX file whose ``metadata_props`` hold, under the key ``mobilefer``,
this record as JSON: the labels in output order, the preprocessing, test-time settings (flip TTA,
the post-hoc class-prior correction) and the recipe and scores of the run that made it, the way
timm's ``pretrained_cfg`` travels with its weights. numpy only, but for the functions that read
and write a card in a file (:func:`write_card`, :func:`read_card_file`), which import onnx.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import ModelError
from .preprocess import MARGIN_RANGE, ZOOM_RANGE, Preprocessing
from .records import CSV_FIELDS, FIELD_NAMES, UNIT_COLUMNS

#: The key under which a model file keeps its card (ONNX metadata_props), as JSON.
METADATA_KEY = "mobilefer"
#: The card format this version writes; it reads every format up to this one. 3 added ``zoom``,
#: 4 ``precision`` and ``quantization``.
FORMAT = 4
#: The precisions a model file may declare.
PRECISIONS = ("float32", "int8")
#: Most labels a model may have.
MAX_LABELS = 1000
#: Names a label may not have: the record's fields and CSV columns (one column per label sits
#: beside them, and would replace them).
RESERVED_LABELS = frozenset(CSV_FIELDS) | frozenset(FIELD_NAMES) | UNIT_COLUMNS


@dataclass(frozen=True)
class ModelCard:
    """What a model file says about itself.

    ``labels`` name the outputs in order. ``prior`` (one value per label, summing to 1) is the
    class prior of the targets the model was trained on; with ``prior_tau`` > 0 inference divides
    the probabilities by ``prior ** prior_tau`` and renormalises (post-hoc logit adjustment,
    Menon et al. 2021), which trades accuracy on common classes for recall on rare ones.
    """

    labels: tuple[str, ...]
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    flip_tta: bool = False  # average the face and its mirror image
    prior: tuple[float, ...] | None = None
    prior_tau: float = 0.0
    recipe: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    precision: str = "float32"  # of the weights and activations: float32 or int8
    quantization: dict = field(default_factory=dict)  # for int8: how it was calibrated
    format: int = FORMAT

    def class_weights(self) -> np.ndarray | None:
        """``prior ** -prior_tau`` (the factor applied to each class's probability), or None."""
        if self.prior is None or not self.prior_tau:
            return None
        return np.asarray(self.prior, dtype=np.float64) ** -self.prior_tau

    def to_json(self) -> str:
        """The card as the JSON stored in the model file."""
        d = asdict(self)
        pre = d.pop("preprocessing")
        return json.dumps({**d, **pre, "labels": list(self.labels)})

    @classmethod
    def from_json(cls, text: str, where: str = "model") -> ModelCard:
        """Read and check a card; :class:`ModelError` names ``where`` and the fault."""

        def bad(why: str) -> ModelError:
            return ModelError(f"{where}: broken mobilefer metadata ({why}); re-export the model")

        try:
            m = json.loads(text)
        except ValueError as e:
            raise bad(f"not JSON: {e}") from None
        if not isinstance(m, dict):
            raise bad("not a JSON object")
        try:
            version = int(m.get("format", 1))
            if version > FORMAT:
                raise ModelError(
                    f"{where}: model format {version} is newer than this mobilefer reads "
                    f"({FORMAT}); upgrade mobilefer"
                )
            labels = tuple(str(v) for v in m["labels"])
            pre = Preprocessing(
                input_size=int(m["input_size"]),
                channels=int(m["channels"]),
                mean=tuple(float(v) for v in m["mean"]),
                std=tuple(float(v) for v in m["std"]),
                margin=float(m.get("margin", 0.0)),
                zoom=float(m.get("zoom", 1.0)),
            )
            prior = m.get("prior")
            prior = None if prior is None else tuple(float(v) for v in prior)
            card = cls(
                labels=labels,
                preprocessing=pre,
                flip_tta=bool(m.get("flip_tta", False)),
                prior=prior,
                prior_tau=float(m.get("prior_tau", 0.0)),
                recipe=dict(m.get("recipe") or {}),
                metrics=dict(m.get("metrics") or {}),
                precision=str(m.get("precision", "float32")),
                quantization=dict(m.get("quantization") or {}),
                format=version,
            )
        except ModelError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise bad(f"{type(e).__name__}: {e}") from None
        problem = card.problem()
        if problem:
            raise bad(problem)
        return card

    def problem(self) -> str | None:
        """What is wrong with this card, or None."""
        pre = self.preprocessing
        if not self.labels or len(set(self.labels)) != len(self.labels):
            return "labels must be a non-empty list of distinct names"
        if len(self.labels) > MAX_LABELS:
            return f"{len(self.labels)} labels; a model has at most {MAX_LABELS}"
        for label in self.labels:
            if not (0 < len(label) <= 64 and label.isprintable() and label == label.strip()):
                return f"label {label[:70]!r} is not a short printable name"
            if label in RESERVED_LABELS:
                return (
                    f"label {label!r} is the name of a record field; its CSV column would "
                    "replace the field's"
                )
        if not 8 <= pre.input_size <= 1024:
            return f"input_size {pre.input_size} is outside 8-1024"
        if pre.channels not in (1, 3) or len(pre.mean) != pre.channels:
            return "channels must be 1 or 3, with one mean and one std per channel"
        if len(pre.std) != pre.channels or not all(math.isfinite(v) and v > 0 for v in pre.std):
            return "std must hold one finite value > 0 per channel"
        if not all(math.isfinite(v) for v in pre.mean):
            return "mean must be finite"
        if not (math.isfinite(pre.margin) and MARGIN_RANGE[0] <= pre.margin <= MARGIN_RANGE[1]):
            return f"margin {pre.margin} is outside {MARGIN_RANGE[0]} to {MARGIN_RANGE[1]}"
        lo, hi = ZOOM_RANGE
        if not (math.isfinite(pre.zoom) and lo <= pre.zoom <= hi):
            return f"zoom {pre.zoom} is outside {lo}-{hi}"
        if self.prior is not None and (
            len(self.prior) != len(self.labels)
            or not all(math.isfinite(v) and v > 0 for v in self.prior)
        ):
            return "prior must hold one finite value > 0 per label"
        if not (math.isfinite(self.prior_tau) and 0 <= self.prior_tau <= 2):
            return f"prior_tau {self.prior_tau} is outside 0-2"
        if self.precision not in PRECISIONS:
            return f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}"
        return None


# Reading and writing a card in a model file: with onnx (the [train] extra), no inference.
def write_card(path: str | Path, card: ModelCard) -> None:
    """Replace the mobilefer metadata of the ONNX file at ``path`` with ``card``; check it."""
    import onnx  # the [train] extra

    problem = card.problem()
    if problem:
        raise ModelError(f"{path}: refusing to write a broken model card ({problem})")
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, card.to_json()
    proto.doc_string = "mobilefer facial expression model; labels: " + ", ".join(card.labels)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path), save_as_external_data=False)


def read_card_file(path: str | Path) -> ModelCard:
    """The card of a model file, read with onnx (no inference session)."""
    import onnx  # the [train] extra

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    if METADATA_KEY not in props:
        raise ModelError(f"{path}: not a mobilefer model (no '{METADATA_KEY}' metadata)")
    return ModelCard.from_json(props[METADATA_KEY], str(path))


def update_card(path: str | Path, **changes) -> ModelCard:
    """Replace some fields of a model file's card in place; returns the new card."""
    card = replace(read_card_file(path), **changes)
    write_card(path, card)
    return card
