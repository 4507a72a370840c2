"""The face mesh (issue #39): MediaPipe's models on LiteRT, the mesh's head angles, the action
units and their records, and the one line without the [mesh] extra."""

import csv
import io
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mobilefer import Recognizer
from mobilefer.action_units import ACTION_UNITS, NAMES, PROTOTYPES, UNITS, Unit, action_units
from mobilefer.action_units import rescale as rescale_unit
from mobilefer.errors import MissingExtraError, OptionError
from mobilefer.mesh import BLENDSHAPE_POINTS, BLENDSHAPES, mesh_angles, procrustes
from mobilefer.options import Options
from mobilefer.records import csv_columns, iter_records

from conftest import records, run, write_video

litert = pytest.importorskip("ai_edge_litert")


@pytest.fixture(scope="module")
def mesh():
    from mobilefer.mesh import FaceMesh

    return FaceMesh()


@pytest.fixture(scope="module")
def canonical(mesh):
    return mesh.vertices, mesh.ids, mesh.weights


def test_the_task_ships_and_its_canonical_face_is_read(mesh):
    assert mesh.path.name == "face_landmarker.task" and mesh.path.is_file()
    assert mesh.vertices.shape == (468, 3)
    assert len(mesh.ids) == len(mesh.weights) > 20 and (mesh.weights > 0).all()
    # y up, z toward the viewer, x toward the person's left: the forehead above the chin,
    # the nose tip in front, the left eye (263) at +x
    v = mesh.vertices
    assert v[10, 1] > v[152, 1] and v[1, 2] > v[234, 2] and v[263, 0] > 0 > v[33, 0]
    assert len(BLENDSHAPE_POINTS) == 146 and len(BLENDSHAPES) == 52 == len(set(BLENDSHAPES))


