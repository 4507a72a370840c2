"""Inputs that are not what their names say: pipes, devices, link loops, URLs, bad frames.

Each case names the input in one line and never loses a sibling; none may block, so each runs
under an alarm that fails the test instead of hanging the suite.
"""

from __future__ import annotations

import io
import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mobilefer.detectors import create_detector
from mobilefer.errors import InputError
from mobilefer.image import read_image

from conftest import cli_argv, j2k_header, png_header, predict, records, run, tiff_header


@pytest.fixture()
def alarm():
    """Fail (rather than hang) a test that takes longer than 60 s."""

    def ring(signum, frame):
        raise TimeoutError("the input blocked for 60 s")

    old = signal.signal(signal.SIGALRM, ring)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def test_pipes_and_devices_are_refused_unopened(capsys, tmp_path, tiny_model, jpg_bytes, alarm):
    folder = tmp_path / "in"
    folder.mkdir()
    os.mkfifo(folder / "clip.mp4")
    os.mkfifo(folder / "still.jpg")
    os.symlink("/dev/zero", folder / "zero.png")
    (folder / "z_good.jpg").write_bytes(jpg_bytes)
    code, out, err = predict(capsys, tiny_model, folder)
    assert code == 1
    assert [r["source"] for r in records(out)] == [str(folder / "z_good.jpg")]
    bad = [line for line in err.splitlines() if "not a regular file" in line]
    assert len(bad) == 3 and all("no such file" not in line for line in bad)
    # named directly, the same
    code, out, err = predict(capsys, tiny_model, folder / "clip.mp4", folder / "z_good.jpg")
    assert code == 1 and len(records(out)) == 1 and "clip.mp4: not a regular file" in err


def test_globs_never_follow_linked_folders(capsys, tmp_path, tiny_model, jpg_bytes, alarm):
    top = tmp_path / "photos"
    (top / "sub").mkdir(parents=True)
    (top / "sub" / "a.jpg").write_bytes(jpg_bytes)
    os.symlink(".", top / "self")  # one photo became 41 records
    os.symlink("..", top / "sub" / "up")  # a loop
    for spec in (f"{top}/**/*.jpg", str(top)):
        code, out, err = predict(capsys, tiny_model, spec)
        assert code == 0, err
        assert [r["source"] for r in records(out)] == [str(top / "sub" / "a.jpg")]
        assert "skipped 2 linked folder(s), not followed" in err
        assert "self" in err and "up" in err


