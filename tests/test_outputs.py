"""What ``--save`` writes, and what it does when writing fails: one line naming the output,
nothing half-written left behind, and every other input still saved."""

from __future__ import annotations

import io
import os
import re
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from mobilefer.errors import InputError

from conftest import cli_argv, predict, records, run, write_video


def test_a_long_name_is_shortened_and_kept_unique(capsys, tmp_path, tiny_model, jpg_bytes):
    folder = tmp_path / "in"
    folder.mkdir()
    for first in "ab":
        (folder / (first * 250 + ".jpg")).write_bytes(jpg_bytes)  # 254 bytes: legal
    (folder / "z.jpg").write_bytes(jpg_bytes)
    code, out, err = predict(capsys, tiny_model, folder, "--save", tmp_path / "out")
    assert code == 0, err
    saved = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(saved) == 3 and all(len(n.encode()) <= 255 for n in saved)
    assert saved[0].startswith("a" * 200) and saved[1].startswith("b" * 200)
    assert saved[2] == "z_mobilefer.png" and len(records(out)) >= 3


def test_a_video_that_cannot_be_created_is_one_error(
    capsys, monkeypatch, tmp_path, tiny_model, astronaut, jpg_bytes
):
    folder = tmp_path / "in"
    folder.mkdir()
    write_video(folder / "a_clip.mp4", astronaut, frames=3)
    (folder / "b.jpg").write_bytes(jpg_bytes)
    real = tempfile.mkstemp

    def read_only(*args, **kw):
        if kw.get("suffix") == ".mp4":
            raise OSError(30, "Read-only file system")
        return real(*args, **kw)

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    code, out, err = predict(capsys, tiny_model, folder, "--save", tmp_path / "out")
    assert code == 1 and "Traceback" not in err
    assert "a_clip_mobilefer.mp4: cannot save (Read-only file system)" in err
    assert (tmp_path / "out" / "b_mobilefer.png").is_file()
    assert {r["source"] for r in records(out)} == {
        str(folder / "a_clip.mp4"),
        str(folder / "b.jpg"),
    }


def test_a_broken_video_is_not_counted_as_saved(
    capsys, monkeypatch, tmp_path, tiny_model, astronaut, jpg_bytes
):
    import cv2

    class FullDisk:  # what cv2.VideoWriter leaves when the disk fills: bytes, no index
        def __init__(self, path, *args):
            self.path = path

        def isOpened(self):
            return True

        def write(self, frame):
            pass

        def release(self):
            with open(self.path, "wb") as f:
                f.write(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)

    write_video(tmp_path / "clip.mp4", astronaut, frames=3)
    (tmp_path / "z.jpg").write_bytes(jpg_bytes)
    monkeypatch.setattr(cv2, "VideoWriter", FullDisk)
    out_dir = tmp_path / "out"
    code, out, err = predict(
        capsys, tiny_model, tmp_path / "clip.mp4", tmp_path / "z.jpg", "--save", out_dir
    )
    assert code == 1 and "clip_mobilefer.mp4: cannot save (the written video is broken" in err
    assert sorted(p.name for p in out_dir.iterdir()) == ["z_mobilefer.png"]  # no leftovers
    assert "annotated 1 file(s)" in err


def test_saved_videos_and_images_get_the_umask_mode(
    capsys, tmp_path, tiny_model, astronaut, jpg_bytes
):
    write_video(tmp_path / "clip.mp4", astronaut, frames=3)
    (tmp_path / "z.jpg").write_bytes(jpg_bytes)
    old = os.umask(0o022)
    try:
        code, _, err = predict(
            capsys,
            tiny_model,
            tmp_path / "clip.mp4",
            tmp_path / "z.jpg",
            "--save",
            tmp_path / "out",
        )
    finally:
        os.umask(old)
    assert code == 0, err
    for name in ("clip_mobilefer.mp4", "z_mobilefer.png"):
        assert stat.S_IMODE((tmp_path / "out" / name).stat().st_mode) == 0o644, name


def test_a_failed_png_write_leaves_no_partial_file(monkeypatch, tmp_path, astronaut):

    import mobilefer.sinks as sinks
    from mobilefer.sinks import SaveFolder

    def full(src, dst):  # the PNG was written beside its place; the disk fills at the rename
        raise OSError(28, "No space left on device")

    folder = SaveFolder(tmp_path / "out")
    folder.check()
    monkeypatch.setattr(sinks.os, "replace", full)
    with pytest.raises(InputError, match="No space left"):
        folder.write_image(tmp_path / "out" / "a.png", astronaut)
    assert list((tmp_path / "out").iterdir()) == [] and folder.written == 0


