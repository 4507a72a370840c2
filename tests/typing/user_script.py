"""A user's script, type-checked by mypy in CI (scripts/test.sh): the public API's types are
what its docs say (the package ships py.typed). Not run by pytest."""

from collections.abc import Iterator
from typing import assert_type

import numpy as np

import mobilefer
from mobilefer import (
    Calibration,
    ClipSummary,
    ExpressionModel,
    Face,
    Options,
    Recognizer,
    Result,
    analyze,
    read_records,
    summarize,
)

faces = analyze("photo.jpg")
assert_type(faces, list[Face])
rec = Recognizer(detector="haar", threads=2)
assert_type(rec.analyze(np.zeros((10, 10, 3), np.uint8)), list[Face])
assert_type(rec.stream("clip.mp4"), Iterator[Result])
for result in rec.stream("clip.mp4"):
    for face in result.faces:
        assert_type(face.label, str | None)
        assert_type(face.box, tuple[int, int, int, int])
        assert_type(face.score, float | None)
cal = rec.calibrate("neutral.jpg")
assert_type(cal, Calibration)
assert_type(rec.classify([np.zeros((48, 48), np.uint8)], calibration=cal), list[Face])
assert_type(ExpressionModel("ferplus").predict_proba([]), np.ndarray)
assert_type(summarize(read_records("out.jsonl")), list[ClipSummary])
assert_type(read_records("out.jsonl"), Iterator[dict])
assert_type(Options().check(), Options)
assert_type(mobilefer.EMOTIONS, tuple[str, ...])