def test_glob_wildcards_keep_their_meaning(tmp_path):
    from mobilefer.sources import expand

    for name in ("a.jpg", "b.jpeg", "x/c.jpg", "x/y/d.jpg", "x/.hidden.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    got = {s.spec for s in expand([f"{tmp_path}/**/*.jpg"])}
    assert got == {str(tmp_path / n) for n in ("a.jpg", "x/c.jpg", "x/y/d.jpg")}
    got = {s.spec for s in expand([f"{tmp_path}/x/**/[cd].jp?"])}
    assert got == {str(tmp_path / n) for n in ("x/c.jpg", "x/y/d.jpg")}
    assert {s.spec for s in expand([f"{tmp_path}/*.jp*g"])} == {
        str(tmp_path / "a.jpg"),
        str(tmp_path / "b.jpeg"),
    }


@pytest.mark.parametrize(
    "url", ["http://example.org/a.jpg", "https://example.org/a.jpg?size=large", "s3://b/k.jpg"]
)
def test_urls_say_how_to_read_them(capsys, tiny_model, url):
    code, out, err = predict(capsys, tiny_model, url)
    assert code == 1 and not out
    (line,) = err.strip().splitlines()[:1]
    assert url in line and "URL" in line and "--engine ray" in line
    assert "no such file" not in err and "matches no file" not in err


@pytest.mark.parametrize(
    "name, data, pixels",
    [
        ("tiled.tif", tiff_header(15360, 15360), "235,929,600"),
        ("tiny.jp2", j2k_header(12000, 12000), "144,000,000"),
    ],
    ids=["tiff", "jpeg2000"],
)
def test_tiff_and_jpeg2000_bombs_are_refused_from_their_header(
    capsys, tmp_path, tiny_model, jpg_bytes, name, data, pixels
):
    from mobilefer.errors import InputError
    from mobilefer.image import read_image

    (tmp_path / name).write_bytes(data)
    (tmp_path / "z.jpg").write_bytes(jpg_bytes)
    with pytest.raises(InputError, match=f"{pixels} pixels, over the limit"):
        read_image(tmp_path / name)
    code, out, err = predict(capsys, tiny_model, tmp_path)
    assert code == 1 and len(records(out)) == 1 and f"{pixels} pixels" in err


def test_os2_bitmap_is_read(tmp_path):
    from mobilefer.image import read_image

    w, h = 4, 3
    row = bytes(range(w * 3)) + b"\x00" * ((4 - w * 3 % 4) % 4)
    pixels = row * h
    core = struct.pack("<IHHHH", 12, w, h, 1, 24)  # BITMAPCOREHEADER: 16-bit sizes
    data = b"BM" + struct.pack("<IHHI", 14 + 12 + len(pixels), 0, 0, 26) + core + pixels
    (tmp_path / "os2.bmp").write_bytes(data)
    assert read_image(tmp_path / "os2.bmp").shape == (h, w, 3)


def test_a_huge_file_is_refused_by_its_size_before_reading(capsys, tmp_path, tiny_model, jpg_bytes):
    from mobilefer.image import max_file_bytes

    with open(tmp_path / "sparse.jpg", "wb") as f:  # 2 GB on disk, no blocks: instant
        f.truncate(2 * 2**30)
    (tmp_path / "z.jpg").write_bytes(jpg_bytes)
    code, out, err = predict(capsys, tiny_model, tmp_path)
    assert code == 1 and [r["source"] for r in records(out)] == [str(tmp_path / "z.jpg")]
    assert f"over the limit of {max_file_bytes():,}" in err and "--max-pixels" in err


def test_multipage_tiff_says_which_page_was_read(capsys, tmp_path, tiny_model, astronaut):
    from PIL import Image

    pages = [Image.fromarray(astronaut[:, :, ::-1].copy()) for _ in range(3)]
    pages[0].save(tmp_path / "scan.tif", save_all=True, append_images=pages[1:])
    code, out, err = predict(capsys, tiny_model, tmp_path / "scan.tif")
    assert code == 0 and len(records(out)) >= 1
    assert "scan.tif: page 1 of 3 read" in err


@pytest.fixture(scope="module")
def nan_model(tmp_path_factory, tiny_model):
    """A model file whose every probability is NaN (the tiny model's last bias is)."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    proto = onnx.load(str(tiny_model))
    gemms = [n for n in proto.graph.node if n.op_type == "Gemm"]
    bias = next(i for i in proto.graph.initializer if i.name == gemms[-1].input[2])
    bias.CopyFrom(
        numpy_helper.from_array(np.full_like(numpy_helper.to_array(bias), np.nan), bias.name)
    )
    path = tmp_path_factory.mktemp("nan") / "nan.onnx"
    onnx.save(proto, str(path))
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_model_giving_nan_is_one_error_naming_it(capsys, tmp_path, nan_model, jpg_bytes, fmt):
    from mobilefer import ModelError, Recognizer

    for i in range(3):
        (tmp_path / f"{i}.jpg").write_bytes(jpg_bytes)
    code, out, err = predict(capsys, nan_model, tmp_path, "--format", fmt)
    assert code == 2 and "nan" not in out.lower()
    (line,) = err.strip().splitlines()
    assert str(nan_model) in line and "non-finite" in line and "Traceback" not in err
    with pytest.raises(ModelError, match="non-finite"):
        Recognizer(nan_model).classify([np.zeros((48, 48), np.uint8)])


def test_bad_arrays_in_a_stream_are_errors_and_it_goes_on(tiny_model, astronaut, tmp_path):
    import cv2

    from mobilefer import Recognizer

    path = tmp_path / "a.jpg"
    cv2.imwrite(str(path), astronaut)
    rec = Recognizer(tiny_model, detector="haar")
    items = [astronaut, np.zeros((10, 10, 5), np.uint8), None, str(path), astronaut]
    results = list(rec.stream(items))
    assert [r.kind for r in results] == ["array", "array", "array", "image", "array"]
    assert [r.error is not None for r in results] == [False, True, True, False, False]
    assert "5 channels" in results[1].error and "array frame 1" in results[1].error
    assert results[3].source == str(path) and results[3].faces
    assert [r.frame for r in results if r.kind == "array"] == [0, 1, 2, 4]


@pytest.mark.parametrize(
    "make",
    [
        lambda R, m: R(m, margin=float("nan")),
        lambda R, m: R(m, margin=-1),
        lambda R, m: R(m, threads=0),
        lambda R, m: R(m, threads=-1),
        lambda R, m: R(m, prior_tau=3),
        lambda R, m: R(m, detector="haar").analyze(np.zeros((64, 64, 3), np.uint8), detect_size=-1),
        lambda R, m: list(R(m, detector="haar").stream(np.zeros((9, 9, 3)), detect_size=True)),
        lambda R, m: list(R(m, detector="haar").stream(np.zeros((9, 9, 3)), max_pixels=-1)),
    ],
    ids=[
        "margin-nan",
        "margin-1",
        "threads0",
        "threads-1",
        "tau3",
        "analyze-size",
        "bool-size",
        "max-pixels",
    ],
)
def test_the_api_checks_what_the_cli_checks(tiny_model, make):
    from mobilefer import Recognizer
    from mobilefer.errors import OptionError

    with pytest.raises(OptionError, match="expected|must"):
        make(Recognizer, tiny_model)


def test_a_damaged_video_is_read_past_the_damage_and_says_so(
    capsys, tmp_path, tiny_model, astronaut
):
    from conftest import write_video

    path = write_video(tmp_path / "clip.mp4", astronaut, frames=60)
    data = bytearray(path.read_bytes())
    n = len(data)
    data[int(n * 0.4) : int(n * 0.6)] = bytes(int(n * 0.6) - int(n * 0.4))  # the middle fifth
    path.write_bytes(bytes(data))
    code, out, err = predict(capsys, tiny_model, path)
    frames = {r["frame"] for r in records(out)}
    assert code == 1 and "Traceback" not in err
    assert max(frames) >= 50 and len(frames) > 30  # it stopped at frame 19 before
    (line,) = [ln for ln in err.splitlines() if "damaged video" in ln]
    assert f"read {len(frames)} of 60 frames" in line


def test_one_error_is_one_line_of_ours(tmp_path, tiny_model, astronaut):
    """Native libraries print nothing around our line (ffmpeg writes to fd 2 itself, so this
    runs in a process of its own), and a name with a newline stays on one line."""
    import subprocess

    from conftest import write_video

    path = write_video(tmp_path / "clip.mp4", astronaut, frames=30)
    data = bytearray(path.read_bytes())
    data[len(data) // 3 : len(data) // 2] = bytes(len(data) // 2 - len(data) // 3)
    path.write_bytes(bytes(data))
    (tmp_path / "two\nlines.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCV_")}
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "mobilefer",
            "predict",
            str(tmp_path),
            "--model",
            str(tiny_model),
            "--detector",
            "haar",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    lines = [ln for ln in p.stderr.strip().splitlines() if " frames in " not in ln]  # the rate
    assert p.returncode == 1 and len(lines) == 3, lines  # video, image, the count
    assert lines[0].startswith("mobilefer: ") and "damaged video" in lines[0]
    assert "two\\x0alines.jpg: truncated image" in lines[1]
    assert lines[2] == "mobilefer: 2 input(s) failed"


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
        cli_argv("predict", str(d), "--model", str(tiny_model), "--detector", "haar"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode in (0, 1), p.stderr
    assert "Traceback" not in p.stderr
    assert any(r["source"].endswith("zz_good.jpg") for r in records(p.stdout))


def test_frames_of_a_variable_frame_rate_video_are_placed_at_their_own_times(tmp_path, tiny_model):
    """A frame shown at 6.0 s was reported at 33.0 s (its index over the average rate)."""
    av = pytest.importorskip("av")
    import fractions

    from mobilefer import Recognizer

    path = tmp_path / "vfr.mp4"
    times = [0.0, 0.1, 0.2, 3.0, 6.0, 6.1]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        stream.time_base = fractions.Fraction(1, 1000)
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 40 * i, np.uint8), "bgr24")
            frame.pts, frame.time_base = int(t * 1000), fractions.Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    results = list(Recognizer(tiny_model, detector="haar").stream(str(path)))
    assert [r.frame for r in results] == list(range(6))
    assert [r.time for r in results] == pytest.approx(times, abs=0.002)


def test_an_empty_crop_or_a_device_as_model_is_one_clear_error(tiny_model):
    """ExpressionModel([0x0x3 array]) raised cv2.error; ExpressionModel("/dev/null") said
    "no such model"."""
    from mobilefer import ExpressionModel, InputError, ModelError

    model = ExpressionModel(tiny_model)
    for empty in (np.zeros((0, 0, 3), np.uint8), np.zeros((0, 5), np.uint8)):
        with pytest.raises(InputError, match="empty"):
            model.predict_proba([empty])
    with pytest.raises(ModelError, match="/dev/null: not a regular file"):
        ExpressionModel("/dev/null")


def test_a_clip_named_like_an_image_is_read_as_a_video(tmp_path, tiny_model):
    """A clip named .jpg was read as an image (and failed): its first bytes say video."""
    import shutil

    from mobilefer import Recognizer

    from conftest import ROOT

    clip = tmp_path / "holiday.jpg"
    shutil.copy(ROOT / "tests" / "data" / "golden" / "clip.mp4", clip)
    results = list(Recognizer(tiny_model, detector="haar").stream(str(clip)))
    assert len(results) == 12 and all(r.kind == "video" and not r.error for r in results)
