"""Round four's defects (#42) outside the server: text that would be a formula in a
spreadsheet, outputs that survive a crash, study files matched by path, bounded memory, and
every public function given mixed or empty inputs. Each test failed before its fix."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from mobilefer import EMOTIONS, InputError, compare, summarize
from mobilefer.recognizer import Face
from mobilefer.records import cell, iter_records, uncell
from mobilefer.sinks import RecordWriter
from mobilefer.stream import Result
from mobilefer.study.plan import Event, Member

FORMULAS = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "'=quoted"]


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
    rec = {
        "source": '=HYPERLINK("http://evil")',
        "frame": None,
        "time": None,
        "face": 0,
        "box": [1, 2, 3, 4],
        "label": "happy",
        "scores": {"happy": 0.6, labels[1]: 0.4},
        "detector": "@yunet",
        "detector_score": 0.9,
        "yaw": -12.5,
        "pitch": None,
        "roll": None,
        "track_id": None,
        "score": 0.6,
    }
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
    assert any(
        r["change_valence"].startswith("-") or r["change_valence"] in ("0.0", "") for r in rows
    )


def test_the_reports_track_csv_neutralises_names(tmp_path):
    pytest.importorskip("plotly")
    from mobilefer.study.report import Collector, write_report

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
    tmp_path, tiny_config, monkeypatch
):
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
    made = ex.export_checkpoint(
        ck, out, data=data, flip_tta=False, prior_tau=0.0, zoom=1.0, int8=True
    )
    assert made["path"] == str(out)
    assert neighbour.read_bytes() == b"mine" and left_behind(tmp_path) == []
    from mobilefer import ExpressionModel

    assert ExpressionModel(out).card.precision == "int8"


def test_reports_page_and_csv_are_written_both_or_neither(tmp_path, monkeypatch):
    pytest.importorskip("plotly")
    import os

    import mobilefer.sinks as sinks
    from mobilefer.study.report import Collector, write_report

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
    from mobilefer.study.plan import StudyPlan, read_participants

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

    from mobilefer.study.plan import StudyPlan
    from mobilefer.study.report import Collector, render_report

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
    import mobilefer.study.report as report

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

    from mobilefer.study.report import Collector

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

    rec = {
        "source": "v.mp4",
        "frame": 0,
        "time": 0.0,
        "face": 0,
        "box": [1, 2, 30, 30],
        "label": "happy",
        "scores": scores("happy", 0.8),
        "detector": "yunet",
        "detector_score": 0.9,
        "yaw": 1.0,
        "pitch": 2.0,
        "roll": 3.0,
        "track_id": 0,
        "score": 0.8,
    }
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


# ------------------------------------------------------------------ crashes and wrong results
@pytest.mark.parametrize(
    "which, text",
    [
        ("events", "name,start,end,start\nad,0,1,2\n"),
        ("participants", "clip,participant,clip\na.mp4,ann,b.mp4\n"),
    ],
)
def test_a_repeated_column_is_one_clear_error(tmp_path, which, text):
    from mobilefer.study.plan import read_events, read_participants

    path = tmp_path / f"{which}.csv"
    path.write_text(text)
    with pytest.raises(InputError, match="is given twice; keep one"):
        (read_events if which == "events" else read_participants)(path)


def odd_model(tmp_path, labels, name="odd.onnx"):
    pytest.importorskip("onnx")
    import shutil
    from dataclasses import replace

    from mobilefer.modelcard import read_card_file, write_card

    from conftest import TINY_MODEL

    path = tmp_path / name
    shutil.copyfile(TINY_MODEL, path)
    card = read_card_file(path)
    if set(labels) & {"source", "x", "score"}:  # write_card refuses these: write it raw
        import onnx

        proto = onnx.load(str(path))
        entry = next(p for p in proto.metadata_props if p.key == "mobilefer")
        import json

        meta = json.loads(entry.value)
        meta["labels"], meta["prior"] = list(labels), None
        entry.value = json.dumps(meta)
        onnx.save(proto, str(path))
        return path
    write_card(path, replace(card, labels=tuple(labels), prior=None))
    return path


def test_a_label_named_like_a_record_field_is_refused_when_the_model_loads(tmp_path):
    from mobilefer import ModelError, Recognizer

    path = odd_model(tmp_path, ["source", "x", "score", "happy", "sad", "l5", "l6"])
    with pytest.raises(ModelError, match="label 'source' is the name of a record field"):
        Recognizer(path, detector="haar")


def test_a_report_of_a_model_with_other_labels(tmp_path, capsys, astronaut):
    pytest.importorskip("plotly")
    from conftest import run, write_video

    model = odd_model(tmp_path, [f"l{i}" for i in range(7)])
    clip_path = write_video(tmp_path / "c.mp4", astronaut, frames=12)
    code, _, err = run(
        capsys,
        "report",
        clip_path,
        "--model",
        model,
        "--detector",
        "haar",
        "--out",
        tmp_path / "r.html",
        "--csv",
        tmp_path / "r.csv",
    )
    assert code == 0, err
    assert "share_l0" in (tmp_path / "r.csv").read_text()


def test_a_shipped_model_whose_bytes_changed_is_refused(tmp_path, monkeypatch):
    import shutil

    import mobilefer.model as model
    from mobilefer import ModelError, Recognizer

    for name, digest in model.SHIPPED_SHA256.items():  # the table is the files'
        import hashlib

        assert hashlib.sha256((model.models_dir() / name).read_bytes()).hexdigest() == digest
    copy = tmp_path / "models"
    shutil.copytree(model.models_dir(), copy)
    tampered = copy / model.MODELS["fer2013"]  # the default's file
    raw = bytearray(tampered.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one weight's byte
    tampered.write_bytes(bytes(raw))
    monkeypatch.setattr(model, "models_dir", lambda: copy)
    with pytest.raises(ModelError, match="not the file that shipped"):
        Recognizer(detector="haar")
    Recognizer("ferplus", detector="haar")  # the untouched one still loads


@pytest.mark.parametrize(
    "arrays, message",
    [
        (
            {
                "pixels": np.zeros((5, 48, 48), np.uint8),
                "emotion": np.zeros(4, np.int64),
                "usage": np.zeros(5, np.int8),
            },
            "5 faces, 4 labels",
        ),
        (
            {
                "pixels": np.full((3, 48, 48), 300.0),
                "emotion": np.zeros(3, np.int64),
                "usage": np.zeros(3, np.int8),
            },
            "whole numbers 0-255",
        ),
        (
            {
                "pixels": np.full((3, 48, 48), 0.5),
                "emotion": np.zeros(3, np.int64),
                "usage": np.zeros(3, np.int8),
            },
            "whole numbers 0-255",
        ),
    ],
)
def test_evaluate_data_is_checked(tmp_path, arrays, message):
    from mobilefer.data import load_fer2013
    from mobilefer.errors import DataError

    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        load_fer2013(path)


def test_evaluate_on_an_empty_split_says_so(tmp_path, capsys, tiny_model):
    from conftest import run

    path = tmp_path / "d.npz"
    np.savez(
        path,
        pixels=np.zeros((4, 48, 48), np.uint8),
        emotion=np.arange(4),
        usage=np.zeros(4, np.int8),
    )
    code, out, err = run(
        capsys, "evaluate", "--data", path, "--split", "private", "--model", tiny_model
    )
    assert code == 2 and "no faces in the private split" in err and "accuracy" not in out


def test_a_webm_without_a_frame_count_is_a_clip_the_server_reads(tmp_path, astronaut):
    pytest.importorskip("plotly")
    av = pytest.importorskip("av")
    import cv2

    from mobilefer import Recognizer
    from mobilefer.serve.demo import Demo

    path = tmp_path / "recorded.webm"  # as a browser's MediaRecorder writes it: live, no count
    out = av.open(str(path), "w", format="webm", options={"live": "1"})
    s = out.add_stream("libvpx", rate=10)
    s.width, s.height, s.pix_fmt = 320, 240, "yuv420p"
    frame = cv2.resize(astronaut, (320, 240))[:, :, ::-1]
    for _ in range(12):
        for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), "rgb24")):
            out.mux(p)
    for p in s.encode():
        out.mux(p)
    out.close()
    assert cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT) <= 0
    import threading

    got = Demo(Recognizer(detector="haar")).analyze_clip(
        path.read_bytes(), "recorded.webm", threading.Event()
    )
    assert got["frames"] == 12 and got["tracks"] >= 1


def test_haars_faces_come_in_one_order_whatever_the_cascade_gives():
    from mobilefer.detectors import HaarDetector

    class Shuffled:
        def __init__(self):
            self.calls = 0

        def detectMultiScale(self, gray, **k):  # noqa: N802 (OpenCV's name)
            self.calls += 1
            boxes = [(300, 40, 60, 60), (20, 50, 70, 70), (20, 10, 30, 30)]
            return np.array(boxes[self.calls % 3 :] + boxes[: self.calls % 3])

    det = HaarDetector()
    det._local.cascade = Shuffled()
    image = np.zeros((200, 400, 3), np.uint8)
    orders = {tuple(d.box for d in det.detect(image, 0)) for _ in range(3)}
    assert orders == {((20, 10, 30, 30), (20, 50, 70, 70), (300, 40, 60, 60))}


def test_a_bytes_path_is_a_path_not_forty_webcams(tmp_path, monkeypatch, tiny_model):
    import mobilefer.sources as sources
    from mobilefer import Recognizer

    opened = []
    monkeypatch.setattr(sources, "open_camera", lambda i: opened.append(i))
    rec = Recognizer(tiny_model, detector="haar")
    (result,) = rec.stream(str(tmp_path / "missing.jpg").encode())
    assert opened == [] and "missing.jpg" in result.error
    with pytest.raises(InputError, match="source of bytes"):
        list(rec.stream(b"\xff\xd8" + b"\0" * 5000))


def test_summarize_names_what_is_wrong_with_a_record_dict():
    with pytest.raises(InputError, match="not a record"):
        summarize([{"source": "a.mp4"}])
    with pytest.raises(InputError, match="scores"):
        summarize(
            [
                {
                    "source": "a.mp4",
                    "frame": 0,
                    "time": 0.0,
                    "label": "happy",
                    "scores": {"happy": 2.0},
                }
            ]
        )


def test_records_with_their_labels_in_another_order_are_read(tmp_path):
    import json

    base = {
        "source": "v.mp4",
        "frame": 0,
        "time": 0.0,
        "face": 0,
        "box": [1, 2, 3, 4],
        "label": "happy",
        "score": 0.8,
        "track_id": 0,
    }
    first = scores("happy", 0.8)
    second = dict(reversed(list(first.items())))
    path = tmp_path / "r.jsonl"
    path.write_text(
        json.dumps(base | {"scores": first})
        + "\n"
        + json.dumps(base | {"frame": 1, "scores": second})
        + "\n"
    )
    recs = list(iter_records(path))
    assert list(recs[1]["scores"]) == list(first)
    (summary,) = summarize(recs + [base | {"frame": 2, "scores": second}])
    assert summary.tracks[0].frames == 3


def test_recognizer_given_a_number_as_its_model_says_what_it_takes():
    from mobilefer import ModelError, Recognizer

    with pytest.raises(ModelError, match="expected a name"):
        Recognizer(model=123)


def test_many_labels_are_counted_without_overflow():
    labels = [f"c{i}" for i in range(200)]
    p = np.full(200, 0.2 / 199)
    p[150] = 0.8
    rec = {
        "source": "v.mp4",
        "frame": 0,
        "time": 0.0,
        "box": [1, 1, 5, 5],
        "track_id": 0,
        "label": "c150",
        "scores": dict(zip(labels, p.tolist(), strict=True)),
    }
    (summary,) = summarize([rec | {"frame": i} for i in range(12)])
    assert summary.tracks[0].dominant == "c150"


def test_quantize_without_sympy_names_what_to_install(tmp_path, capsys, monkeypatch, tiny_model):
    import sys

    from conftest import run

    monkeypatch.setitem(sys.modules, "sympy", None)
    code, _, err = run(
        capsys, "quantize", tiny_model, "--data", tmp_path / "d.npz", "--out", tmp_path / "q.onnx"
    )
    assert code == 2 and "sympy is missing" in err and "Traceback" not in err


def test_what_is_neither_a_source_nor_a_result_is_one_clear_error(tiny_model):
    from mobilefer import Recognizer

    with pytest.raises(InputError, match="not a result or record"):
        summarize([None])
    with pytest.raises(InputError, match="source of type dict"):
        list(Recognizer(tiny_model, detector="haar").stream({"a": 1}))


def test_labels_and_names_with_markup_stay_text_in_the_report(tmp_path, capsys, astronaut):
    pytest.importorskip("plotly")
    from conftest import run, write_video

    labels = [f"<img src=x onerror=alert({i})>" for i in range(7)]
    model = odd_model(tmp_path, labels)
    clip_path = write_video(tmp_path / "<b onclick=x>clip.mp4", astronaut, frames=12)
    events = tmp_path / "events.csv"
    events.write_text('name,start,end\n"<script>e()</script>",0,0.5\n')
    out = tmp_path / "r.html"
    code, _, err = run(capsys, "report", clip_path, "--model", model, "--detector", "haar",
                       "--events", events, "--out", out)  # fmt: skip
    assert code == 0, err
    page = out.read_text()
    assert "<img src=x" not in page and "<b onclick" not in page
    assert "<script>e()" not in page and "&lt;script&gt;e()" in page
