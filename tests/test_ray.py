"""The Ray Data path gives exactly the records of the single-machine path (a local Ray with
2 CPUs and no dashboard)."""

import json

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from mobilefer import Recognizer  # noqa: E402
from mobilefer.cli import main  # noqa: E402

from conftest import write_video  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory, astronaut):
    import cv2

    d = tmp_path_factory.mktemp("ray_in")
    cv2.imwrite(str(d / "good.jpg"), astronaut)
    cv2.imwrite(str(d / "small.png"), cv2.resize(astronaut, (256, 256)))
    cv2.imwrite(str(d / "wall.png"), np.full((120, 160, 3), 128, np.uint8))
    (d / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (d / "notes.txt").write_text("skipped")
    write_video(d / "clip.mp4", astronaut, frames=6)
    return d


def _key(r):
    return (r["source"], -1 if r["frame"] is None else r["frame"], r["face"] or 0)


def local_records(model, folder) -> list[dict]:
    rec = Recognizer(model, detector="haar")
    out = []
    for result in rec.stream(str(folder)):
        out += result.records()
    return sorted(out, key=_key)


def test_ray_gives_the_records_of_predict(local_ray, folder, tiny_model):
    import mobilefer.distributed as mray
    from mobilefer.options import Options

    options = Options(model=str(tiny_model), detector="haar")
    rows = mray.predict(str(folder), options, actors=2, batch_size=2).take_all()
    errors = [r for r in rows if r["error"]]
    assert [r["source"] for r in errors] == [str(folder / "broken.jpg")]
    assert "truncated" in errors[0]["error"]
    got = sorted((r for r in rows if not r["error"]), key=_key)
    want = local_records(tiny_model, folder)
    assert len(got) == len(want) and len(want) > 6  # the video's frames and the photos
    for g, w in zip(got, want, strict=True):
        assert {k: g[k] for k in w if k not in ("scores", "score", "time")} == {
            k: w[k] for k in w if k not in ("scores", "score", "time")
        }
        if w["scores"] is None:
            assert g["scores"] is None
        else:
            assert g["scores"] == pytest.approx(w["scores"], abs=1e-6)
            assert g["time"] == pytest.approx(w["time"], abs=1e-3) if w["time"] else True
    assert any(r["face"] is None for r in got)  # the wall: a no-face record


def test_ray_cli_writes_jsonl_and_parquet(local_ray, folder, tiny_model, tmp_path, capsys):
    import pyarrow.parquet as pq

    for name in ("r.jsonl", "r.parquet"):
        argv = [
            "predict",
            str(folder),
            "--engine",
            "ray",
            "--out",
            str(tmp_path / name),
            "--model",
            str(tiny_model),
            "--detector",
            "haar",
            "--actors",
            "1",
        ]
        code = main(argv)
        _, err = capsys.readouterr()
        assert code == 1 and "broken.jpg: truncated image" in err  # one bad file, job done
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    table = pq.read_table(tmp_path / "r.parquet").to_pylist()
    assert len(lines) == len(table) == len(local_records(tiny_model, folder)) + 1
    assert main(["predict", str(folder), "--engine", "ray", "--out", "x.csv"]) == 2


def test_ray_takes_the_mesh_and_writes_its_units(local_ray, tmp_path, astronaut, capsys):
    pytest.importorskip("ai_edge_litert")
    import cv2
    import pyarrow.parquet as pq

    cv2.imwrite(str(tmp_path / "a.jpg"), astronaut)
    out = tmp_path / "m.parquet"
    argv = ["predict", str(tmp_path / "a.jpg"), "--engine", "ray", "--mesh", "--out", str(out)]
    assert main([*argv, "--actors", "1"]) == 0, capsys.readouterr().err
    (row,) = pq.read_table(out).to_pylist()
    assert row["action_units"]["AU12"] >= 0.5 and "blendshapes" not in row
