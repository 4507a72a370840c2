import json
from pathlib import Path

import numpy as np
import pytest

from mobilefer import EMOTIONS, Face, Recognizer
from mobilefer.errors import InputError, ModelError, OptionError

from conftest import detectors_available


@pytest.fixture(scope="module")
def rec(tiny_model):
    return Recognizer(tiny_model, detector="haar", threads=1)


def test_classify_crops_of_any_size_in_order(rec):
    rng = np.random.default_rng(0)
    crops = [
        rng.integers(0, 256, (48, 48), dtype=np.uint8),  # FER2013 gray
        rng.integers(0, 256, (120, 90, 3), dtype=np.uint8),  # BGR
        rng.integers(0, 256, (30, 30, 4), dtype=np.uint8),  # BGRA
    ]
    out = rec.classify(crops)
    assert len(out) == 3
    for crop, face in zip(crops, out, strict=True):
        assert isinstance(face, Face)
        assert list(face.scores) == list(EMOTIONS)
        assert sum(face.scores.values()) == pytest.approx(1.0, abs=1e-6)
        assert face.label == max(face.scores, key=face.scores.get)
        assert face.box == (0, 0, crop.shape[1], crop.shape[0])
        assert face.detector is None
    # in order: each crop alone gives the same scores as in the batch
    alone = rec.classify([crops[1]])[0]
    assert alone.scores == pytest.approx(out[1].scores, abs=1e-5)


def test_empty_batch(rec):
    assert rec.classify([]) == []


def test_flip_tta_averages_mirror_images(tiny_model):
    face = np.random.default_rng(1).integers(0, 256, (48, 48), dtype=np.uint8)
    plain = Recognizer(tiny_model, detector="haar", flip_tta=False)
    tta = Recognizer(tiny_model, detector="haar", flip_tta=True)
    p, m = plain.predict_proba([face]), plain.predict_proba([face[:, ::-1]])
    assert np.allclose(tta.predict_proba([face]), (p + m) / 2, atol=1e-6)


@pytest.mark.parametrize("detector", detectors_available())
def test_analyze_astronaut(tiny_model, astronaut, detector):
    rec = Recognizer(tiny_model, detector=detector)
    (face,) = rec.analyze(astronaut)
    assert face.detector == detector
    assert sum(face.scores.values()) == pytest.approx(1.0, abs=1e-6)
    d = face.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert set(d) == {
        "box",
        "label",
        "scores",
        "detector",
        "detector_score",
        "track_id",
        "landmarks",
        "score",
        "yaw",
        "pitch",
        "roll",
        "calibrated",
        "action_units",
        "blendshapes",
    }
    assert (d["yaw"] is None) == (detector == "haar")
    assert len(d["box"]) == 4
    with pytest.raises(AttributeError):
        face.label = "happy"  # frozen


def test_analyze_gray_and_bgra_images(rec, astronaut):
    import cv2

    gray = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(astronaut, cv2.COLOR_BGR2BGRA)
    assert len(rec.analyze(gray)) == 1
    assert len(rec.analyze(bgra)) == 1


def test_no_face_is_an_empty_list(rec):
    assert rec.analyze(np.zeros((100, 100, 3), np.uint8)) == []


def test_bad_arrays(rec):
    with pytest.raises(InputError):
        rec.analyze(np.zeros((10, 10, 5), np.uint8))
    with pytest.raises(InputError):
        rec.classify([np.zeros((0, 0), np.uint8)])


def test_model_that_is_not_mobilefer(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph), path)
    with pytest.raises(ModelError, match="not a mobilefer model"):
        Recognizer(path, detector="haar")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"hello")
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        Recognizer(junk, detector="haar")
    with pytest.raises(ModelError, match="no such model; choose from fer2013, ferplus"):
        Recognizer(tmp_path / "missing.onnx", detector="haar")