@pytest.mark.parametrize("where", ["file-as-folder", "folder"])
def test_ray_out_is_checked_before_ray_starts(
    capsys, monkeypatch, tmp_path, tiny_model, jpg_bytes, where
):
    ray = pytest.importorskip("ray")

    (tmp_path / "a.jpg").write_bytes(jpg_bytes)
    (tmp_path / "taken").write_text("a file")
    (tmp_path / "dir.jsonl").mkdir()
    out = tmp_path / "taken" / "r.jsonl" if where == "file-as-folder" else tmp_path / "dir.jsonl"

    def no_ray(*a, **kw):
        raise AssertionError("Ray was started before --out was checked")

    monkeypatch.setattr(ray, "init", no_ray)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    code, out_text, err = run(
        capsys,
        "predict",
        tmp_path / "a.jpg",
        "--engine",
        "ray",
        "--out",
        out,
        "--model",
        tiny_model,
    )
    assert code == 2 and not out_text
    (line,) = err.strip().splitlines()
    want = "its folder is a file" if where == "file-as-folder" else "is a folder"
    assert "--out" in line and want in line


#: A value other than the default for every option of the record (mobilefer.options.Options).
NOT_DEFAULT = {
    "model": "m.onnx",
    "threads": 3,
    "device": "auto",
    "flip_tta": True,
    "prior_tau": 0.5,
    "detector": "haar",
    "yunet": "y.onnx",
    "margin": 0.1,
    "detect_size": 100,
    "detect_every": 3,
    "smoothing": 0.3,
    "max_frames": 5,
    "max_pixels": 1000,
    "max_yaw": 30.0,
    "mesh": True,
    "blendshapes": True,
}
#: Options that are flags (``--mesh``), not ``--option VALUE``.
FLAGS = {"mesh", "blendshapes"}
#: predict's flags that are not options of the record, and what --engine ray does with them.
RAY_OWN = {
    "--format": (["csv"], None),
    "--save": (["saved"], None),
    "--actors": (["3"], 3),
    "--calibrate": (["neutral.jpg"], None),
}
RAY_ONLY = {"--engine", "--address", "--out", "--overwrite", "-h", "--help"}


def flag(name: str, value) -> list[str]:
    if name in FLAGS:
        return ["--" + name.replace("_", "-")]
    word = {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value
    return ["--" + name.replace("_", "-"), str(word)]


def test_the_option_record_covers_every_option():
    from mobilefer.options import SPECS, Options

    assert set(NOT_DEFAULT) == set(SPECS)
    assert all(getattr(Options(), k) != v for k, v in NOT_DEFAULT.items())


def test_ray_takes_every_option_of_predict_or_refuses_it(capsys, monkeypatch, tmp_path):
    ray = pytest.importorskip("ray")

    import mobilefer.distributed as mray

    from conftest import run

    _, usage, _ = run(capsys, "predict", "--help")
    options = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", usage))
    record = {flag(k, v)[0] for k, v in NOT_DEFAULT.items()}
    assert options - RAY_ONLY == record | set(RAY_OWN), "a predict option without a Ray test"
    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(
        mray, "predict", lambda source, options, **kw: calls.append((options, kw)) or None
    )
    monkeypatch.setattr(mray, "batches", lambda ds: iter(()))
    out = tmp_path / "r.jsonl"
    base = ["predict", "x.jpg", "--engine", "ray", "--out", out, "--overwrite"]
    for name, value in NOT_DEFAULT.items():
        calls.clear()
        code, _, err = run(capsys, *base, *flag(name, value))
        assert code == 0 and getattr(calls[0][0], name) == value, (name, err)
    for option, (values, forwarded) in RAY_OWN.items():
        calls.clear()
        code, _, err = run(capsys, *base, option, *values)
        if forwarded is None:
            assert code == 2 and not calls and len(err.strip().splitlines()) == 1, option
        else:
            assert code == 0 and calls[0][1]["actors"] == forwarded


@pytest.mark.parametrize("command", ["predict", "webcam", "report", "serve"])
def test_every_front_end_takes_every_option_of_the_record(capsys, command):
    from conftest import run

    _, usage, _ = run(capsys, command, "--help")
    for name, value in NOT_DEFAULT.items():
        assert flag(name, value)[0] in usage, (command, name)


def test_serve_builds_its_app_from_the_options(capsys, monkeypatch):
    pytest.importorskip("starlette")
    import socket

    import uvicorn

    import mobilefer.serve

    from conftest import run

    got = []
    monkeypatch.setattr(mobilefer.serve, "create_app", lambda options, **kw: got.append(options))
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = ["serve", "--port", str(port)]
    for name, value in NOT_DEFAULT.items():
        argv += flag(name, value)
    assert run(capsys, *argv)[0] == 0
    assert all(getattr(got[0], k) == v for k, v in NOT_DEFAULT.items())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--margin", "5"], "margin=5.0: expected a number from -0.4 to 1"),
        (["--threads", "100000"], "threads=100000: expected a whole number from 1 to 256"),
        (["--smoothing", "1"], "smoothing=1.0: expected a number from 0 to below 1"),
        (["--prior-tau", "nan"], "prior_tau=nan: expected a number from 0 to 2"),
    ],
)
def test_an_option_out_of_range_is_one_line_and_exit_2(capsys, argv, message):
    from conftest import run

    code, out, err = run(capsys, "predict", "x.jpg", *argv)
    assert code == 2 and not out and err.strip() == f"mobilefer: {message}"


