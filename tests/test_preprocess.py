import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mobilefer.errors import InputError
from mobilefer.preprocess import (
    Preprocessing,
    crop,
    expand_box,
    face_48,
    prepare,
    square_box,
    to_gray,
)

boxes = st.tuples(
    st.floats(-500, 2000), st.floats(-500, 2000), st.floats(0, 2000), st.floats(0, 2000)
)


@given(box=boxes, margin=st.floats(0, 1), w=st.integers(1, 1500), h=st.integers(1, 1500))
def test_expanded_box_stays_inside_the_image(box, margin, w, h):
    x, y, bw, bh = expand_box(box, margin, w, h)
    assert 0 <= x < w and 0 <= y < h
    assert bw >= 1 and bh >= 1
    assert x + bw <= w and y + bh <= h


@given(x=st.integers(0, 50), y=st.integers(0, 50), s=st.integers(1, 40), m=st.floats(0, 0.5))
def test_margin_only_grows_a_box_inside_the_image(x, y, s, m):
    bx, by, bw, bh = expand_box((x + 20, y + 20, s, s), m, 200, 200)
    assert bx <= x + 20 and by <= y + 20
    assert bx + bw >= x + 20 + s and by + bh >= y + 20 + s


@settings(max_examples=30, deadline=None)
@given(
    h=st.integers(1, 120),
    w=st.integers(1, 120),
    channels=st.sampled_from([0, 1, 3, 4]),
    dtype=st.sampled_from([np.uint8, np.uint16]),
    size=st.sampled_from([32, 96]),
)
def test_prepare_shape_and_range(h, w, channels, dtype, size):
    rng = np.random.default_rng(0)
    shape = (h, w) if channels == 0 else (h, w, channels)
    img = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)
    pre = Preprocessing(input_size=size, mean=(0.0,) * 3, std=(1.0,) * 3)
    x = prepare([img, img], pre)
    assert x.shape == (2, 3, size, size) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert np.array_equal(x[0, 0], x[0, 2])  # gray repeated to 3 channels


def test_to_gray_matches_opencv_for_bgr_and_bgra():
    import cv2

    rng = np.random.default_rng(1)
    bgr = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    bgra = np.dstack([bgr, np.full((20, 30), 255, np.uint8)])
    want = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    assert np.array_equal(to_gray(bgr), want)
    assert np.array_equal(to_gray(bgra), want)
    assert np.array_equal(to_gray(bgr.astype(np.uint16) << 8), want)


def test_bad_shapes_raise_input_error():
    with pytest.raises(InputError):
        to_gray(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(InputError):
        face_48(np.zeros((0, 5), np.uint8))


def test_crop_is_the_squared_box_region():
    img = np.arange(100 * 100, dtype=np.uint32).reshape(100, 100)
    assert np.array_equal(crop(img, (10, 20, 30, 40), square=False), img[20:60, 10:40])
    assert np.array_equal(crop(img, (10, 20, 30, 40)), img[20:60, 5:45])  # 40 x 40, same centre


@given(box=boxes)
def test_square_box_keeps_centre_and_longer_side(box):
    x, y, s, s2 = square_box(box)
    assert s == s2 == max(box[2], box[3])
    assert x + s / 2 == pytest.approx(box[0] + box[2] / 2)
    assert y + s / 2 == pytest.approx(box[1] + box[3] / 2)


def test_inference_preprocessing_matches_training():
    """prepare() (cv2, inference) and the training resize (torch) agree on 48x48 faces."""
    torch = pytest.importorskip("torch")
    from mobilefer.train.augment import augment, normalise
    from mobilefer.train.recipes import recipe

    cfg = recipe("default", augment=False)
    faces = np.random.default_rng(2).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    x_inf = prepare(list(faces), cfg.preprocessing())
    t = torch.from_numpy(faces).float().div(255).unsqueeze(1)
    x_train = normalise(augment(t, cfg, torch.Generator()), cfg).numpy()
    assert np.abs(x_inf - x_train).max() < 1e-4


@settings(max_examples=25, deadline=None)
@given(
    zoom=st.sampled_from([1.2, 1.5, 2.0]),
    size=st.sampled_from([48, 96, 112]),
    seed=st.integers(0, 2**16),
)
def test_zoom_shows_the_central_part_of_the_face(zoom, size, seed):
    """zoom Z: the model's input is the central 48/Z pixels of the face, resized (bilinear)."""
    import cv2

    face = np.random.default_rng(seed).integers(0, 256, (48, 48), dtype=np.uint8)
    x = prepare([face], Preprocessing(input_size=size, channels=1, mean=(0,), std=(1,), zoom=zoom))
    side = round(48 / zoom)
    lo = (48 - side) // 2
    want = cv2.resize(
        face[lo : lo + side, lo : lo + side].astype(np.float32) / 255,
        (size, size),
        interpolation=cv2.INTER_LINEAR,
    )
    inner = slice(size // 16, size - size // 16)  # the borders differ: beyond them lies more face
    assert x.shape == (1, 1, size, size)
    # warpAffine interpolates in steps of 1/32 pixel
    assert np.abs(x[0, 0][inner, inner] - want[inner, inner]).max() < 0.06
    assert np.array_equal(
        prepare([face], Preprocessing(input_size=size, zoom=1.0)),
        prepare([face], Preprocessing(input_size=size)),
    )