def test_model_file_carries_its_settings(rec):
    info = rec.card
    assert info.labels == EMOTIONS
    assert info.preprocessing.input_size == 32
    assert info.preprocessing.margin == 0.0
    assert info.recipe["recipe"] == "default"


def test_card_zoom_defaults_to_the_whole_face_and_is_checked():
    from mobilefer.modelcard import ModelCard

    old = {
        "format": 2,
        "labels": list(EMOTIONS),
        "input_size": 96,
        "channels": 3,
        "mean": [0.5] * 3,
        "std": [0.25] * 3,
    }
    assert ModelCard.from_json(json.dumps(old)).preprocessing.zoom == 1.0
    assert ModelCard.from_json(json.dumps(old | {"zoom": 1.1})).preprocessing.zoom == 1.1
    with pytest.raises(ModelError, match=r"m.onnx: .*\(zoom 3.0 is outside 0.5-2\); re-export"):
        ModelCard.from_json(json.dumps(old | {"zoom": 3}), where="m.onnx")


def test_shipped_model_is_the_default(astronaut):
    """The model in the package: its file states its own scores, and it sees her smile."""
    import mobilefer
    from mobilefer.model import default_model_path

    if not default_model_path().is_file():
        pytest.skip("no model shipped in this checkout")
    rec = Recognizer(detector="haar")
    assert rec.model_path == str(default_model_path())
    assert rec.card.metrics["private_fer2013_accuracy"] >= 0.68
    assert rec.card.recipe["recipe"] == "mixture" and rec.card.recipe.get("members") is None
    assert rec.card.recipe["freeze_blocks"] == 0 and rec.card.prior_tau == 0  # rule m6's m6
    (face,) = rec.analyze(astronaut)
    assert face.label == "happy"
    photo = Path(__file__).parent / "data" / "astronaut.jpg"
    (again,) = mobilefer.analyze(photo, detector="haar")
    assert again.label == "happy"


def test_large_batches_run_in_chunks_with_the_same_result(tiny_model):
    from mobilefer.model import RUN_BATCH, ExpressionModel

    rec = ExpressionModel(tiny_model, flip_tta=True)
    faces = list(np.random.default_rng(3).integers(0, 256, (RUN_BATCH * 3 + 5, 48, 48), np.uint8))
    whole = rec.predict_proba(faces)
    one_by_one = np.concatenate([rec.predict_proba([f]) for f in faces])
    assert whole.shape == (len(faces), 7) and np.allclose(whole, one_by_one, atol=1e-5)


@pytest.mark.parametrize("detector", detectors_available())
def test_landmarks_reach_faces_in_photos_and_tracked_frames(tiny_model, astronaut, detector):
    """YuNet's five points reach each Face, inside its box, also on the frames where the
    tracker found the face in a window; haar has none. Records leave them out."""
    rec = Recognizer(tiny_model, detector=detector)
    frames = [np.ascontiguousarray(np.roll(astronaut, 6 * i, axis=1)) for i in range(5)]
    results = list(rec.stream(frames, detect_every=3))  # frames 1, 2 and 4 search a window
    faces = [rec.analyze(astronaut)[0]] + [r.faces[0] for r in results]
    for face in faces:
        if detector == "haar":
            assert face.landmarks is None
            continue
        x, y, w, h = face.box
        assert len(face.landmarks) == 5
        assert all(x <= px <= x + w and y <= py <= y + h for px, py in face.landmarks)
        (rx, _), (lx, _) = face.landmarks[:2]
        assert rx < lx  # the person's right eye is on the image's left
    assert all("landmarks" not in r for res in results for r in res.records())


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


class OneBox:
    """A detector of our own (the Detector contract): one fixed box in every image."""

    name = "one-box"

    def detect(self, image, detect_size=None):
        from mobilefer.detectors import Detection

        return [Detection((10, 20, 60, 60), 0.5)]