def test_every_writer_takes_its_fields_from_the_one_record_schema(
    capsys, tmp_path, tiny_model, jpg_bytes
):
    """JSON Lines keys, the CSV header and (with the extra) Ray's Arrow schema follow
    RECORD_FIELDS (its optional fields only when an option fills them); so does the no-face
    record."""
    import csv

    import cv2

    from mobilefer.records import RECORD_FIELDS, csv_columns
    from mobilefer.records import records as build

    names = [f.name for f in RECORD_FIELDS if not f.optional]
    assert [f.name for f in RECORD_FIELDS if f.optional] == ["action_units", "blendshapes"]
    (tmp_path / "a.jpg").write_bytes(jpg_bytes)
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((64, 64, 3), 200, np.uint8))
    code, out, _ = predict(capsys, tiny_model, tmp_path)
    assert code == 0 and [list(r) for r in records(out)] == [names, names]
    assert list(build("x", [], detector="haar")[0]) == names
    code, out, _ = predict(capsys, tiny_model, tmp_path, "--format", "csv")
    header = next(csv.reader(io.StringIO(out)))
    labels = list(records(predict(capsys, tiny_model, tmp_path)[1])[0]["scores"])
    assert header == csv_columns(labels) and header[: len(labels) * -1][-2:] == [
        "score",
        "calibrated",
    ]
    from mobilefer.distributed import FIELDS

    assert list(FIELDS) == [*names, "error"]
    pytest.importorskip("pyarrow")
    from mobilefer.sinks import arrow_schema

    assert arrow_schema(labels).names == list(FIELDS)
    extras = ("action_units", "blendshapes")
    assert arrow_schema(labels, extras).names == [*names, *extras, "error"]


def test_save_keeps_every_output(capsys, tmp_path, tiny_model, jpg_bytes, astronaut):
    import cv2

    for sub in ("a", "b"):
        (tmp_path / "in" / sub).mkdir(parents=True)
        (tmp_path / "in" / sub / "x.jpg").write_bytes(jpg_bytes)
    cv2.imwrite(str(tmp_path / "in" / "a" / "x.png"), astronaut)
    out_dir = tmp_path / "out"
    code, out, err = predict(
        capsys,
        tiny_model,
        str(tmp_path / "in"),
        str(tmp_path / "in" / "a" / "x.jpg"),
        "--save",
        str(out_dir),
    )
    assert code == 0, err
    saved = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*.png"))
    assert len(saved) == 4 == len(records(out))
    assert saved == [
        "a/x_mobilefer-2.png",
        "a/x_mobilefer.png",
        "b/x_mobilefer.png",
        "x_mobilefer.png",
    ]
    assert "saved as" in err and "annotated 4 file(s)" in err


def test_save_target_is_checked_before_any_work(capsys, tmp_path, tiny_model, jpg_bytes):
    (tmp_path / "a.jpg").write_bytes(jpg_bytes)
    (tmp_path / "taken").write_text("a file")
    for target in (tmp_path / "taken", tmp_path / "taken" / "sub"):
        code, out, err = predict(capsys, tiny_model, str(tmp_path / "a.jpg"), "--save", str(target))
        assert code == 2 and out == "" and "--save" in err and "Traceback" not in err


def test_a_failed_write_is_reported(capsys, monkeypatch, tmp_path, tiny_model, jpg_bytes):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(jpg_bytes)
    (tmp_path / "in" / "b.jpg").write_bytes(jpg_bytes)
    import os

    import mobilefer.sinks as sinks

    real = os.replace

    def replace(src, dst):
        if Path(dst).name.startswith("a_"):
            raise OSError(28, "No space left on device", str(dst))
        return real(src, dst)

    monkeypatch.setattr(sinks.os, "replace", replace)
    code, out, err = predict(
        capsys, tiny_model, str(tmp_path / "in"), "--save", str(tmp_path / "out")
    )
    assert code == 1 and "a_mobilefer.png: cannot save (No space left on device)" in err
    assert len(records(out)) == 2 and (tmp_path / "out" / "b_mobilefer.png").is_file()


