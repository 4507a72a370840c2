import csv
import io
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from mobilefer import EMOTIONS

from conftest import ROOT, FakeCamera, cli_argv, records, run, write_video


@pytest.fixture()
def photo(tmp_path, astronaut):
    import cv2

    path = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(path), astronaut)
    return path


@pytest.fixture()
def mixed_folder(tmp_path, astronaut):
    """A good photo, a truncated PNG, an empty file and a text file."""
    import cv2

    d = tmp_path / "mixed"
    (d / "sub").mkdir(parents=True)
    cv2.imwrite(str(d / "sub" / "good.png"), astronaut)
    ok, png = cv2.imencode(".png", astronaut)
    (d / "truncated.png").write_bytes(png.tobytes()[: len(png) // 2])
    (d / "empty.jpg").write_bytes(b"")
    (d / "notes.txt").write_text("not an image")
    return d


@pytest.mark.parametrize("detector", ["haar", "yunet"])
def test_predict_image_jsonl(capsys, tiny_model, photo, detector):
    code, out, err = run(capsys, "predict", photo, "--model", tiny_model, "--detector", detector)
    assert code == 0, err
    (rec,) = records(out)
    assert rec["source"] == str(photo) and rec["detector"] == detector
    assert rec["frame"] is None and rec["time"] is None
    assert list(rec["scores"]) == list(EMOTIONS)
    assert sum(rec["scores"].values()) == pytest.approx(1, abs=1e-6)
    assert rec["label"] in EMOTIONS and len(rec["box"]) == 4


def test_predict_folder_reports_bad_files_and_keeps_the_good(capsys, tiny_model, mixed_folder):
    code, out, err = run(
        capsys, "predict", mixed_folder, "--model", tiny_model, "--detector", "haar"
    )
    assert code == 1
    (rec,) = records(out)
    assert rec["source"].endswith("good.png")
    for name in ("truncated.png", "empty.jpg"):
        assert name in err
    # a file that is not an image is skipped with one summary line, not counted as a failure
    assert "notes.txt" not in err
    assert "skipped 1 file(s) that are not images or videos (.txt 1)" in err
    assert "2 input(s) failed" in err
    assert "Traceback" not in err


def test_predict_folder_as_a_user_runs_it(tiny_model, mixed_folder):
    """The real console entry point: one line per bad file, no traceback, non-zero exit."""
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "mobilefer",
            "predict",
            str(mixed_folder),
            "--model",
            str(tiny_model),
            "--detector",
            "haar",
        ],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 1
    assert len(records(p.stdout)) == 1
    assert "Traceback" not in p.stderr
    bad = [line for line in p.stderr.splitlines() if line.startswith("mobilefer: ")]
    assert len(bad) == 4  # three files and the summary


def test_predict_csv_schema(capsys, tiny_model, photo):
    code, out, _ = run(
        capsys, "predict", photo, "--model", tiny_model, "--detector", "haar", "--format", "csv"
    )
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 1
    want = [
        "source",
        "frame",
        "time",
        "face",
        "x",
        "y",
        "w",
        "h",
        "label",
        "detector",
        "detector_score",
        "yaw",
        "pitch",
        "roll",
        "track_id",
        "score",
        "calibrated",
        *EMOTIONS,
    ]
    assert list(rows[0]) == want
    assert sum(float(rows[0][k]) for k in EMOTIONS) == pytest.approx(1, abs=1e-4)


def test_missing_path_and_glob(capsys, tiny_model, tmp_path, photo):
    code, out, err = run(
        capsys,
        "predict",
        tmp_path / "nope.jpg",
        str(tmp_path / "*.jpg"),
        "--model",
        tiny_model,
        "--detector",
        "haar",
    )
    assert code == 1
    assert "nope.jpg: no such file or folder" in err
    assert len(records(out)) == 1  # the glob still found the photo


@pytest.mark.parametrize("kind", ["gray", "rgba", "16bit"])
def test_unusual_pngs(capsys, tiny_model, tmp_path, astronaut, kind):
    import cv2

    img = {
        "gray": cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY),
        "rgba": cv2.cvtColor(astronaut, cv2.COLOR_BGR2BGRA),
        "16bit": astronaut.astype(np.uint16) * 257,
    }[kind]
    path = tmp_path / f"{kind}.png"
    cv2.imwrite(str(path), img)
    code, out, err = run(capsys, "predict", path, "--model", tiny_model, "--detector", "haar")
    assert code == 0, err
    assert len(records(out)) == 1