def test_a_recognizer_is_a_model_and_any_detector(tiny_model, astronaut):
    from mobilefer import ExpressionModel
    from mobilefer.detectors import Detector

    model = ExpressionModel(tiny_model, flip_tta=True)
    assert isinstance(OneBox(), Detector)
    rec = Recognizer(model, detector=OneBox())
    (face,) = rec.analyze(astronaut)
    assert rec.model is model and rec.flip_tta
    assert face.box == (10, 20, 60, 60) and face.detector == "one-box"
    crop = astronaut[20:80, 10:70]
    assert np.allclose(list(face.scores.values()), model.predict_proba([crop])[0], atol=1e-6)
    with pytest.raises(OptionError, match="set them on the ExpressionModel"):
        Recognizer(model, detector=OneBox(), threads=2)
    with pytest.raises(OptionError, match="detect\\(image, detect_size\\)"):
        Recognizer(model, detector=object())


@pytest.mark.parametrize("detector", ["haar", "yunet"])
def test_analyze_and_predict_find_the_same_faces_on_a_large_photo(
    tmp_path, capsys, astronaut, tiny_model, detector
):
    """A 512 px portrait on a 4032x3024 canvas: analyze searches a photo as predict does
    (haar at 640 px found no face here, predict at 2016 px one)."""
    import cv2

    from conftest import records, run

    canvas = np.full((3024, 4032, 3), 200, np.uint8)
    canvas[1200:1712, 1800:2312] = astronaut
    path = tmp_path / "canvas.jpg"
    cv2.imwrite(str(path), canvas)
    faces = Recognizer(tiny_model, detector=detector).analyze(path)
    code, out, err = run(capsys, "predict", path, "--model", tiny_model, "--detector", detector)
    assert code == 0, err
    assert len(faces) == 1
    assert [f.box for f in faces] == [tuple(r["box"]) for r in records(out)]


def test_a_device_without_its_provider_falls_back_to_the_cpu_with_one_warning(caplog):
    from mobilefer.model import execution_providers

    cpu = ["CPUExecutionProvider"]
    assert execution_providers("cpu", ["CUDAExecutionProvider", *cpu]) == cpu
    cuda = ["CUDAExecutionProvider", *cpu]
    assert execution_providers("auto", cuda) == cuda
    with caplog.at_level("WARNING"):
        assert execution_providers("auto", cpu) == cpu
        assert not caplog.records  # auto is silent
        assert execution_providers("cuda", cpu) == cpu
    (record,) = caplog.records
    assert "running on the CPU" in record.getMessage() and "mobilefer[gpu]" in record.getMessage()
    with pytest.raises(OptionError, match="choose from cpu, cuda, auto"):
        execution_providers("tpu", cpu)


def test_the_cpu_path_runs_when_cuda_is_asked_for(tiny_model):
    rec = Recognizer(tiny_model, detector="haar", device="auto")
    assert rec.model.device in ("cpu", "cuda")
    assert np.allclose(rec.predict_proba([np.zeros((48, 48), np.uint8)]).sum(), 1)


@pytest.mark.parametrize("detector", ["haar", "yunet"])
def test_one_recognizer_shared_by_threads_gives_one_thread_results(tiny_model, astronaut, detector):
    """Web servers and thread pools share one Recognizer: 4 threads analysing photos of
    different sizes, and 4 streams at once, give what one thread gives (yunet aborted the
    process, haar gave other boxes or raised)."""
    from concurrent.futures import ThreadPoolExecutor

    import cv2

    rec = Recognizer(tiny_model, detector=detector)
    photos = [cv2.resize(astronaut, (s, s)) for s in (256, 384, 512, 640, 700, 900)] * 4

    def boxes(photo):
        return [(f.box, f.label) for f in rec.analyze(photo)]

    def stream(photo):
        frames = [np.roll(photo, 4 * i, axis=1) for i in range(8)]
        return [[f.box for f in r.faces] for r in rec.stream(frames)]

    alone = [boxes(p) for p in photos]
    alone_streams = [stream(p) for p in photos[:4]]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(boxes, photos)) == alone
        assert list(pool.map(stream, photos[:4])) == alone_streams