def test_closed_pipe_ends_quietly(tmp_path, tiny_model, jpg_bytes):
    for i in range(6):
        (tmp_path / f"{i}.jpg").write_bytes(jpg_bytes)
    cmd = " ".join(
        cli_argv(
            "predict",
            *(str(tmp_path / f"{i}.jpg") for i in range(6)),
            "--model",
            str(tiny_model),
            "--detector",
            "haar",
        )
    )
    p = subprocess.run(f"{cmd} | head -c 10", shell=True, capture_output=True, text=True)
    assert len(p.stdout) == 10
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_full_disk_is_one_error_line(tmp_path, tiny_model, jpg_bytes):
    (tmp_path / "a.jpg").write_bytes(jpg_bytes)
    with open("/dev/full", "w") as full:
        p = subprocess.run(
            cli_argv(
                "predict", str(tmp_path / "a.jpg"), "--model", str(tiny_model), "--detector", "haar"
            ),
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
        )
    assert p.returncode == 1
    assert "cannot write the results: No space left on device" in p.stderr
    assert "Traceback" not in p.stderr


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file systems refuse non-UTF-8 names")
def test_non_utf8_names_with_save_and_video(capsys, tmp_path, tiny_model, jpg_bytes, astronaut):
    from conftest import write_video

    d = tmp_path / "in"
    d.mkdir()
    odd = os.fsencode(d) + b"/caf\xe9.jpg"
    with open(odd, "wb") as f:
        f.write(jpg_bytes)
    write_video(tmp_path / "clip.mp4", astronaut, frames=3)
    os.rename(tmp_path / "clip.mp4", os.fsencode(d) + b"/v\xe9.mp4")
    code, out, err = predict(capsys, tiny_model, str(d), "--save", str(tmp_path / "out"))
    assert code == 0, err
    kinds = {r["frame"] is None for r in records(out)}
    assert kinds == {True, False}  # the photo and the video's frames
    saved = sorted(os.listdir(os.fsencode(tmp_path / "out")))
    assert saved == [b"caf\xe9_mobilefer.png", b"v\xe9_mobilefer.mp4"]


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        (["--out", "{dir}/r.html", "--csv", "{clip}"], "--csv .*clip.mp4: that is an input"),
        (
            ["--out", "{dir}/r.html", "--csv", "{dir}/r.html"],
            "--csv .*r.html: --out writes there too",
        ),
        (["--out", "{dir}/old.html"], "--out .*old.html: exists; pass --overwrite"),
        (["--out", "{dir}/folder.html"], "--out .*folder.html: is a folder"),
        (["--out", "{dir}/fifo.html"], "--out .*fifo.html: not a regular file"),
        (["--out", "/sys/r.html"], "--out /sys/r.html: cannot write there"),
        (["--out", "{dir}/r.html", "--csv", "{dir}/old.csv"], "--csv .*old.csv: exists"),
    ],
)
def test_report_checks_its_outputs_before_any_work_and_never_touches_inputs(
    capsys, monkeypatch, tmp_path, tiny_model, outputs, message
):
    """report --csv clip.mp4 replaced the video; --csv r.html --out r.html the report; a
    folder, /sys or a FIFO were found only after the analysis (a FIFO hung)."""
    pytest.importorskip("plotly")
    import os
    import re
    import shutil

    import mobilefer.study.report

    from conftest import ROOT, run

    clip = tmp_path / "clip.mp4"
    shutil.copy(ROOT / "tests" / "data" / "golden" / "clip.mp4", clip)
    before = clip.read_bytes()
    (tmp_path / "old.html").write_text("old report")
    (tmp_path / "old.csv").write_text("old,csv\n")
    (tmp_path / "folder.html").mkdir()
    os.mkfifo(tmp_path / "fifo.html")
    work = []
    monkeypatch.setattr(mobilefer.study.report.Collector, "add", lambda self, r: work.append(r))
    argv = [a.format(dir=tmp_path, clip=clip) for a in outputs]
    code, out, err = run(capsys, "report", clip, *argv, "--model", tiny_model)
    assert code == 2 and not work, err  # nothing was analysed
    (line,) = err.strip().splitlines()
    assert re.search(message, line), line
    assert clip.read_bytes() == before and (tmp_path / "old.html").read_text() == "old report"


