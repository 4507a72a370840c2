import numpy as np
import pytest

from mobilefer import Recognizer
from mobilefer.tracking import FaceTracker, iou

from conftest import detectors_available


def moving_face_frames(astronaut, n=24, flicker=False):
    """The astronaut sliding right; with ``flicker`` every other frame is darker, so that the
    classifier's raw scores jump from frame to frame."""
    import cv2

    person = cv2.resize(np.ascontiguousarray(astronaut[0:330, 90:360]), (216, 264))
    frames = []
    for i in range(n):
        frame = np.full((480, 640, 3), 100, np.uint8)
        x = 20 + 16 * i
        gain = 0.6 if flicker and i % 2 else 1.0
        frame[100:364, x : x + 216] = (person * gain).astype(np.uint8)
        frames.append(frame)
    return frames


def parts(rec):
    """What a tracker is given of a Recognizer: its detect function and its classifier."""
    return rec.detector.detect, rec.boxes_proba


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


@pytest.mark.parametrize("detector", detectors_available())
def test_tracker_follows_a_moving_face(tiny_model, astronaut, detector):
    rec = Recognizer(tiny_model, detector=detector)
    tracker = FaceTracker(*parts(rec), detect_every=10)
    frames = moving_face_frames(astronaut)
    per_frame = [tracker.update(f) for f in frames]
    assert all(len(faces) == 1 for faces in per_frame)
    assert {faces[0].track_id for faces in per_frame} == {0}
    # between full detections the box moves with the face
    xs = [faces[0].detection.box[0] for faces in per_frame]
    assert xs[-1] - xs[0] > 200
    for faces, fresh in zip(per_frame[::5], frames[::5], strict=True):
        (want,) = rec.detector.detect(fresh)
        assert iou(faces[0].detection.box, want.box) > 0.5


class BrightnessRecognizer(Recognizer):
    """Scores that follow a face's brightness: the untrained tiny model barely responds."""

    def predict_proba(self, crops):
        bright = np.array([c.mean() / 255 for c in crops])
        p = np.stack([bright, 1 - bright, *([np.full_like(bright, 0.5)] * 5)], axis=1)
        return p / p.sum(1, keepdims=True)


def test_smoothing_damps_changes(tiny_model, astronaut):
    rec = BrightnessRecognizer(tiny_model, detector="haar")
    frames = moving_face_frames(astronaut, 12, flicker=True)
    raw = [FaceTracker(*parts(rec), smoothing=0.0).update(f)[0] for f in frames]
    tracker = FaceTracker(*parts(rec), smoothing=0.8)
    smooth = [tracker.update(f)[0] for f in frames]

    def jitter(faces):
        return np.abs(np.diff(np.array([f.probs for f in faces]), axis=0)).sum()

    assert jitter(raw) > 0
    assert jitter(smooth) < 0.5 * jitter(raw)
    for f in smooth:
        assert f.probs.sum() == pytest.approx(1, abs=1e-6)
    # a stream builds its faces from them: the label is the most likely smoothed class
    for r in rec.stream(frames, smoothing=0.8):
        (f,) = r.faces
        assert f.label == max(f.scores, key=f.scores.get)


def test_detect_every_frame_without_smoothing_is_analyze(tiny_model, astronaut):
    rec = Recognizer(tiny_model, detector="haar")
    tracker = FaceTracker(*parts(rec), detect_every=1, smoothing=0.0)
    for f in moving_face_frames(astronaut, 4):
        (a,) = rec.analyze(f)
        (t,) = tracker.update(f)
        assert t.detection.box == a.box and t.probs == pytest.approx(list(a.scores.values()))


def test_the_tracker_needs_no_recognizer_only_a_detector_and_a_classifier():
    from mobilefer.detectors import Detection

    seen = []

    def detect(image, detect_size=None):  # one face, wherever the image is brightest
        y, x = np.unravel_index(np.argmax(image[..., 0]), image.shape[:2])
        return [Detection((int(x) - 5, int(y) - 5, 10, 10))]

    def classify(image, detections):
        seen.append(len(detections))
        return np.tile([0.25, 0.75], (len(detections), 1))

    tracker = FaceTracker(detect, classify, detect_every=1, smoothing=0.5)
    frame = np.zeros((50, 50, 3), np.uint8)
    frame[20, 30] = 255
    (t,) = tracker.update(frame)
    assert (t.track_id, t.detection.box) == (0, (25, 15, 10, 10)) and seen == [1]
    assert t.probs.tolist() == [0.25, 0.75]


def test_bad_settings():
    with pytest.raises(ValueError):
        FaceTracker(None, None, detect_every=0)
    with pytest.raises(ValueError):
        FaceTracker(None, None, smoothing=1.0)