def _rotation(axis: str, degrees: float) -> np.ndarray:
    """A rotation in camera axes (x right, y down, z away) turning the face by ``degrees`` in
    mobilefer's conventions: yaw toward the image's right, pitch up, roll clockwise."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return {
        "yaw": np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]]),
        "pitch": np.array([[1, 0, 0], [0, c, s], [0, -s, c]]),
        "roll": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    }[axis]


@pytest.mark.parametrize("axis", ["yaw", "pitch", "roll"])
@pytest.mark.parametrize("degrees", [-40, -12, 0, 25])
def test_mesh_angles_read_a_turned_canonical_face(canonical, axis, degrees):
    """The canonical face turned by a known angle, placed as the mesh model gives points (image
    pixels, y down, z away), reads that angle on its axis and 0 on the others."""
    vertices, ids, weights = canonical
    face = vertices * np.array([1.0, -1.0, -1.0])  # into camera axes
    points = 9.0 * face @ _rotation(axis, degrees).T + np.array([320.0, 240.0, 0.0])
    points = np.vstack([points, np.zeros((10, 3))])  # 478 points: the irises are not fitted
    read = mesh_angles(points, vertices, ids, weights)
    angles = dict(zip(("yaw", "pitch", "roll"), read, strict=True))
    assert angles[axis] == pytest.approx(degrees, abs=0.2)
    assert all(abs(v) < 0.2 for k, v in angles.items() if k != axis)


@pytest.mark.parametrize("axis", ["yaw", "pitch", "roll"])
@pytest.mark.parametrize("degrees", [-30, 0, 20])
@pytest.mark.parametrize("where", [(320, 240), (150, 330)])
def test_mesh_angles_in_mediapipes_camera(canonical, axis, degrees, where):
    """The canonical face turned and placed 50 cm in front of MediaPipe's camera (63 degrees of
    vertical view), then seen in perspective as the mesh model gives points (x, y in pixels, z
    away on x's scale), reads its turn, centred or not: the camera's frame, as MediaPipe's
    facial transformation matrix."""
    vertices, ids, weights = canonical
    width, height, distance = 640, 480, 50.0
    focal = (height / 2) / math.tan(math.radians(63.0 / 2))
    flip = np.diag([1.0, -1.0, -1.0])
    # the face's centre on the line of sight through ``where``: x right, y up, z toward the viewer
    ray = np.array([where[0] - width / 2, height / 2 - where[1], -focal])
    centre = distance * ray / -ray[2]
    turned = vertices @ (flip @ _rotation(axis, degrees) @ flip).T + centre
    depth = -turned[:, 2]
    x = width / 2 + focal * turned[:, 0] / depth
    y = height / 2 - focal * turned[:, 1] / depth
    z = (depth - distance) * focal / distance
    points = np.vstack([np.column_stack([x, y, z]), np.zeros((10, 3))])
    read = mesh_angles(points, vertices, ids, weights, (width, height))
    angles = dict(zip(("yaw", "pitch", "roll"), read, strict=True))
    # within 1.5 degrees: MediaPipe's pipeline reads every point's depth from the mesh's z, a
    # view from afar, where this face is seen in true perspective at 50 cm
    tolerance = 1.5
    assert angles[axis] == pytest.approx(degrees, abs=tolerance)
    assert all(abs(v) < tolerance for k, v in angles.items() if k != axis)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-math.pi, math.pi), min_size=3, max_size=3),
    st.floats(0.1, 50),
    st.lists(st.floats(-500, 500), min_size=3, max_size=3),
)
def test_procrustes_recovers_a_rotation(angles, scale, shift):
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(0)
    source = rng.normal(size=(30, 3))
    rot = Rotation.from_euler("xyz", angles).as_matrix()
    target = scale * source @ rot.T + np.array(shift)
    assert np.allclose(procrustes(source, target, np.ones(30)), rot, atol=1e-6)


def test_the_astronauts_smile_reads_au12(mesh, astronaut):
    rec = Recognizer(mesh=True)
    (face,) = rec.analyze(astronaut)
    assert face.action_units["AU12"] >= 0.5  # the bar
    assert set(face.action_units) == set(ACTION_UNITS)
    assert all(0 <= v <= 1 for v in face.action_units.values())
    assert face.blendshapes is None  # only when asked
    plain = Recognizer().analyze(astronaut)[0]
    # the mesh's angles replace the five points' and agree with them on a frontal face
    assert (face.yaw, face.pitch, face.roll) != (plain.yaw, plain.pitch, plain.roll)
    assert abs(face.yaw - plain.yaw) < 10 and abs(face.roll - plain.roll) < 5
    assert face.label == plain.label and face.scores == plain.scores
    got = mesh(astronaut, face.box, face.landmarks)
    assert got.presence > 0.9 and got.points.shape == (478, 3)
    x, y, w, h = face.box  # the mesh lies on the face found
    inside = (got.points[:, 0] > x - w / 2) & (got.points[:, 0] < x + 1.5 * w)
    assert inside.all() and (got.points[:, 1] > y - h / 2).all()


def test_no_face_in_the_box_gives_no_mesh(mesh):
    wall = np.full((240, 320, 3), 127, np.uint8)
    assert mesh(wall, (100, 60, 80, 100)) is None


def test_blendshapes_when_asked(astronaut):
    (face,) = Recognizer(blendshapes=True).analyze(astronaut)
    assert list(face.blendshapes) == list(BLENDSHAPES)
    assert face.blendshapes["mouthSmileLeft"] > 0.5 and face.action_units is not None


def test_max_yaw_uses_the_mesh_angles(astronaut):
    """With the mesh, its yaw (not the five points') decides which faces are scored, for photos
    and for streams."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from synthetic import turn_face

    plain = Recognizer()
    (front,) = plain.analyze(astronaut)
    turned = turn_face(astronaut, front.landmarks, yaw=45)
    rec = Recognizer(mesh=True, max_yaw=10)
    (away,) = rec.analyze(turned)
    assert abs(away.yaw) > 10 and away.label is None and away.scores is None
    (facing,) = rec.analyze(astronaut)
    assert abs(facing.yaw) <= 10 and facing.label == "happy"
    session = rec.session()
    assert session.update(turned).faces[0].label is None
    assert session.update(astronaut).faces[0].label == "happy"
    for yaw in (0.5, 1.5, 2.5):  # where the two methods disagree, the mesh's reading decides
        rec = Recognizer(mesh=True, max_yaw=yaw)
        (face,) = rec.analyze(astronaut)
        assert (face.label is None) == (abs(face.yaw) > yaw)


# --- the mapping ---------------------------------------------------------------------------


def test_every_unit_is_named_and_the_prototypes_use_them():
    assert set(UNITS) == set(NAMES) and len(ACTION_UNITS) == 17
    assert {u for units in PROTOTYPES.values() for u in units} <= set(UNITS)
    for u in UNITS.values():
        assert 0 < u.threshold < 1
        for shape in u.shapes:
            assert shape in BLENDSHAPES or {shape + "Left", shape + "Right"} <= set(BLENDSHAPES)


def test_the_shipped_table_is_the_one_rule_a2_chose():
    """UNITS holds what benchmarks/action_units.py --part train wrote (rule a2)."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "results" / "action-units.json"
    chosen = json.loads(path.read_text())
    assert chosen["rule"] == "a2"
    for row in chosen["units"]:
        assert UNITS[row["unit"]] == Unit(tuple(row["shapes"].split("+")), row["threshold"])


@settings(max_examples=200, deadline=None)
@given(st.floats(0, 1), st.floats(0, 1), st.floats(0.01, 0.99))
def test_rescale_keeps_order_and_puts_the_threshold_at_half(a, b, t):
    assert rescale_unit(t, t) == pytest.approx(0.5)
    assert rescale_unit(0, t) == 0 and rescale_unit(1, t) == pytest.approx(1)
    lo, hi = sorted((a, b))
    assert 0 <= rescale_unit(lo, t) <= rescale_unit(hi, t) <= 1


def test_left_and_right_combine_by_the_larger_and_units_average():
    shapes = dict.fromkeys(BLENDSHAPES, 0.0) | {"mouthSmileLeft": 0.8, "mouthSmileRight": 0.2}
    table = {"AU12": Unit(("mouthSmile",), 0.4), "AU6": Unit(("cheekSquint", "mouthSmile"), 0.4)}
    got = action_units(shapes, table)
    assert got["AU12"] == pytest.approx(rescale_unit(0.8, 0.4), abs=1e-4)
    assert got["AU6"] == pytest.approx(0.5, abs=1e-4)


# --- records, front ends -------------------------------------------------------------------


def test_predict_mesh_records_carry_action_units(capsys, tmp_path, astronaut):
    import cv2

    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), astronaut)
    code, out, err = run(capsys, "predict", photo, "--mesh")
    assert code == 0, err
    (rec,) = records(out)
    assert list(rec["action_units"]) == list(ACTION_UNITS) and rec["action_units"]["AU12"] >= 0.5
    assert "blendshapes" not in rec and "INFO" not in err  # LiteRT's C++ line is quiet
    code, plain, _ = run(capsys, "predict", photo)
    assert "action_units" not in records(plain)[0]  # without --mesh, the records as before

    code, out, err = run(capsys, "predict", photo, "--blendshapes", "--format", "csv")
    assert code == 0, err
    header = next(csv.reader(io.StringIO(out)))
    assert header == csv_columns(Recognizer().labels, ("action_units", "blendshapes"))
    assert {"AU12", "mouthSmileLeft"} <= set(header)
    path = tmp_path / "out.csv"
    path.write_text(out)
    (back,) = iter_records(path)  # read back: the units are not labels
    assert set(back["scores"]) == set(Recognizer().labels)
    assert back["action_units"]["AU12"] == pytest.approx(rec["action_units"]["AU12"], abs=1e-6)
    assert len(back["blendshapes"]) == 52


def test_a_video_stream_gets_the_mesh_on_every_frame(tmp_path, astronaut):
    clip = write_video(tmp_path / "clip.mp4", astronaut, frames=6)
    results = list(Recognizer(mesh=True).stream(str(clip)))
    faces = [f for r in results for f in r.faces]
    assert len(results) == 6 and faces
    assert all(f.action_units is not None and f.track_id is not None for f in faces)


def test_the_option_is_checked_and_fills_the_record_extras():
    assert Options().record_extras() == ()
    assert Options(mesh=True).record_extras() == ("action_units",)
    assert Options(blendshapes=True).record_extras() == ("action_units", "blendshapes")
    with pytest.raises(OptionError, match="mesh"):
        Options(mesh="yes").check()


def test_arrow_schema_has_the_units_when_asked():
    pa = pytest.importorskip("pyarrow")
    from mobilefer.sinks import arrow_schema

    plain = arrow_schema(("happy", "sad"))
    assert "action_units" not in plain.names
    schema = arrow_schema(("happy", "sad"), ("action_units",))
    assert schema.field("action_units").type == pa.struct([(u, pa.float64()) for u in ACTION_UNITS])


def test_without_the_extra_mesh_is_one_line(monkeypatch, capsys, tmp_path, astronaut):
    import cv2

    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with pytest.raises(MissingExtraError, match=r"\[mesh\] extra"):
        Recognizer(mesh=True)
    photo = tmp_path / "a.jpg"
    cv2.imwrite(str(photo), astronaut)
    code, out, err = run(capsys, "predict", photo, "--mesh")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "pip install 'mobilefer[mesh]'" in err
    assert Recognizer().analyze(astronaut)  # the default needs no extra


# --- reports and studies -----------------------------------------------------------------


def _unit_clip(source: str, fps: float = 10.0):
    """A clip of one face whose AU12 is 0.2 for 2 s, then 0.9 for 4 s; AU4 0.1 throughout."""
    from mobilefer import EMOTIONS
    from mobilefer.results import Face
    from mobilefer.stream import Result

    out = []
    for i in range(60):
        au = dict.fromkeys(ACTION_UNITS, 0.0) | {"AU4": 0.1, "AU12": 0.2 if i < 20 else 0.9}
        scores = dict.fromkeys(EMOTIONS, 1 / 7)
        face = Face((10, 10, 50, 50), "happy", scores, "yunet", 0.9, 0, action_units=au)
        out.append(Result(source, "video", (face,), None, i, i / fps, fps=fps))
    return out


def test_events_and_tracks_get_the_mean_of_each_unit():
    from mobilefer import compare, summarize
    from mobilefer.study.plan import Event

    events = (Event("before", 0, 2), Event("during", 2, 6))
    clips = summarize(_unit_clip("a.mp4") + _unit_clip("b.mp4"), events=events, baseline="before")
    for c in clips:
        before, during = c.events
        assert before.action_units["AU12"] == pytest.approx(0.2, abs=1e-4)
        assert during.action_units["AU12"] == pytest.approx(0.9, abs=1e-4)
        (track,) = c.tracks
        assert track.action_units["AU12"] == pytest.approx((20 * 0.2 + 40 * 0.9) / 60, abs=1e-4)
        assert track.events[1].action_units["AU4"] == pytest.approx(0.1, abs=1e-4)
    study = compare(clips)
    (row,) = [r for r in study.table if r.event == "during"]
    assert row.action_units["AU12"].mean == pytest.approx(0.9, abs=1e-4)
    assert study.unit_names == ACTION_UNITS
    rows = study.rows()
    assert {r["mean_AU12"] for r in rows if r["event"] == "during"} == {0.9}
    assert "mean_AU12" in study.to_csv().splitlines()[0]
    # without the mesh: no unit anywhere
    plain = [replace(r, faces=(replace(r.faces[0], action_units=None),)) for r in _unit_clip("c")]
    (c,) = summarize(plain, events=events)
    assert c.events[0].action_units is None and c.tracks[0].action_units is None


def test_a_mesh_report_shows_the_units_over_time(capsys, tmp_path, astronaut):
    pytest.importorskip("plotly")
    clip = write_video(tmp_path / "smile.mp4", astronaut, frames=20)
    (tmp_path / "events.csv").write_text("name,start,end\nfirst,0,1\nsecond,1,2\n")
    out, table = tmp_path / "r.html", tmp_path / "study.csv"
    code, _, err = run(
        capsys,
        "report",
        clip,
        "--mesh",
        "--events",
        tmp_path / "events.csv",
        "--out",
        out,
        "--csv",
        table,
    )
    assert code == 0, err
    page = out.read_text()
    assert "Action units over time" in page and "id=study-units" in page
    rows = list(csv.DictReader(table.open()))
    assert rows and all(float(r["mean_AU12"]) >= 0.5 for r in rows)  # she smiles throughout
    tracks = tmp_path / "tracks.csv"
    code, _, err = run(
        capsys, "report", clip, "--mesh", "--out", tmp_path / "t.html", "--csv", tracks
    )
    assert code == 0 and all(float(r["mean_AU12"]) >= 0.5 for r in csv.DictReader(tracks.open()))
    code, _, err = run(capsys, "report", clip, "--out", tmp_path / "plain.html")
    assert code == 0 and "Action units" not in (tmp_path / "plain.html").read_text()


@pytest.mark.browser
def test_the_mesh_report_opens_in_chromium(capsys, tmp_path, astronaut):
    pytest.importorskip("plotly")
    playwright = pytest.importorskip("playwright.sync_api")
    import shutil
    from pathlib import Path

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("no chromium")
    clip = write_video(tmp_path / "smile.mp4", astronaut, frames=20)
    (tmp_path / "events.csv").write_text("name,start,end\nfirst,0,1\nsecond,1,2\n")
    out = tmp_path / "r.html"
    code, _, err = run(
        capsys, "report", clip, "--mesh", "--events", tmp_path / "events.csv", "--out", out
    )
    assert code == 0, err
    errors = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(out.as_uri())
        page.wait_for_selector("#study-units")
        heatmaps = page.locator(".js-plotly-plot .heatmaplayer")
        assert heatmaps.count() == 2  # the face's units over time, the study's per event
        assert page.locator("td.on").count() > 0  # AU12 present in its event table
        page.screenshot(path=str(tmp_path / "mesh-report.png"), full_page=True)
        browser.close()
    assert not errors
    assert (tmp_path / "mesh-report.png").stat().st_size > 10_000


def test_serve_live_frames_carry_the_units(jpg_bytes):
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from mobilefer.serve import create_app

    with TestClient(create_app(Recognizer(mesh=True))) as client:
        with client.websocket_connect("/ws/live") as ws:
            ws.send_bytes(jpg_bytes)
            (face,) = json.loads(ws.receive_text())["faces"]
    assert face["action_units"]["AU12"] >= 0.5 and face["label"] == "happy"
    app_js = (Path(__file__).resolve().parents[1] / "src/mobilefer/serve/static/app.js").read_text()
    assert "presentUnits(f)" in app_js  # the face list names the units present


# --- fusion ---------------------------------------------------------------------------------


def _fusion(labels=("happy", "sad"), digest="x"):
    from mobilefer.fusion import Fusion

    n = len(labels) + len(BLENDSHAPES)
    weights = np.zeros((len(labels), n))
    weights[0, len(labels) + BLENDSHAPES.index("mouthSmileLeft")] = 5.0  # a smile says happy
    return Fusion(tuple(labels), digest, np.zeros(n), np.ones(n), weights, np.zeros(2), {})


def test_a_fusion_round_trips_and_sums_to_one(tmp_path):
    from mobilefer.errors import ModelError
    from mobilefer.fusion import Fusion

    f = _fusion()
    path = tmp_path / "f.json"
    path.write_text(f.to_json())
    back = Fusion.load(path)
    shapes = dict.fromkeys(BLENDSHAPES, 0.0) | {"mouthSmileLeft": 1.0}
    got = back.face_scores({"happy": 0.2, "sad": 0.8}, shapes)
    assert got == f.face_scores({"happy": 0.2, "sad": 0.8}, shapes)
    assert sum(got.values()) == pytest.approx(1) and got["happy"] > 0.9
    path.write_text('{"labels": ["a"]}')
    with pytest.raises(ModelError, match="not a mobilefer fusion file"):
        Fusion.load(path)


def test_with_mesh_fuses_only_scored_faces():
    from mobilefer.mesh import MeshFace
    from mobilefer.results import Face

    shapes = dict.fromkeys(BLENDSHAPES, 0.0) | {"mouthSmileLeft": 1.0}
    mesh = MeshFace(np.zeros((478, 3)), 1.0, shapes, (1.0, 2.0, 3.0))
    face = Face((0, 0, 9, 9), "sad", {"happy": 0.2, "sad": 0.8})
    fused = face.with_mesh(mesh, fusion=_fusion())
    assert fused.label == "happy" and (fused.yaw, fused.pitch, fused.roll) == (1.0, 2.0, 3.0)
    assert face.with_mesh(mesh).scores == face.scores  # no fusion: the network's scores
    turned = face.with_mesh(mesh, max_yaw=0.5, fusion=_fusion())
    assert turned.label is None and turned.scores is None
    assert face.with_mesh(None, fusion=_fusion()) is face  # no mesh: as it was


def test_a_fusion_serves_only_the_file_it_was_fitted_on(monkeypatch, tmp_path):
    import mobilefer.fusion as fu
    import mobilefer.model as mm

    (tmp_path / "fit.json").write_text(_fusion(digest="abc").to_json())
    monkeypatch.setattr(mm, "models_dir", lambda: tmp_path)
    monkeypatch.setitem(fu.SHIPPED, "some.onnx", "fit.json")
    assert fu.shipped_fusion("some.onnx", "abc") is not None
    assert fu.shipped_fusion("some.onnx", "another") is None
    assert fu.shipped_fusion("other.onnx", "abc") is None


def test_annotated_frames_name_the_units_present():
    from mobilefer.annotate import draw, present_units
    from mobilefer.results import Face

    units = dict.fromkeys(ACTION_UNITS, 0.1) | {"AU12": 0.9, "AU6": 0.6}
    face = Face((40, 30, 80, 90), "happy", {"happy": 0.9, "sad": 0.1}, action_units=units)
    assert present_units(face) == "AU12 AU6"
    plain = Face((40, 30, 80, 90), "happy", {"happy": 0.9, "sad": 0.1})
    assert present_units(plain) == ""
    image = np.full((200, 200, 3), 255, np.uint8)
    below = (slice(121, 140), slice(40, 120))  # just under the box
    assert (draw(image, [face])[below] != 255).any()
    assert (draw(image, [plain])[below] == 255).all()
