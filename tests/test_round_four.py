"""Round four's defects (#42) outside the server: text that would be a formula in a
spreadsheet, outputs that survive a crash, study files matched by path, bounded memory, and
every public function given mixed or empty inputs. Each test failed before its fix."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from mobilefer import EMOTIONS, InputError, compare, summarize
from mobilefer.events import Event, Member
from mobilefer.recognizer import Face
from mobilefer.records import RecordWriter, cell, iter_records, uncell
from mobilefer.stream import Result

FORMULAS = ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "\tx", "'=quoted"]


def scores(label: str, p: float) -> dict[str, float]:
    rest = (1 - p) / (len(EMOTIONS) - 1)
    return {k: p if k == label else rest for k in EMOTIONS}


def clip(source: str, label: str = "happy", p: float = 0.8, n: int = 30, fps: float = 10.0):
    faces = lambda: (Face((10, 10, 50, 50), label, scores(label, p), "yunet", 0.9, 0),)  # noqa: E731
    return [Result(source, "video", faces(), None, i, i / fps, fps=fps) for i in range(n)]


def no_formula(text: str) -> None:
    for row in csv.reader(io.StringIO(text)):
        for c in row:
            assert not c.startswith(("=", "+", "@", "\t")), row
            if c.startswith("-"):
                float(c)  # only numbers may start with a minus


@pytest.mark.parametrize("text", FORMULAS)
def test_a_cell_that_looks_like_a_formula_is_text_and_reads_back(text):
    assert cell(text).startswith("'") and uncell(cell(text)) == text
    assert cell(-0.5) == -0.5 and cell("happy") == "happy"


def test_predicts_csv_neutralises_names_and_labels(tmp_path):
    labels = ["happy", "=cmd|'/c calc'!A0"]
    out = io.StringIO()
    rec = {"source": "=HYPERLINK(\"http://evil\")", "frame": None, "time": None, "face": 0,
           "box": [1, 2, 3, 4], "label": "happy", "scores": {"happy": 0.6, labels[1]: 0.4},
           "detector": "@yunet", "detector_score": 0.9, "yaw": -12.5, "pitch": None,
           "roll": None, "track_id": None, "score": 0.6}  # fmt: skip
    RecordWriter("csv", labels, out).write([rec])
    no_formula(out.getvalue())
    path = tmp_path / "r.csv"
    path.write_text(out.getvalue())
    (back,) = iter_records(path)
    assert back["source"] == rec["source"] and back["scores"] == rec["scores"]
    assert back["yaw"] == -12.5  # numbers stay numbers


def test_the_study_csv_neutralises_every_text_cell():
    events = (Event("=start", 0, 1), Event("-ad", 1, 3))
    clips = summarize(clip("=a.mp4") + clip("@b.mp4", "sad"), events=events, baseline="=start")
    people = {"=a.mp4": Member("+ann", "=g1"), "@b.mp4": Member("-bob", "@g2")}
    text = compare(clips, people, baseline="=start").to_csv()
    no_formula(text)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["participant"] for r in rows} == {"'+ann", "'-bob"}
    assert any(r["change_valence"].startswith("-") or r["change_valence"] in ("0.0", "")
               for r in rows)  # fmt: skip


def test_the_reports_track_csv_neutralises_names(tmp_path):
    pytest.importorskip("plotly")
    from mobilefer.report import Collector, write_report

    collector = Collector()
    for r in clip("=evil.mp4"):
        collector.add(r)
    write_report(collector, tmp_path / "r.html", tmp_path / "r.csv")
    text = (tmp_path / "r.csv").read_text()
    no_formula(text)
    assert "'=evil.mp4" in text


# ------------------------------------------------------------------ outputs that survive a crash
def left_behind(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".mobilefer-"))


def test_quantize_replaces_its_output_whole_or_not_at_all(tmp_path, tiny_model, monkeypatch):
    pytest.importorskip("onnx")
    import mobilefer.quantize as q

    out = tmp_path / "q.onnx"
    out.write_bytes(b"the user's old model")
    faces = np.random.default_rng(0).integers(0, 256, (16, 48, 48), dtype=np.uint8)

    def full_disk(path, card):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(q, "write_card", full_disk)  # after ONNX Runtime wrote the int8 graph
    with pytest.raises(OSError):
        q.quantize_file(tiny_model, out, faces)
    assert out.read_bytes() == b"the user's old model" and left_behind(tmp_path) == []
    monkeypatch.undo()
    made = q.quantize_file(tiny_model, out, faces)
    assert made["path"] == str(out) and out.stat().st_size > 1000
    assert left_behind(tmp_path) == []


def test_export_replaces_its_output_whole_and_never_touches_a_fp32_neighbour(
        tmp_path, tiny_config, monkeypatch):  # fmt: skip
    pytest.importorskip("torch")
    import torch

    from mobilefer.train import export as ex
    from mobilefer.train.model import FerNet

    model = FerNet(hidden=tiny_config.hidden, width_mult=tiny_config.width_mult, backbone=None)
    ck = tmp_path / "best.pt"
    from dataclasses import asdict

    torch.save({"model": model.state_dict(), "epoch": 1, "config": asdict(tiny_config)}, ck)
    out = tmp_path / "m.onnx"
    neighbour = tmp_path / "m.fp32.onnx"  # a user's file: --int8 used this name as its scratch
    out.write_bytes(b"old")
    neighbour.write_bytes(b"mine")

    def broken(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ex, "update_card", broken)
    from mobilefer.data import FerData

    from conftest import synthetic_fer

    pixels, emotion, usage = synthetic_fer()
    data = FerData(pixels, emotion.astype(np.int64), usage)
    with pytest.raises(OSError):
        ex.export_checkpoint(ck, out, data=data, flip_tta=False, prior_tau=0.0, zoom=1.0)
    assert out.read_bytes() == b"old" and left_behind(tmp_path) == []
    monkeypatch.undo()
    made = ex.export_checkpoint(ck, out, data=data, flip_tta=False, prior_tau=0.0, zoom=1.0,
                                int8=True)  # fmt: skip
    assert made["path"] == str(out)
    assert neighbour.read_bytes() == b"mine" and left_behind(tmp_path) == []
    from mobilefer import ExpressionModel

    assert ExpressionModel(out).card.precision == "int8"


def test_reports_page_and_csv_are_written_both_or_neither(tmp_path, monkeypatch):
    pytest.importorskip("plotly")
    import os

    import mobilefer.sinks as sinks
    from mobilefer.report import Collector, write_report

    collector = Collector()
    for r in clip("a.mp4"):
        collector.add(r)
    page, table = tmp_path / "r.html", tmp_path / "r.csv"
    page.write_text("old page")
    table.write_text("old csv")
    real = os.replace

    def full_disk(src, dst):
        if str(dst).endswith(".html"):
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(sinks.os, "replace", full_disk)
    with pytest.raises(InputError, match="r.html: cannot write"):
        write_report(collector, page, table)
    monkeypatch.undo()
    assert page.read_text() == "old page" and table.read_text() == "old csv"
    assert left_behind(tmp_path) == []
    write_report(collector, page, table)
    assert page.read_text().startswith("<!doctype html>") and "a.mp4" in table.read_text()


# ------------------------------------------------------------------ participants matched by path
def test_a_bare_name_that_matches_two_clips_is_refused():
    clips = summarize(clip("a/p01.mp4") + clip("b/p01.mp4"), events=(Event("ad", 0, 2),))
    with pytest.raises(InputError, match="p01.mp4 names 2 clips"):
        compare(clips, {"p01.mp4": Member("alice")})
    by_path = compare(clips, {"a/p01.mp4": Member("alice"), "b/p01.mp4": Member("bob")})
    assert [p.name for p in by_path.participants] == ["alice", "bob"]
    plain = compare(clips)  # no file: two clips of one name are told apart by their paths
    assert [p.name for p in plain.participants] == ["a/p01.mp4", "b/p01.mp4"]


def test_two_rows_for_one_clip_are_refused_not_dropped(tmp_path):
    from mobilefer.events import StudyPlan, read_participants

    people = tmp_path / "people.csv"
    people.write_text("clip,participant\np01.mp4,alice\np01,bob\n")
    plan = StudyPlan((Event("ad", 0, 2),), None, read_participants(people))
    with pytest.raises(InputError, match="p01.mp4 is named by 2 rows"):
        plan.check_sources(["p01.mp4"])
    clips = summarize(clip("p01.mp4"), events=plan.events)
    with pytest.raises(InputError, match="named by 2 rows"):
        compare(clips, plan.participants)


# ------------------------------------------------------------------ hangs and memory
def test_event_bands_are_set_at_once_and_the_report_can_be_cancelled(monkeypatch):
    pytest.importorskip("plotly")
    import plotly.graph_objects as go

    from mobilefer.events import StudyPlan
    from mobilefer.report import Collector, render_report

    def one_by_one(*a, **k):
        raise AssertionError("a band added one at a time: time grows with events squared")

    monkeypatch.setattr(go.Figure, "add_vrect", one_by_one)
    collector = Collector()
    for r in clip("a.mp4", n=60):
        collector.add(r)
    events = tuple(Event(f"e{i}", i * 0.01, i * 0.01 + 0.01) for i in range(500))
    page, _, _ = render_report(collector, StudyPlan(events))
    assert "e499" in page
    with pytest.raises(InputError, match="cancelled"):
        render_report(collector, StudyPlan(events), cancelled=lambda: True)


def test_a_long_live_session_keeps_a_bounded_number_of_thumbnails(monkeypatch):
    import mobilefer.report as report

    monkeypatch.setattr(report, "MAX_THUMBNAIL_TRACKS", 5)
    collector = report.Collector()
    image = np.full((120, 120, 3), 128, np.uint8)
    for i in range(40):  # a new track in every frame
        face = Face((10, 10, 50, 50), "happy", scores("happy", 0.8), "yunet", 0.9, i)
        collector.add(Result("webcam", "video", (face,), image, i, i / 10, fps=10.0))
    assert len(collector.sharpest) == 5
    assert len({k[:2] for k in collector.peaks}) == 5


def test_a_report_keeps_summaries_not_results():
    import tracemalloc

    from mobilefer.report import Collector

    collector = Collector()
    image = np.zeros((64, 64, 3), np.uint8)
    face = Face((10, 10, 40, 40), "happy", scores("happy", 0.8), "yunet", 0.9, 0)
    tracemalloc.start()
    for i in range(3000):
        collector.add(Result("long.mp4", "video", (face,), image, i, i / 30, fps=30.0))
    kept, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert kept < 3_000_000, kept  # results as they were kept: about 8.5 KB each, 25 MB
    (summary,) = collector.summaries()
    assert summary.frames == 3000 and summary.tracks[0].frames == 3000


def test_records_read_back_stream_through_summarize(tmp_path):
    import json
    import tracemalloc

    from mobilefer import read_records

    rec = {"source": "v.mp4", "frame": 0, "time": 0.0, "face": 0, "box": [1, 2, 30, 30],
           "label": "happy", "scores": scores("happy", 0.8), "detector": "yunet",
           "detector_score": 0.9, "yaw": 1.0, "pitch": 2.0, "roll": 3.0, "track_id": 0,
           "score": 0.8}  # fmt: skip
    path = tmp_path / "big.jsonl"
    with path.open("w") as f:
        for i in range(20_000):
            f.write(json.dumps(rec | {"frame": i, "time": i / 30}) + "\n")
    tracemalloc.start()
    (summary,) = summarize(read_records(path))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert summary.tracks[0].frames == 20_000
    assert peak < 12_000_000, peak  # every record held: about 40 MB
