"""Round four's defects (#42) outside the server: text that would be a formula in a
spreadsheet, outputs that survive a crash, study files matched by path, bounded memory, and
every public function given mixed or empty inputs. Each test failed before its fix."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from mobilefer import EMOTIONS, compare, summarize
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
