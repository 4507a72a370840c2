"""RecordWriter and SaveFolder on their own: the formats of records and the names of outputs."""

from __future__ import annotations

import csv
import io
import json

import pytest

from mobilefer.errors import InputError
from mobilefer.records import csv_columns, records
from mobilefer.results import Face
from mobilefer.sinks import RecordWriter, SaveFolder

LABELS = ("happy", "sad")
FACE = Face(
    (1, 2, 30, 40), "happy", {"happy": 0.123456789, "sad": 0.876543211 - 1e-9}, "yunet", 0.9, 3
)


def written(fmt: str, recs: list[dict]) -> str:
    out = io.StringIO()
    RecordWriter(fmt, LABELS, out).write(recs)
    return out.getvalue()


def test_json_lines_are_the_records_one_per_line():
    recs = records("a.jpg", [FACE, FACE]) + records("b.png", [], detector="haar")
    lines = written("jsonl", recs).splitlines()
    assert [json.loads(line) for line in lines] == recs
    assert json.loads(lines[2])["face"] is None and json.loads(lines[2])["detector"] == "haar"


def test_csv_expands_box_and_scores_and_rounds_probabilities():
    recs = records("clip.mp4", [FACE], frame=4, t=0.13333) + records("b.png", [], detector="haar")
    rows = list(csv.DictReader(io.StringIO(written("csv", recs))))
    assert list(rows[0]) == csv_columns(LABELS)
    assert rows[0] | {} == {
        "source": "clip.mp4",
        "frame": "4",
        "time": "0.133",
        "face": "0",
        "x": "1",
        "y": "2",
        "w": "30",
        "h": "40",
        "label": "happy",
        "score": "0.123457",
        "detector": "yunet",
        "detector_score": "0.9",
        "yaw": "",
        "pitch": "",
        "roll": "",
        "track_id": "3",
        "calibrated": "false",
        "happy": "0.123457",
        "sad": "0.876543",
    }
    assert rows[1]["label"] == "" and rows[1]["happy"] == "" and rows[1]["detector"] == "haar"


def test_csv_shows_control_characters_in_names_escaped():
    rows = list(csv.DictReader(io.StringIO(written("csv", records("a\nb\x1b.jpg", [FACE])))))
    assert rows[0]["source"] == "a\\x0ab\\x1b.jpg"


def test_json_refuses_a_nan_rather_than_writing_invalid_json():
    bad = Face((0, 0, 1, 1), "happy", {"happy": float("nan"), "sad": 0.0})
    with pytest.raises(ValueError):
        written("jsonl", records("a.jpg", [bad]))


def test_save_folder_mirrors_input_folders_and_never_overwrites(tmp_path):
    folder = SaveFolder(tmp_path / "out")
    folder.check()
    root = str(tmp_path / "photos")
    first, renamed = folder.path_for(f"{root}/sub/a.jpg", root, ".png")
    assert first == tmp_path / "out" / "sub" / "a_mobilefer.png" and not renamed
    again, renamed = folder.path_for(f"{root}/sub/a.jpg", root, ".png")  # taken in this run
    assert again.name == "a_mobilefer-2.png" and renamed
    (tmp_path / "out" / "b_mobilefer.png").write_bytes(b"")  # taken on disk
    given, renamed = folder.path_for("elsewhere/b.jpg", None, ".png")  # a file given by name
    assert given == tmp_path / "out" / "b_mobilefer-2.png" and renamed
    webcam, _ = folder.path_for("webcam:0", None, ".mp4")
    assert webcam.name == "webcam_0_mobilefer.mp4"


def test_save_folder_check_refuses_a_file_and_an_unwritable_folder(tmp_path):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(InputError, match="exists and is not a folder"):
        SaveFolder(tmp_path / "taken").check()
    with pytest.raises(InputError, match="cannot write there"):  # a folder inside a file
        SaveFolder(tmp_path / "taken" / "out").check()
