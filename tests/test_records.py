"""Records read back (mobilefer.records): streamed, and every malformed record one InputError
that names the file and the line."""

import json
import os

import pytest

from mobilefer import read_records
from mobilefer.errors import InputError
from mobilefer.records import iter_records

GOOD = {
    "source": "a.jpg",
    "frame": None,
    "time": None,
    "face": 0,
    "box": [1, 2, 3, 4],
    "label": "happy",
    "scores": {"happy": 0.75, "sad": 0.25},
    "detector": "haar",
    "detector_score": None,
    "track_id": None,
    "score": 0.75,
}


def jsonl(tmp_path, *lines) -> str:
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines))
    return str(path)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"\xff\xfe not text", "r.jsonl:2: not UTF-8 text"),
        ("{not json", "r.jsonl:2: not JSON Lines"),
        ("[1, 2]", "r.jsonl:2: not a record"),
        ('{"source": "a.jpg"}', "r.jsonl:2: not a record \\(no frame, time, label, scores\\)"),
        (json.dumps(GOOD | {"time": "soon"}), "r.jsonl:2: time 'soon' is not a float"),
        (
            json.dumps(GOOD).replace("0.25", "NaN"),
            "r.jsonl:2: not JSON Lines \\(NaN is not a finite",
        ),
        (json.dumps(GOOD).replace("0.75}", "Infinity}"), "r.jsonl:2: not JSON Lines"),
        (json.dumps(GOOD | {"box": [1, 2]}), "r.jsonl:2: box \\[1, 2\\] is not a box"),
        (
            json.dumps(GOOD | {"label": "angry", "scores": {"angry": 1.0}}),
            "r.jsonl:2: labels angry differ",
        ),
        # found by the third round's fresh probe: each crashed summarize() or passed unchecked
        (json.dumps(GOOD | {"frame": 10**30}), "r.jsonl:2: frame 1000.* is not a whole number"),
        (json.dumps(GOOD | {"frame": -5}), "r.jsonl:2: frame -5 is not a whole number from 0"),
        (json.dumps(GOOD | {"track_id": 2**63}), "r.jsonl:2: track_id .* is not a whole number"),
        (json.dumps(GOOD | {"box": [1, 2, 10**400, 4]}), "r.jsonl:2: box .* is not a box of 4"),
        (json.dumps(GOOD | {"label": "angry"}), "r.jsonl:2: label 'angry' is not one of its"),
        (json.dumps(GOOD | {"scores": None}), "r.jsonl:2: label 'happy' is not one of its"),
        (json.dumps(GOOD | {"label": None}), "r.jsonl:2: label None is not one of its"),
        (json.dumps(GOOD | {"scores": {"happy": -3.0, "sad": 4.0}}), "summing to 1"),
        (json.dumps(GOOD | {"scores": {"happy": 0.5, "sad": 0.2}}), "summing to 1"),
        (json.dumps(GOOD | {"yaw": "left"}), "r.jsonl:2: yaw 'left' is not a float"),
        ("[" * 100_000 + "]" * 100_000, "r.jsonl:2: nested too deep"),
    ],
)
def test_a_malformed_record_is_one_error_naming_file_and_line(tmp_path, line, message):
    path = jsonl(tmp_path, json.dumps(GOOD), line)
    with pytest.raises(InputError, match=message):
        list(read_records(path))


def test_good_records_come_back_one_at_a_time(tmp_path):
    path = jsonl(tmp_path, json.dumps(GOOD), "", json.dumps(GOOD | {"face": 1}))
    it = iter_records(path)
    assert next(it) == GOOD and next(it)["face"] == 1
    assert next(it, None) is None


def test_a_csv_of_records_is_checked_too(tmp_path):
    from mobilefer.records import csv_columns

    header = ",".join(csv_columns(["happy", "sad"]))
    good = "a.jpg,,,0,1,2,3,4,happy,0.75,haar,,,,,,false,0.75,0.25"
    path = tmp_path / "r.csv"
    path.write_text(f"{header}\n{good}\n{good.replace('0.25', 'x')}\n")
    with pytest.raises(InputError, match="r.csv:3: 'x' is not a number"):
        list(read_records(path))
    path.write_text(f"{header}\n{good}\na.jpg,1\n")
    with pytest.raises(InputError, match="r.csv:3: 2 columns"):
        list(read_records(path))
    path.write_text(f"{header}\n{good}\n")
    (rec,) = read_records(path)
    assert rec["scores"] == {"happy": 0.75, "sad": 0.25} and rec["label"] == "happy"


def test_a_pipe_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "r.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        read_records(fifo)


def test_summarize_refuses_two_label_sets_for_one_source():
    from mobilefer import summarize

    other = GOOD | {"scores": {"angry": 0.5, "contempt": 0.5}, "label": "contempt"}
    with pytest.raises(InputError, match="labels angry, contempt differ"):
        summarize([GOOD, other])


def test_a_csv_saved_by_a_spreadsheet_with_a_byte_order_mark_is_read(tmp_path):
    from mobilefer.records import csv_columns

    path = tmp_path / "r.csv"
    row = "a.jpg,,,0,1,2,3,4,happy,0.75,haar,,,,,,false,0.75,0.25"
    path.write_bytes(
        b"\xef\xbb\xbf" + (",".join(csv_columns(["happy", "sad"])) + "\n" + row + "\n").encode()
    )
    (rec,) = read_records(path)
    assert rec["source"] == "a.jpg" and rec["label"] == "happy"
