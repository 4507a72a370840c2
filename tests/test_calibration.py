"""Participant calibration (#38): a person's neutral face as the reference for their other
faces, through the API, records, studies, the CLI and the live page."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mobilefer import EMOTIONS, InputError, Recognizer, summarize
from mobilefer.calibration import Calibration, reference_of
from mobilefer.recognizer import Face
from mobilefer.stream import Result
from mobilefer.study.plan import Event

from conftest import run


def probs(**leaning) -> np.ndarray:
    p = np.full(len(EMOTIONS), 0.05)
    for k, v in leaning.items():
        p[EMOTIONS.index(k)] = v
    return p / p.sum()


@pytest.fixture(scope="module")
def rec():
    return Recognizer(detector="haar")


def test_the_division_is_the_stated_formula():
    ref = probs(sad=0.6)
    cal = Calibration(EMOTIONS, tuple(ref), 1, "m", beta=0.5, floor=0.03)
    p = probs(sad=0.4, happy=0.3)
    want = p / np.maximum(ref, 0.03) ** 0.5
    assert np.allclose(cal.apply(p[None])[0], want / want.sum())
    assert np.allclose(cal.apply(ref[None]).sum(), 1)
    flat = Calibration(EMOTIONS, tuple(np.full(7, 1 / 7)), 1, "m")
    assert np.allclose(flat.apply(p[None])[0], p)  # a flat reference changes nothing


def test_a_near_zero_reference_cannot_explode_a_score():
    ref = probs(neutral=0.99)
    ref[0] = 1e-9
    cal = Calibration(EMOTIONS, tuple(ref / ref.sum()), 1, "m", beta=1.0, floor=0.03)
    out = cal.apply(probs(neutral=0.9)[None])[0]
    assert out[0] < 0.5 and np.isfinite(out).all()


def test_the_reference_undoes_the_prior_correction_and_is_a_geometric_mean():
    w = np.linspace(0.5, 2.0, 7)
    raw = np.stack([probs(sad=0.5), probs(sad=0.2)])
    corrected = raw * w / (raw * w).sum(1, keepdims=True)
    ref = reference_of(corrected, w)
    geo = np.exp(np.log(raw).mean(0))
    assert np.allclose(ref, geo / geo.sum())


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.001, 1.0), min_size=7, max_size=7),
    st.lists(st.floats(0.001, 1.0), min_size=7, max_size=7),
    st.floats(0.0, 1.0),
    st.floats(0.001, 0.2),
)
def test_calibrated_scores_are_probabilities(p, ref, beta, floor):
    p, ref = np.array(p) / sum(p), np.array(ref) / sum(ref)
    out = Calibration(EMOTIONS, tuple(ref), 1, "m", beta, floor).apply(p[None])[0]
    assert np.isfinite(out).all() and (out >= 0).all() and out.sum() == pytest.approx(1)


def test_calibrate_and_analyze_through_the_api(rec, astronaut):
    cal = rec.calibrate(astronaut)
    assert cal.faces == 1 and cal.labels == rec.labels and cal.model == rec.model_digest
    (plain,) = rec.analyze(astronaut)
    (face,) = rec.analyze(astronaut, calibration=cal)
    assert face.calibrated and not plain.calibrated
    assert sum(face.scores.values()) == pytest.approx(1)
    assert face.scores["happy"] < plain.scores["happy"]  # her own smile is the reference
    (crop,) = rec.classify([astronaut[60:180, 170:280]], calibration=cal)
    assert crop.calibrated
    (result,) = rec.stream(astronaut, calibration=cal)
    assert result.faces[0].calibrated and result.records()[0]["calibrated"] is True
    again = rec.calibrate([plain, plain])  # the person's faces, as read
    assert again.faces == 2 and np.allclose(again.reference, cal.reference, atol=1e-6)
    frames = rec.calibrate(list(rec.stream([astronaut, astronaut])))
    assert frames.faces == 2


def test_bad_references_are_one_clear_error(rec, astronaut, tiny_model):
    blank = np.full((200, 200, 3), 127, np.uint8)
    with pytest.raises(InputError, match="no face found"):
        rec.calibrate(blank)
    two = np.concatenate([astronaut, astronaut], axis=1)
    with pytest.raises(InputError, match=r"\d faces; calibration needs one person"):
        rec.calibrate(two)
    with pytest.raises(InputError, match="no neutral face"):
        rec.calibrate([])
    cal = rec.calibrate(astronaut)
    (face,) = rec.analyze(astronaut, calibration=cal)
    with pytest.raises(InputError, match="already calibrated"):
        rec.calibrate([face])
    other = Recognizer(tiny_model, detector="haar")
    with pytest.raises(InputError, match="made with another model"):
        other.analyze(astronaut, calibration=cal)
    with pytest.raises(InputError, match="pass what Recognizer.calibrate returns"):
        rec.analyze(astronaut, calibration="neutral.jpg")


def test_every_writer_says_whether_a_face_was_calibrated(tmp_path, capsys, astronaut):
    import cv2

    photo = tmp_path / "a.jpg"
    cv2.imwrite(str(photo), astronaut)
    for fmt in ("jsonl", "csv"):
        code, out, err = run(
            capsys, "predict", photo, "--detector", "haar", "--format", fmt, "--calibrate", photo
        )
        assert code == 0, err
        path = tmp_path / f"r.{fmt}"
        path.write_text(out)
        from mobilefer import read_records

        (rec,) = read_records(path)
        assert rec["calibrated"] is True
    code, out, _ = run(capsys, "predict", photo, "--detector", "haar")
    assert json.loads(out)["calibrated"] is False
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((100, 100, 3), 127, np.uint8))
    code, out, err = run(capsys, "predict", photo, "--detector", "haar", "--calibrate", blank)
    assert code == 2 and "--calibrate" in err and "no face found" in err and not out


def test_the_arrow_schema_has_the_field():
    pa = pytest.importorskip("pyarrow")
    from mobilefer.sinks import arrow_schema

    assert arrow_schema(EMOTIONS).field("calibrated").type == pa.bool_()


# ------------------------------------------------------------------------------- studies
FPS = 10.0
EVENTS = (Event("intro", 0, 2), Event("ad", 2, 6))


def participant(source: str, sad_bias: float = 1.0) -> list[Result]:
    """2 s at rest (neutral), 4 s smiling, read by a model that sees this person's resting
    face as ``sad_bias`` times sadder than it is."""
    out = []
    for i in range(int(6 * FPS)):
        true = probs(neutral=0.8) if i < 2 * FPS else probs(happy=0.6, neutral=0.2)
        seen = true.copy()
        seen[EMOTIONS.index("sad")] *= sad_bias
        seen /= seen.sum()
        scores = dict(zip(EMOTIONS, seen.tolist(), strict=True))
        face = Face((10, 10, 50, 50), max(scores, key=scores.get), scores, "yunet", 0.9, 0)
        out.append(Result(source, "video", (face,), None, i, i / FPS, fps=FPS))
    return out


def test_a_participant_whose_resting_face_leans_sad_is_read_as_the_others():
    results = participant("a.mp4") + participant("b.mp4") + participant("sad.mp4", 2.4)
    plain = {c.source: c for c in summarize(results, events=EVENTS)}
    cal = {c.source: c for c in summarize(results, events=EVENTS, calibrate="intro")}
    assert all(c.calibrated and c.tracks[0].calibrated for c in cal.values())

    def ad(clip):
        return next(e for e in clip.events if e.event == "ad")

    truth = ad(cal["a.mp4"])  # the same faces, without the lean
    far = max(abs(ad(plain["sad.mp4"]).mean[k] - ad(plain["a.mp4"]).mean[k]) for k in EMOTIONS)
    assert far > 0.05 and abs(ad(plain["sad.mp4"]).valence - ad(plain["a.mp4"]).valence) > 0.05
    for k in EMOTIONS:
        assert ad(cal["sad.mp4"]).mean[k] == pytest.approx(truth.mean[k], abs=0.05), k
    assert ad(cal["sad.mp4"]).valence == pytest.approx(truth.valence, abs=0.05)
    assert ad(cal["b.mp4"]).mean == pytest.approx(truth.mean)


def test_calibrating_on_an_event_nobody_was_seen_in_is_one_error():
    events = (*EVENTS, Event("later", 100, 110))
    with pytest.raises(InputError, match="--calibrate later: no face was seen in that event"):
        summarize(participant("a.mp4"), events=events, calibrate="later")
    with pytest.raises(InputError, match="--calibrate 'nope' is not an event"):
        summarize(participant("a.mp4"), events=events, calibrate="nope")


def test_a_study_report_calibrated_on_its_baseline(tmp_path, capsys, monkeypatch):
    pytest.importorskip("plotly")
    import cv2

    from mobilefer.model import ExpressionModel

    from conftest import write_video

    def leaning(self, crops):
        """A stand-in model: neutral, with a sad lean on faces whose red channel is high."""
        out = []
        for c in crops:
            p = probs(neutral=0.8)
            if c[..., 2].mean() > c[..., 0].mean() + 20:
                p[EMOTIONS.index("sad")] *= 4
            out.append(p / p.sum())
        return np.array(out)

    monkeypatch.setattr(ExpressionModel, "predict_proba", leaning)
    import skimage.data

    face = np.ascontiguousarray(skimage.data.astronaut()[:, :, ::-1])
    plain = write_video(tmp_path / "p1.mp4", face, frames=30)
    red = face.copy()
    red[..., 2] = np.clip(red[..., 2].astype(int) + 60, 0, 255).astype(np.uint8)
    leans = write_video(tmp_path / "p2.mp4", red, frames=30)
    events = tmp_path / "events.csv"
    events.write_text("name,start,end\nintro,0,1\nad,1,3\n")
    out, table = tmp_path / "r.html", tmp_path / "r.csv"
    code, _, err = run(
        capsys,
        "report",
        plain,
        leans,
        "--events",
        events,
        "--calibrate",
        "intro",
        "--detector",
        "haar",
        "--smoothing",
        "0",
        "--out",
        out,
        "--csv",
        table,
    )
    assert code == 0, err
    rows = {(r["participant"], r["event"]): r for r in csv.DictReader(table.open())}
    assert rows[("p2", "ad")]["calibrated"] == "true"
    assert float(rows[("p2", "ad")]["mean_sad"]) == pytest.approx(
        float(rows[("p1", "ad")]["mean_sad"]), abs=0.02
    )
    assert "id=calibrated" in out.read_text()
    code, _, err = run(
        capsys, "report", plain, "--calibrate", "intro", "--out", tmp_path / "x.html"
    )
    assert code == 2 and "go with --events" in err
    del cv2
