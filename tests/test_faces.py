import numpy as np
import pytest

from mobilefer import faces
from mobilefer.errors import WeightsError
from mobilefer.faces import create_detector, install_yunet, yunet_path

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
    (big_face,) = create_detector(name, max_side=512).detect(big)
    assert np.allclose(np.array(big_face.box) / 3, small_face.box, atol=12)


def test_unknown_detector_lists_choices():
    with pytest.raises(ValueError, match="unknown detector 'hog'; choose from haar, yunet"):
        create_detector("hog")


@pytest.mark.skipif(not YUNET_SRC.is_file(), reason="../shared/weights lacks YuNet")
def test_yunet_cache_seeded_and_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("MOBILEFER_CACHE", str(tmp_path / "cache"))
    cached = install_yunet(YUNET_SRC)
    assert cached == tmp_path / "cache" / faces.YUNET_FILE
    assert yunet_path(download=False) == cached
    # a corrupted cache file is rejected, not used
    cached.write_bytes(b"not yunet")
    with pytest.raises(WeightsError, match="sha256"):
        yunet_path(download=False)


def test_yunet_env_path_must_match_sha256(tmp_path, monkeypatch):
    fake = tmp_path / "yunet.onnx"
    fake.write_bytes(b"\0" * 100)
    monkeypatch.setenv(faces.YUNET_ENV, str(fake))
    with pytest.raises(WeightsError, match="does not match"):
        yunet_path()
    monkeypatch.setenv(faces.YUNET_ENV, str(tmp_path / "missing.onnx"))
    with pytest.raises(WeightsError, match="no such YuNet file"):
        yunet_path()


def test_auto_falls_back_to_haar_with_one_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MOBILEFER_CACHE", str(tmp_path / "empty"))

    def no_network(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    with caplog.at_level("WARNING"):
        det = create_detector("auto")
    assert det.name == "haar"
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "haar" in warnings[0].getMessage()
    with pytest.raises(WeightsError, match="cannot download YuNet"):
        create_detector("yunet")