def test_huge_image_and_no_face(capsys, tiny_model, tmp_path):
    import cv2

    path = tmp_path / "huge.png"
    cv2.imwrite(str(path), np.full((8000, 8000, 3), 200, np.uint8))
    code, out, err = run(capsys, "predict", path, "--model", tiny_model, "--detector", "haar")
    assert code == 0, err
    (rec,) = records(out)  # no face: one no-face record, not an error
    assert rec["source"] == str(path) and rec["face"] is None and rec["label"] is None


def test_not_a_mobilefer_model(capsys, tmp_path, photo):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"junk")
    code, out, err = run(capsys, "predict", photo, "--model", bad, "--detector", "haar")
    assert code == 2 and "bad.onnx: not a valid ONNX model" in err


def test_unknown_detector(capsys, tiny_model, photo):
    code, _, err = run(capsys, "predict", photo, "--model", tiny_model, "--detector", "hog")
    assert code == 2 and "invalid choice: 'hog'" in err and "'haar', 'yunet'" in err


def test_video_records_frames_and_saves(capsys, tiny_model, tmp_path, astronaut):
    from mobilefer.sources import video_info

    video = write_video(tmp_path / "clip.mp4", astronaut)
    code, out, err = run(
        capsys,
        "predict",
        video,
        "--model",
        tiny_model,
        "--detector",
        "haar",
        "--save",
        tmp_path / "out",
    )
    assert code == 0, err
    recs = records(out)
    assert [r["frame"] for r in recs] == list(range(12))  # one face in every frame
    assert recs[3]["time"] == pytest.approx(0.3)
    assert len({r["track_id"] for r in recs}) == 1
    assert "frames" in err and "frames/s" in err
    saved = tmp_path / "out" / "clip_mobilefer.mp4"
    assert video_info(saved)[0] == 12


def test_unreadable_video(capsys, tiny_model, tmp_path, photo):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\0" * 1000)
    code, out, err = run(capsys, "predict", bad, photo, "--model", tiny_model, "--detector", "haar")
    assert code == 1
    assert "broken.mp4: cannot open the video" in err
    assert len(records(out)) == 1


def test_webcam_path_with_fake_camera(capsys, tiny_model, tmp_path, astronaut, monkeypatch):
    """``mobilefer webcam`` goes through Recognizer.stream(index): its records name the camera
    by themselves, and the saved video has every frame at the camera's rate."""
    from mobilefer import sources
    from mobilefer.sources import video_info

    frames = [np.ascontiguousarray(np.roll(astronaut, 8 * i, axis=1)) for i in range(6)]
    monkeypatch.setattr(sources, "open_camera", lambda index: FakeCamera(frames, fps=15.0))
    save = tmp_path / "cam.mp4"
    code, out, err = run(
        capsys,
        "webcam",
        "0",
        "--model",
        tiny_model,
        "--detector",
        "haar",
        "--save",
        save,
        "--print",
    )
    assert code == 0, err
    assert [(r["source"], r["frame"]) for r in records(out)] == [("webcam:0", i) for i in range(6)]
    count, fps, _ = video_info(save)
    assert count == 6 and fps == 15.0
    assert "frames/s" in err


def test_webcam_that_does_not_exist(capsys, tiny_model, monkeypatch):
    from mobilefer import sources

    monkeypatch.setattr(sources, "open_camera", lambda index: FakeCamera([], opened=False))
    code, _, err = run(
        capsys,
        "webcam",
        "97",
        "--model",
        tiny_model,
        "--detector",
        "haar",
        "--no-window",
        "--print",
    )
    assert code == 1
    assert err.strip().splitlines() == [
        "mobilefer: webcam 97: no camera found at this index (or it is busy); try another "
        "index, or give the path of a recording"
    ]


