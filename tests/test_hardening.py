"""What real folders hold: each numbered case of the hardening issue, and a fuzz corpus."""

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mobilefer.errors import InputError
from mobilefer.faces import create_detector
from mobilefer.image import read_image

from conftest import detectors_available, png_header, predict, records, run


@pytest.fixture()
def jpg_bytes(astronaut) -> bytes:
    import cv2

    return cv2.imencode(".jpg", astronaut)[1].tobytes()


# 1 ------------------------------------------------------------------ detectors on tiny images
@pytest.mark.parametrize("name", detectors_available())
@pytest.mark.parametrize("shape", [(20, 20), (8, 1000), (1000, 8), (5, 5), (1, 1), (32, 32)])
def test_tiny_images_give_stable_boxes_inside_the_image(name, shape):
    det = create_detector(name)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    runs = [det.detect(img) for _ in range(20)]
    assert all(r == runs[0] for r in runs)  # deterministic
    for d in runs[0]:
        x, y, w, h = d.box
        assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= shape[1] and y + h <= shape[0]


@pytest.mark.parametrize("name", detectors_available())
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(h=st.integers(1, 300), w=st.integers(1, 300), seed=st.integers(0, 2**16))
def test_boxes_lie_inside_any_image(name, h, w, seed):
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    for d in create_detector(name).detect(img):
        x, y, bw, bh = d.box
        assert 0 <= x and 0 <= y and bw > 0 and bh > 0 and x + bw <= w and y + bh <= h


# 2 ------------------------------------------------------------------------- EXIF orientation
def test_exif_orientation_is_applied(tmp_path, astronaut):
    from PIL import Image

    sideways = np.ascontiguousarray(np.rot90(astronaut, 1))  # stored turned 90 degrees left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    path = tmp_path / "phone.jpg"
    Image.fromarray(sideways[:, :, ::-1]).save(path, quality=95, exif=exif)
    img = read_image(path)
    assert img.shape == astronaut.shape
    assert np.abs(img.astype(int) - astronaut).mean() < 8
    assert len(create_detector("haar").detect(img)) == 1


