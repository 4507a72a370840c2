import numpy as np
import pytest

from mobilefer.data import load_fer2013, load_fer2013_with_ferplus, load_ferplus, split_code
from mobilefer.errors import DataError

from conftest import FER_NPZ, SHARED, synthetic_fer


def write_csv(path, pixels, emotion, usage):
    names = ["Training", "PublicTest", "PrivateTest"]
    lines = ["emotion,pixels,Usage"]
    for p, e, u in zip(pixels, emotion, usage, strict=True):
        lines.append(f"{e},{' '.join(map(str, p.ravel()))},{names[u]}")
    path.write_text("\n".join(lines) + "\n")


def write_folders(root, pixels, emotion, usage, by_name=True):
    import cv2

    from mobilefer import EMOTIONS

    split_names = ["train", "val", "test"]
    for i, (p, e, u) in enumerate(zip(pixels, emotion, usage, strict=True)):
        d = root / split_names[u] / (EMOTIONS[e] if by_name else str(e))
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"{i:05d}.png"), p)


@pytest.mark.parametrize("layout", ["npz", "csv", "folders-by-name", "folders-by-index"])
def test_readers_agree(tmp_path, layout):
    pixels, emotion, usage = synthetic_fer()
    if layout == "npz":
        path = tmp_path / "f.npz"
        np.savez(path, pixels=pixels, emotion=emotion, usage=usage)
    elif layout == "csv":
        path = tmp_path / "f.csv"
        write_csv(path, pixels, emotion, usage)
    else:
        path = tmp_path / "folders"
        write_folders(path, pixels, emotion, usage, by_name=layout == "folders-by-name")
    data = load_fer2013(path)
    assert len(data) == len(emotion)
    for code, name in enumerate(["train", "public", "private"]):
        part = data.split(name)
        mask = usage == code
        assert len(part) == mask.sum()
        # folders are read class by class, so compare as multisets of (label, image bytes)
        got = sorted(
            (int(lbl), px.tobytes()) for lbl, px in zip(part.labels, part.pixels, strict=True)
        )
        want = sorted(
            (int(lbl), px.tobytes()) for lbl, px in zip(emotion[mask], pixels[mask], strict=True)
        )
        assert got == want


def test_csv_wrong_pixel_count(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("emotion,pixels,Usage\n0,1 2 3,Training\n")
    with pytest.raises(DataError, match=r"bad\.csv:2: 3 pixels, expected 2304"):
        load_fer2013(path)


def test_csv_unknown_label(tmp_path):
    pixels, emotion, usage = synthetic_fer((3, 0, 0))
    emotion[1] = 9
    path = tmp_path / "bad.csv"
    write_csv(path, pixels, emotion, usage)
    with pytest.raises(DataError, match="unknown label 9"):
        load_fer2013(path)


def test_csv_wrong_header(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("label,image\n0,1\n")
    with pytest.raises(DataError, match="header must have emotion,pixels"):
        load_fer2013(path)


def test_folder_with_unknown_class(tmp_path):
    (tmp_path / "train" / "bored").mkdir(parents=True)
    with pytest.raises(DataError, match="unknown class folder"):
        load_fer2013(tmp_path)


def test_folder_without_splits(tmp_path):
    (tmp_path / "happy").mkdir()
    with pytest.raises(DataError, match="expected split folders"):
        load_fer2013(tmp_path)


def test_folder_with_wrong_size_image(tmp_path):
    import cv2

    d = tmp_path / "train" / "happy"
    d.mkdir(parents=True)
    cv2.imwrite(str(d / "a.png"), np.zeros((28, 28), np.uint8))
    with pytest.raises(DataError, match="expected 48x48"):
        load_fer2013(tmp_path)


def test_npz_missing_arrays_and_missing_path(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, pixels=np.zeros((1, 48, 48), np.uint8))
    with pytest.raises(DataError, match="lacks emotion, usage"):
        load_fer2013(path)
    with pytest.raises(DataError, match="no such file"):
        load_fer2013(tmp_path / "nope.csv")


def test_unknown_split_lists_choices():
    with pytest.raises(DataError, match="choose from train, public, private"):
        split_code("holdout")


def test_ferplus_csv_joins_by_position(tmp_path):
    path = tmp_path / "fer2013new.csv"
    header = (
        "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
    )
    # the second row has an empty name, the third a name that drifts from its row index
    path.write_text(
        header + "\nTraining,fer0000000.png,10,0,0,0,0,0,0,0,0,0\n"
        "Training,,0,0,0,0,0,0,0,0,0,10\nTraining,fer0000007.png,0,9,1,0,0,0,0,0,0,0\n"
    )
    votes = load_ferplus(path, expected_rows=3)
    assert votes.shape == (3, 10)
    assert votes[2, 1] == 9 and votes[1, 9] == 10
    with pytest.raises(DataError, match="rows join by position"):
        load_ferplus(path, expected_rows=4)


def test_ferplus_votes_beside_the_data_or_given(tmp_path):
    pixels, emotion, usage = synthetic_fer()
    np.savez(tmp_path / "f.npz", pixels=pixels, emotion=emotion, usage=usage)
    assert load_fer2013_with_ferplus(tmp_path / "f.npz").votes is None  # none beside: no votes
    votes = np.zeros((len(emotion), 10), dtype=np.int16)
    votes[:, 1] = 10
    np.savez(tmp_path / "ferplus.npz", votes=votes)
    assert np.array_equal(load_fer2013_with_ferplus(tmp_path / "f.npz").votes, votes)
    with pytest.raises(DataError, match="no such file"):
        load_fer2013_with_ferplus(tmp_path / "f.npz", tmp_path / "other.npz")


@pytest.mark.skipif(not FER_NPZ.is_file(), reason="../shared/data has no FER2013")
def test_real_fer2013_counts():
    data = load_fer2013(FER_NPZ)
    assert [len(data.split(s)) for s in ("train", "public", "private")] == [28709, 3589, 3589]
    assert data.split("train").class_counts().tolist() == [3995, 436, 4097, 7215, 4830, 3171, 4965]
    votes = load_ferplus(SHARED / "data" / "fer2013" / "ferplus.npz", expected_rows=len(data))
    assert votes.shape == (35887, 10)
    csv_votes = load_ferplus(SHARED / "data" / "fer2013" / "fer2013new.csv")
    assert np.array_equal(votes, csv_votes)