def test_webcam_without_display(capsys, tiny_model, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    code, _, err = run(capsys, "webcam", "0", "--model", tiny_model, "--detector", "haar")
    assert code == 2  # a set-up error, as every other
    assert "no display" in err and "--save" in err and "pip install" not in err


@pytest.mark.parametrize(
    ("argv", "what", "module", "extra"),
    [
        (["serve"], "serve", "uvicorn", "serve"),
        (["predict", "x.jpg", "--engine", "ray", "--out", "r.jsonl"], "--engine ray", "ray", "ray"),
    ],
)
def test_missing_extra_is_one_line(capsys, monkeypatch, argv, what, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # as if the extra were not installed
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.strip() == (
        f"mobilefer: {what} needs the [{extra}] extra ({module} is missing): "
        f"pip install 'mobilefer[{extra}]' (from a checkout: pip install -e '.[{extra}]')"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["webcam", "-1"],
        ["predict", "x.jpg", "--detect-every", "0"],
        ["predict", "x.jpg", "--smoothing", "1"],
        ["predict", "x.jpg", "--margin", "nan"],
        ["predict", "x.jpg", "--margin", "-1"],
        ["predict", "x.jpg", "--detect-size", "-5"],
        ["predict", "x.jpg", "--threads", "0"],
        ["predict", "x.jpg", "--max-frames", "-2"],
        ["train", "--data", "x", "--out", "y", "--epochs", "0"],
    ],
)
def test_bad_option_values_are_one_line_and_exit_2(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert "error: argument" in line or ": expected " in line  # argparse's, or the record's


@pytest.mark.parametrize("value", ["9", "x", "nan"])
def test_export_zoom_is_checked_before_any_work(capsys, value):
    """A usage error, found before anything is imported: torch is not needed to say so."""
    code, out, err = run(capsys, "export", "missing.pt", "--out", "m.onnx", "--zoom", value)
    assert code == 2 and out == ""
    assert err.strip() == f"mobilefer: --zoom {value}: expected a number from 0.5 to 2, or auto"


def test_export_zoom_is_checked_in_the_api(tmp_path):
    pytest.importorskip("torch")
    from mobilefer.errors import OptionError
    from mobilefer.train.export import export_checkpoint

    ck = tmp_path / "best.pt"
    ck.write_bytes(b"")
    for bad in (3.0, "1.1", None):
        with pytest.raises(OptionError, match="expected a number from 0.5 to 2"):
            export_checkpoint(ck, tmp_path / "m.onnx", flip_tta=False, prior_tau=0, zoom=bad)


def test_help_shows_defaults_and_version(capsys):
    code, out, _ = run(capsys, "predict", "--help")
    assert code == 0 and "(default: 10)" in out and "(default: 0.6)" in out
    assert "(default: 0)" in " ".join(out.split())  # --max-frames: a zero default is shown
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("mobilefer ")


@pytest.mark.parametrize("command", ["predict", "webcam", "serve", "evaluate", "export", "train"])
def test_help_says_each_default_once_and_never_none(capsys, command):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0 and "(default: None)" not in out and "(default: False)" not in out
    for block in re.split(r"\n  (?=-)", out):  # one option's help text each
        assert block.count("(default") <= 1, block


def test_every_option_has_a_help_line():
    import argparse

    from mobilefer.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, p in sub.choices.items():
        for action in p._actions:
            assert action.help, f"mobilefer {name} {action.option_strings or action.dest}"


def test_first_run_offline_prints_the_yunet_record_and_nothing_else(tmp_path):
    """The README's first command on a fresh install: no network, an empty home and cache;
    YuNet ships inside the package, so stderr stays empty."""
    env = {k: v for k, v in os.environ.items() if k != "MOBILEFER_YUNET"}
    env |= {
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "PYTHONPATH": str(ROOT / "src"),
        "no_proxy": "*",
        "https_proxy": "http://0.0.0.0:9",
    }
    photo = ROOT / "tests" / "data" / "astronaut.jpg"
    p = subprocess.run(
        cli_argv("predict", str(photo)), capture_output=True, text=True, env=env, timeout=120
    )
    assert p.returncode == 0 and p.stderr == ""
    (rec,) = records(p.stdout)
    assert rec["detector"] == "yunet" and rec["label"] in EMOTIONS


def test_library_warnings_are_the_cli_s_own_one_line(tmp_path, tiny_model):
    """Without a usable YuNet (here a broken file named by MOBILEFER_YUNET), auto falls back to
    haar with one line in the CLI's own voice, and the records still come."""
    broken = tmp_path / "yunet.onnx"
    broken.write_bytes(b"not yunet")
    env = os.environ | {"MOBILEFER_YUNET": str(broken), "PYTHONPATH": str(ROOT / "src")}
    photo = ROOT / "tests" / "data" / "astronaut.jpg"
    p = subprocess.run(
        cli_argv("predict", str(photo), "--model", str(tiny_model)),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert p.returncode == 0 and len(records(p.stdout)) == 1
    (line,) = p.stderr.splitlines()
    assert line.startswith("mobilefer: warning: YuNet unavailable, using haar: ")


def test_train_out_that_is_a_file_is_one_line(capsys, tmp_path):
    """--out naming a file ended in a FileExistsError traceback when the run made its folder."""
    taken = tmp_path / "taken"
    taken.write_text("a file")
    code, out, err = run(capsys, "train", "--data", tmp_path / "x.npz", "--out", taken)
    assert (
        code == 2
        and err.strip()
        == f"mobilefer: --out {taken}: exists and is not a folder; name the run's folder"
    )