# 3 ------------------------------------------------------------- data after the image's end
def test_motion_photo_with_trailing_video_is_read(tmp_path, jpg_bytes, astronaut):
    path = tmp_path / "motion.jpg"
    path.write_bytes(jpg_bytes + b"\x00\x00\x00\x18ftypmp42" + os.urandom(5000))
    assert read_image(path).shape == astronaut.shape
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(jpg_bytes[: len(jpg_bytes) // 2])
    with pytest.raises(InputError, match="truncated"):
        read_image(cut)


def test_png_with_trailing_bytes_is_read(tmp_path, astronaut):
    import cv2

    png = cv2.imencode(".png", astronaut)[1].tobytes()
    (tmp_path / "x.png").write_bytes(png + b"trailing junk" * 10)
    assert read_image(tmp_path / "x.png").shape == astronaut.shape


# 4 ------------------------------------------------------------------ --save never overwrites
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


# 5 --------------------------------------------------------- unreadable files and pixel bombs
def test_pixel_bomb_is_refused_from_its_header(capsys, tmp_path, tiny_model, jpg_bytes):
    (tmp_path / "bomb.png").write_bytes(png_header(40000, 40000))
    (tmp_path / "good.jpg").write_bytes(jpg_bytes)
    with pytest.raises(InputError, match="1,600,000,000 pixels, over the limit"):
        read_image(tmp_path / "bomb.png")
    code, out, err = predict(capsys, tiny_model, str(tmp_path))
    assert code == 1 and "--max-pixels" in err
    assert [r["source"] for r in records(out)] == [str(tmp_path / "good.jpg")]


def test_unreadable_file_is_one_failure(capsys, monkeypatch, tmp_path, tiny_model, jpg_bytes):
    (tmp_path / "locked.jpg").write_bytes(jpg_bytes)
    (tmp_path / "open.jpg").write_bytes(jpg_bytes)
    real = Path.read_bytes

    def read_bytes(self):  # root reads any file: stand in for a permission error
        if self.name == "locked.jpg":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    code, out, err = predict(capsys, tiny_model, str(tmp_path))
    assert code == 1 and "locked.jpg: cannot read the file (Permission denied)" in err
    assert [r["source"] for r in records(out)] == [str(tmp_path / "open.jpg")]


# 6 is measured in benchmarks/small_faces.py; the detection size it picks is tested here.
def test_large_photos_are_searched_at_a_larger_size():
    from mobilefer.stream import image_detect_size

    assert image_detect_size(480, 640) == 640
    assert image_detect_size(1080, 1920) == 960
    assert image_detect_size(3024, 4032) == 2016  # a 40 px face stays 20 px


def test_small_face_in_a_12_megapixel_photo_is_found(tiny_model, astronaut, has_yunet):
    import cv2

    from mobilefer import Recognizer

    if not has_yunet:
        pytest.skip("../shared/weights lacks YuNet")
    photo = np.full((3024, 4032, 3), 120, np.uint8)
    head = cv2.resize(astronaut[20:220, 130:320], None, fx=0.4, fy=0.4)  # the face: ~40 px
    photo[1500 : 1500 + head.shape[0], 2000 : 2000 + head.shape[1]] = head
    rec = Recognizer(tiny_model, detector="yunet")
    (result,) = list(rec.stream(photo))
    assert len(result.faces) == 1
    x, y, w, h = result.faces[0].box
    assert 2000 < x < 2000 + head.shape[1] and 1500 < y < 1500 + head.shape[0] and w < 60


# 7 ----------------------------------------------------------------------- --save failures
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
    real = Path.write_bytes

    def write_bytes(self, data):
        if self.name.startswith("a_"):
            raise OSError(28, "No space left on device", str(self))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    code, out, err = predict(
        capsys, tiny_model, str(tmp_path / "in"), "--save", str(tmp_path / "out")
    )
    assert code == 1 and "a_mobilefer.png: cannot save (No space left on device)" in err
    assert len(records(out)) == 2 and (tmp_path / "out" / "b_mobilefer.png").is_file()


# 8 ----------------------------------------------------------------- closed pipe, full disk
def _cli(*args, **kw):
    return [sys.executable, "-m", "mobilefer", *args]


def test_closed_pipe_ends_quietly(tmp_path, tiny_model, jpg_bytes):
    for i in range(6):
        (tmp_path / f"{i}.jpg").write_bytes(jpg_bytes)
    cmd = " ".join(
        _cli(
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
            _cli(
                "predict", str(tmp_path / "a.jpg"), "--model", str(tiny_model), "--detector", "haar"
            ),
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
        )
    assert p.returncode == 1
    assert "cannot write the results: No space left on device" in p.stderr
    assert "Traceback" not in p.stderr


# 9 --------------------------------------------------------------- every input accounted for
def test_empty_folder_is_an_error(capsys, tmp_path, tiny_model):
    (tmp_path / "empty").mkdir()
    code, out, err = run(capsys, "predict", str(tmp_path / "empty"), "--model", str(tiny_model))
    assert code == 1 and "no input found" in err and out == ""


def test_no_face_and_sidecars(capsys, tmp_path, tiny_model, jpg_bytes):
    import cv2

    d = tmp_path / "shoot"
    d.mkdir()
    (d / "face.jpg").write_bytes(jpg_bytes)
    cv2.imwrite(str(d / "wall.png"), np.full((200, 300, 3), 128, np.uint8))
    for name in ("face.xmp", "notes.txt", "meta.json", "anim.gif"):
        (d / name).write_bytes(b"x")
    code, out, err = predict(capsys, tiny_model, str(d), "--format", "jsonl")
    assert code == 0, err
    recs = records(out)
    assert {Path(r["source"]).name for r in recs} == {"face.jpg", "wall.png"}
    (wall,) = [r for r in recs if r["source"].endswith("wall.png")]
    assert wall["face"] is None and wall["box"] is None and wall["detector"] == "haar"
    assert "skipped 4 file(s) that are not images or videos" in err
    code, out, _ = predict(capsys, tiny_model, str(d), "--format", "csv")
    import csv

    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 2 and {r["label"] for r in rows if "wall" in r["source"]} == {""}


# 10 ------------------------------------------------------------------ option values checked
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
    assert len(err.strip().splitlines()) == 1 and "error: argument" in err


@pytest.mark.parametrize("value", ["9", "x", "nan"])
def test_export_zoom_is_checked_before_any_work(capsys, value):
    pytest.importorskip("torch")
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


# 11 -------------------------------------------------- odd names, odd calls, tampered models
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


def test_classify_refuses_a_bare_image(tiny_model):
    from mobilefer import Recognizer

    rec = Recognizer(tiny_model, detector="haar")
    face = np.zeros((48, 48, 3), np.uint8)
    with pytest.raises(InputError, match=r"pass \[crop\]"):
        rec.classify(face)
    with pytest.raises(InputError, match=r"pass \[crop\]"):
        rec.classify(face[:, :, 0])
    assert len(rec.classify(np.zeros((4, 48, 48), np.uint8))) == 4  # a batch of gray crops
    assert len(rec.classify([face])) == 1


@pytest.mark.parametrize(
    "change, message",
    [
        ({"std": [0.0, 0.2, 0.2]}, "std must hold"),
        ({"mean": [float("nan")] * 3}, "mean must be finite"),
        ({"labels": []}, "labels must be"),
        ({"input_size": "big"}, "ValueError"),
        ({"format": 99}, "newer than this mobilefer reads"),
        ({"prior": [1.0], "prior_tau": 0.5}, "prior must hold"),
    ],
)
def test_tampered_metadata_is_a_clear_model_error(tmp_path, tiny_model, change, message):
    pytest.importorskip("onnx")
    import onnx

    from mobilefer import Recognizer
    from mobilefer.errors import ModelError

    proto = onnx.load(str(tiny_model))
    (prop,) = [p for p in proto.metadata_props if p.key == "mobilefer"]
    prop.value = json.dumps(json.loads(prop.value) | change)
    path = tmp_path / "tampered.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(ModelError, match=message):
        Recognizer(path, detector="haar")


# fuzz ------------------------------------------------------------------ no traceback, no loss
def _corpus(jpg: bytes, png: bytes, mp4: bytes, seed: int = 0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    out = {}
    for kind, data in (("jpg", jpg), ("png", png), ("mp4", mp4)):
        for i in range(6):
            cut = int(rng.integers(1, len(data)))
            out[f"cut{i}.{kind}"] = data[:cut]
            flipped = bytearray(data)
            for pos in rng.integers(0, min(len(data), 600), size=4):  # headers live up front
                flipped[pos] ^= int(rng.integers(1, 256))
            out[f"flip{i}.{kind}"] = bytes(flipped)
        out[f"random.{kind}"] = rng.integers(0, 256, 2000, dtype=np.uint8).tobytes()
    return out


def test_fuzzed_files_never_lose_a_sibling(tmp_path, tiny_model, jpg_bytes, astronaut):
    import cv2

    from conftest import write_video

    png = cv2.imencode(".png", astronaut)[1].tobytes()
    mp4 = write_video(tmp_path / "v.mp4", astronaut, frames=3).read_bytes()
    d = tmp_path / "fuzz"
    d.mkdir()
    for name, data in _corpus(jpg_bytes, png, mp4).items():
        (d / name).write_bytes(data)
    (d / "zz_good.jpg").write_bytes(jpg_bytes)
    p = subprocess.run(
        _cli("predict", str(d), "--model", str(tiny_model), "--detector", "haar"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode in (0, 1), p.stderr
    assert "Traceback" not in p.stderr
    assert any(r["source"].endswith("zz_good.jpg") for r in records(p.stdout))


def test_every_option_has_a_help_line():
    import argparse

    from mobilefer.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, p in sub.choices.items():
        for action in p._actions:
            assert action.help, f"mobilefer {name} {action.option_strings or action.dest}"