def test_report_replaces_a_file_only_with_overwrite_and_writes_it_whole(
    capsys, tmp_path, tiny_model
):
    pytest.importorskip("plotly")
    import shutil

    from conftest import ROOT, run

    clip = tmp_path / "clip.mp4"
    shutil.copy(ROOT / "tests" / "data" / "golden" / "clip.mp4", clip)
    page, table = tmp_path / "r.html", tmp_path / "r.csv"
    page.write_text("old")
    argv = ["report", clip, "--out", page, "--csv", table, "--model", tiny_model, "--overwrite"]
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    assert page.read_text().startswith("<!doctype html") and table.read_text().startswith("source,")
    assert not list(tmp_path.glob(".mobilefer-*"))  # no temporary file left behind


def test_a_clip_given_twice_to_report_is_read_once(capsys, tmp_path, tiny_model):
    pytest.importorskip("plotly")
    import shutil

    from conftest import ROOT, run

    clip = tmp_path / "clip.mp4"
    shutil.copy(ROOT / "tests" / "data" / "golden" / "clip.mp4", clip)
    code, _, err = run(
        capsys,
        "report",
        clip,
        str(clip),
        "--out",
        tmp_path / "r.html",
        "--csv",
        tmp_path / "r.csv",
        "--model",
        tiny_model,
    )
    assert code == 0 and "clip.mp4: given twice; read once" in err
    rows = (tmp_path / "r.csv").read_text().splitlines()[1:]
    assert rows and all(int(r.split(",")[4]) <= 12 for r in rows)  # frames per track: the clip's


def test_export_and_webcam_never_replace_a_file_they_were_not_told_to(capsys, tmp_path):
    """export --out best.pt wrote the ONNX file over the checkpoint; webcam --save replaced an
    existing video. Both are refused before any work, as report's outputs are."""
    from conftest import run

    ck = tmp_path / "best.pt"
    ck.write_bytes(b"checkpoint")
    code, _, err = run(capsys, "export", ck, "--out", ck)
    assert code == 2 and "that is an input" in err and ck.read_bytes() == b"checkpoint"
    data = tmp_path / "fer2013.npz"  # the data given to read, even with --overwrite
    data.write_bytes(b"faces")
    for argv in (["export", ck, "--data", data], ["quantize", ck, "--data", data]):
        code, _, err = run(capsys, *argv, "--out", data, "--overwrite")
        assert code == 2 and "that is an input" in err and data.read_bytes() == b"faces"
    video = tmp_path / "live.mp4"
    video.write_bytes(b"old video")
    code, _, err = run(capsys, "webcam", "0", "--save", video)
    assert code == 2 and "exists; pass --overwrite" in err and video.read_bytes() == b"old video"


def test_a_clip_whose_name_is_not_utf8_gets_its_report(capsys, tmp_path, tiny_model):
    """It ended in a UnicodeEncodeError traceback after the work, leaving a 0-byte page."""
    pytest.importorskip("plotly")
    import os
    import shutil

    from conftest import ROOT, run

    clip = os.fsdecode(bytes(tmp_path) + b"/clip\xff.mp4")
    shutil.copy(ROOT / "tests" / "data" / "golden" / "clip.mp4", clip)
    page, table = tmp_path / "r.html", tmp_path / "r.csv"
    code, _, err = run(capsys, "report", clip, "--out", page, "--csv", table, "--model", tiny_model)
    assert code == 0 and "Traceback" not in err
    assert page.stat().st_size > 1000 and "clip\\udcff.mp4" in table.read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["predict", "x.jpg", "--engine", "ray", "--out", "r.jsonl", "--actors", "100000"],
            "must lie in 1-1024",
        ),
        (["report", "--help"], None),
    ],
)
def test_counts_have_a_maximum_and_report_offers_no_format(capsys, argv, message):
    from conftest import run

    code, out, err = run(capsys, *argv)
    if message:
        assert code == 2 and message in err
    else:
        assert code == 0 and "--format" not in out


def test_save_inside_an_input_folder_is_refused(capsys, tmp_path, tiny_model, jpg_bytes):
    """Found by the third round's fresh probe: `predict photos --save photos/out` read its own
    annotated files back as inputs on the next run and saved them a folder deeper."""
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(jpg_bytes)
    for save in (photos / "out", photos / ".." / "photos" / "out"):
        code, out, err = predict(capsys, tiny_model, photos, "--save", save)
        assert code == 2 and "inside the input folder" in err and not out
    assert not (photos / "out").exists()
    code, _, _ = predict(capsys, tiny_model, photos / "a.jpg", "--save", photos / "out")
    assert code == 0 and (photos / "out").is_dir()  # a file of the folder, not the folder
