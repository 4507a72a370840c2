import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mobilefer import detectors as faces
from mobilefer.detectors import create_detector, yunet_path
from mobilefer.errors import WeightsError

from conftest import YUNET_SRC, detectors_available


@pytest.mark.parametrize("name", detectors_available())
def test_one_face_in_astronaut(name, astronaut):
    found = create_detector(name).detect(astronaut)
    assert len(found) == 1
    x, y, w, h = found[0].box
    # Eileen Collins' face lies around x 180-270, y 60-180 in the 512x512 photo
    assert 150 < x + w / 2 < 300 and 60 < y + h / 2 < 200
    assert 60 < w < 160


@pytest.mark.parametrize("name", detectors_available())
def test_no_face_in_a_blank_image(name):
    assert create_detector(name).detect(np.full((240, 320, 3), 128, np.uint8)) == []


@pytest.mark.parametrize("name", detectors_available())
def test_downscaled_detection_maps_boxes_back(name, astronaut):
    import cv2

    big = cv2.resize(astronaut, (1536, 1536))
    (small_face,) = create_detector(name).detect(astronaut)
    (big_face,) = create_detector(name, detect_size=512).detect(big)
    assert np.allclose(np.array(big_face.box) / 3, small_face.box, atol=12)


def test_unknown_detector_lists_choices():
    with pytest.raises(ValueError, match="unknown detector 'hog'; choose from haar, yunet"):
        create_detector("hog")


def test_yunet_ships_inside_the_package(monkeypatch):
    import hashlib

    monkeypatch.delenv(faces.YUNET_ENV, raising=False)
    path = yunet_path()
    assert path.parent.name == "models" and path.name == faces.YUNET_FILE
    assert hashlib.sha256(path.read_bytes()).hexdigest() == faces.YUNET_SHA256
    # a given file wins over the packaged one
    monkeypatch.setenv(faces.YUNET_ENV, str(YUNET_SRC))
    assert yunet_path() == YUNET_SRC


def test_yunet_env_path_must_match_sha256(tmp_path, monkeypatch):
    fake = tmp_path / "yunet.onnx"
    fake.write_bytes(b"\0" * 100)
    monkeypatch.setenv(faces.YUNET_ENV, str(fake))
    with pytest.raises(WeightsError, match="does not match"):
        yunet_path()
    monkeypatch.setenv(faces.YUNET_ENV, str(tmp_path / "missing.onnx"))
    with pytest.raises(WeightsError, match="no such YuNet file"):
        yunet_path()


def test_auto_falls_back_to_haar_with_one_warning(monkeypatch, caplog):
    monkeypatch.delenv(faces.YUNET_ENV, raising=False)
    monkeypatch.setattr(faces, "YUNET_FILE", "missing.onnx")  # as an install without the file
    with caplog.at_level("WARNING"):
        det = create_detector("auto")
    assert det.name == "haar"
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "haar" in warnings[0].getMessage()
    with pytest.raises(WeightsError, match="missing from the package; reinstall"):
        create_detector("yunet")


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


def test_large_photos_are_searched_at_a_larger_size():
    from mobilefer.detectors import image_detect_size

    assert image_detect_size(480, 640) == 640
    assert image_detect_size(1080, 1920) == 960
    assert image_detect_size(3024, 4032) == 2016  # a 40 px face stays 20 px


def test_small_face_in_a_12_megapixel_photo_is_found(tiny_model, astronaut):
    import cv2

    from mobilefer import Recognizer

    photo = np.full((3024, 4032, 3), 120, np.uint8)
    head = cv2.resize(astronaut[20:220, 130:320], None, fx=0.4, fy=0.4)  # the face: ~40 px
    photo[1500 : 1500 + head.shape[0], 2000 : 2000 + head.shape[1]] = head
    rec = Recognizer(tiny_model, detector="yunet")
    (result,) = list(rec.stream(photo))
    assert len(result.faces) == 1
    x, y, w, h = result.faces[0].box
    assert 2000 < x < 2000 + head.shape[1] and 1500 < y < 1500 + head.shape[0] and w < 60


def test_yunet_keeps_a_native_detector_per_size_class(monkeypatch, astronaut):
    """A video's full frames and the tracker's small windows each keep their own native
    detector (moving one between the two sizes cost about 2 ms a move), and the faces found do
    not depend on what was detected before."""
    import cv2

    from mobilefer.detectors import YuNetDetector

    made = []
    create = cv2.FaceDetectorYN.create
    monkeypatch.setattr(
        cv2.FaceDetectorYN, "create", lambda *a, **k: made.append(a[2]) or create(*a, **k)
    )
    det = YuNetDetector()
    window = cv2.resize(astronaut[40:200, 150:300], (128, 101))
    frame = cv2.resize(astronaut, (320, 240))
    fresh = [YuNetDetector().detect(window, None), YuNetDetector().detect(frame, None)]
    made.clear()
    for _ in range(5):
        assert det.detect(window, None) == fresh[0] and det.detect(frame, None) == fresh[1]
    assert made == [(128, 101), (320, 240)]  # one for each size, made once
