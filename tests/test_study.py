"""From clips to a study: events, participants compared, and which way each face looks. Clips
of known content (an expression that changes at a known second; participants whose means differ
by a known amount), both as results made by hand and through the whole command line."""

from __future__ import annotations

import csv
import math
import os
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from mobilefer import EMOTIONS, InputError, compare, read_events, summarize
from mobilefer.model import ExpressionModel
from mobilefer.pose import head_pose
from mobilefer.recognizer import Face
from mobilefer.stream import Result
from mobilefer.study import interval, t975
from mobilefer.study.plan import Event, Member, StudyPlan, read_participants

from conftest import run

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from synthetic import person, turn_face  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def scores(label: str, p: float) -> dict[str, float]:
    rest = (1 - p) / (len(EMOTIONS) - 1)
    return {k: p if k == label else rest for k in EMOTIONS}


def clip(runs, fps=10.0, source="clip.mp4"):
    """Results of a clip: ``runs`` is [(label, probability, frames), ...] of one face (label
    None: the face is there but turned away, not scored; "-": no face)."""
    out, i = [], 0
    for label, p, n in runs:
        for _ in range(n):
            faces = ()
            if label == "turned":
                faces = (Face((10, 10, 50, 50), None, None, "yunet", 0.9, 0, None, 50.0),)
            elif label != "-":
                faces = (Face((10, 10, 50, 50), label, scores(label, p), "yunet", 0.9, 0),)
            out.append(Result(source, "video", faces, None, i, i / fps, fps=fps))
            i += 1
    return out


EVENTS = (Event("baseline", 0, 2), Event("ad", 2, 6))


def test_an_expression_that_changes_at_a_known_second():
    results = clip([("neutral", 0.8, 20), ("happy", 0.9, 30), ("turned", 0, 5), ("-", 0, 5)])
    (c,) = summarize(results, events=EVENTS, baseline="baseline")
    base, ad = c.events
    assert (base.frames, base.usable, base.turned) == (20, 20, 0)
    assert (ad.frames, ad.usable, ad.turned) == (40, 30, 5) and ad.usable_share == 0.75
    assert base.mean["neutral"] == pytest.approx(0.8) and ad.mean["happy"] == pytest.approx(0.9)
    assert base.share["neutral"] == 1 and ad.share["happy"] == 1
    assert ad.valence == pytest.approx(0.9 - 0.1 / 6)
    assert base.valence == pytest.approx(0.2 / 6 - 0.2 / 6)
    assert ad.change["happy"] == pytest.approx(0.9 - 0.2 / 6)
    assert ad.change["valence"] == pytest.approx(ad.valence - base.valence)
    assert ad.peaks["happy"].time == pytest.approx(2.0) and ad.peaks["happy"].frame == 20
    (track,) = c.tracks
    assert track.turned == 5 and track.frames == 50
    assert [(e.frames, e.usable, e.turned) for e in track.events] == [(20, 20, 0), (35, 30, 5)]


def test_an_event_past_the_end_or_before_any_face_has_no_numbers():
    results = clip([("-", 0, 10), ("happy", 0.9, 10)])
    (c,) = summarize(results, events=(Event("empty", 0, 1), Event("late", 50, 60)))
    for e in c.events:
        assert e.usable == 0 and e.mean is None and e.valence is None
    assert c.events[0].frames == 10 and c.events[1].frames == 0


def test_two_participants_whose_means_differ_by_a_known_amount():
    a = clip([("neutral", 0.8, 20), ("happy", 0.9, 40)], source="a.mp4")
    b = clip([("neutral", 0.8, 20), ("happy", 0.5, 40)], source="b.mp4")
    c = clip([("neutral", 0.8, 20), ("happy", 0.7, 40)], source="c.mp4")
    clips = summarize(a + b + c, events=EVENTS, baseline="baseline")
    people = {"a.mp4": Member("ann", "x"), "b": Member("bob", "x"), "c.mp4": Member("cid", "y")}
    study = compare(clips, people, baseline="baseline")
    assert study.groups == ("x", "y") and study.events == ("baseline", "ad")
    rows = {(r.event, r.group): r for r in study.table}
    everyone = rows[("ad", None)].mean["happy"]
    assert everyone.mean == pytest.approx(0.7) and everyone.n == 3
    half = t975(2) * 0.2 / math.sqrt(3)  # sd of 0.9, 0.5, 0.7 is 0.2
    assert everyone.low == pytest.approx(0.7 - half) and everyone.high == pytest.approx(0.7 + half)
    assert rows[("ad", "x")].mean["happy"].mean == pytest.approx(0.7)
    assert rows[("ad", "y")].mean["happy"].low is None  # one participant: no interval
    table = study.rows()
    assert len(table) == 6 and {r["participant"] for r in table} == {"ann", "bob", "cid"}
    ann = next(r for r in table if r["participant"] == "ann" and r["event"] == "ad")
    assert ann["mean_happy"] == pytest.approx(0.9) and ann["group"] == "x"
    assert ann["change_happy"] == pytest.approx(0.9 - 0.2 / 6, abs=1e-4)


def test_clip_rows_override_shared_events():
    events = (Event("ad", 2, 6), Event("ad", 4, 8, clip="late.mp4"))
    early = clip([("happy", 0.9, 80)], source="early.mp4")
    late = clip([("happy", 0.9, 80)], source="late.mp4")
    by = {c.source: c.events for c in summarize(early + late, events=events)}
    assert by["early.mp4"][0].start == 2 and by["late.mp4"][0].start == 4


def test_a_clip_whose_stimulus_began_later_is_shifted_by_its_offset(tmp_path):
    """Participants recorded with different lead-ins: ``offset`` in the participants file moves
    the shared events of their clip (its own rows stay as given)."""
    early = clip([("neutral", 0.8, 20), ("happy", 0.9, 40)], source="early.mp4")
    late = clip([("neutral", 0.8, 35), ("happy", 0.9, 40)], source="late.mp4")  # 1.5 s later
    (tmp_path / "p.csv").write_text("clip,participant,offset\nearly.mp4,e,\nlate.mp4,l,1.5\n")
    plan = StudyPlan(EVENTS, None, read_participants(tmp_path / "p.csv"))
    by = {
        c.source: c.events for c in summarize(early + late, events=EVENTS, offsets=plan.offsets())
    }
    for source in ("early.mp4", "late.mp4"):
        base, ad = by[source]
        assert base.mean["neutral"] == pytest.approx(0.8) and ad.mean["happy"] == pytest.approx(0.9)
    assert by["late.mp4"][1].start == 3.5 and by["early.mp4"][1].start == 2.0
    (tmp_path / "bad.csv").write_text("clip,participant,offset\nlate.mp4,l,soon\n")
    with pytest.raises(InputError, match="bad.csv:2: offset 'soon' must be seconds"):
        read_participants(tmp_path / "bad.csv")


def test_student_t_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 5, 29, 30, 31, 60, 500):
        assert t975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1e-3)
    assert interval([1.0]).low is None and interval([1.0, 3.0]).mean == 2.0


@pytest.mark.parametrize(
    "text, message",
    [
        ("start,end\n0,1\n", "needs columns name,start,end"),
        ("name,start,end\nad,zero,1\n", ":2: start 'zero' and end '1' must be seconds"),
        ("name,start,end\nad,3,2\n", ":2: ad: needs 0 <= start < end"),
        ("name,start,end\nad,nan,2\n", "needs 0 <= start < end"),
        ("name,start,end\nad,0,2\nad,2,3\n", ":3: ad is given twice"),
        ("name,start,end\n", "no events"),
        ("name,start,end\n,0,1\n", "an event needs a name"),
        ("name,start,end\nad,0\n", "not as many values as columns"),
    ],
)
def test_a_bad_events_file_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / "events.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_events(path)


def test_events_and_participants_files_are_checked(tmp_path):
    (tmp_path / "bad.csv").write_bytes(b"name,start,end\n\xff,0,1\n")
    with pytest.raises(InputError, match="not UTF-8"):
        read_events(tmp_path / "bad.csv")
    with pytest.raises(InputError, match="no such events file"):
        read_events(tmp_path / "missing.csv")
    os.mkfifo(tmp_path / "fifo.csv")  # refused without being opened: opening it would block
    with pytest.raises(InputError, match="fifo.csv: not a regular file; pass a CSV file"):
        read_events(tmp_path / "fifo.csv")
    (tmp_path / "e.csv").write_text("\ufeffName,Start,End,Clip\nad,0,1,\nad,1,2,b.mp4\n")
    assert len(read_events(tmp_path / "e.csv")) == 2  # a spreadsheet's BOM and capitals
    with pytest.raises(InputError, match="--baseline 'intro' is not an event .*choose from ad"):
        StudyPlan.from_files(tmp_path / "e.csv", "intro")
    with pytest.raises(InputError, match="go with --events"):
        StudyPlan.from_files(None, "ad")
    (tmp_path / "p.csv").write_text("clip,participant\na.mp4,ann\nb.mp4,ann\n")
    with pytest.raises(InputError, match="participant ann has two clips"):
        read_participants(tmp_path / "p.csv")


# --- which way a face looks -------------------------------------------------------------------


@pytest.fixture(scope="module")
def face_photo(astronaut):
    """The astronaut and her five landmarks (YuNet)."""
    from mobilefer.detectors import YuNetDetector

    (found,) = YuNetDetector().detect(astronaut, 0)
    return astronaut, found.landmarks


def reading(image):
    from mobilefer.detectors import YuNetDetector

    found = YuNetDetector().detect(image, 0)
    return head_pose(max(found, key=lambda d: d.box[2] * d.box[3]).landmarks)


@pytest.mark.parametrize(
    "axis, turn",
    [
        ("yaw", 30),
        ("yaw", -30),
        ("yaw", 15),
        ("yaw", -15),
        ("pitch", 20),
        ("pitch", -20),
        ("roll", 30),
        ("roll", -30),
    ],
)
def test_each_angle_has_the_sign_of_the_turn(face_photo, axis, turn):
    image, marks = face_photo
    at = {"yaw": 0, "pitch": 1, "roll": 2}[axis]
    base, got = reading(image), reading(turn_face(image, marks, **{axis: turn}))
    moved = got[at] - base[at]
    assert np.sign(moved) == np.sign(turn) and abs(moved) < abs(turn) + 8, (axis, turn, moved)


#: The error the README states (results/pose.json, benchmarks/pose.py, 40 faces): mean absolute
#: error for turns up to 30 degrees, with some room for a sample of 8 faces.
STATED = {"yaw": 9.5 + 3, "pitch": 10 + 3, "roll": 3 + 2}


def test_the_angles_are_within_the_stated_error():
    root = Path(__file__).resolve().parents[2] / "shared/data/ood/taiwanese"
    if not (root / "labels.csv").exists():
        pytest.skip("no ../shared/data/ood")
    with open(root / "labels.csv", newline="") as f:
        files = [r["file"] for r in csv.DictReader(f) if r["fold"] == "train"][::50][:8]
    errors = {axis: [] for axis in STATED}
    for name in files:
        image = cv2.imread(str(root / name))
        marks = reading_marks(image)
        base = reading(image)
        turns_of = (
            ("yaw", (-30, -15, 15, 30)),
            ("pitch", (-20, -10, 10, 20)),
            ("roll", (-30, -20, -10, 10, 20, 30)),
        )  # benchmarks/pose.py's, up to 30
        for at, (axis, turns) in enumerate(turns_of):
            for t in turns:
                got = reading(turn_face(image, marks, **{axis: t}))
                errors[axis].append(got[at] - base[at] - t)
    for axis, bound in STATED.items():
        assert np.abs(errors[axis]).mean() <= bound, (axis, np.round(errors[axis], 1))


@pytest.mark.parametrize("axis", ["yaw", "roll"])
def test_a_mirrored_face_turns_the_other_way(face_photo, axis):
    """Turned and then mirrored, a face reads the opposite change (each from its own unturned
    reading: the photo's own pose is not quite frontal)."""
    image, marks = face_photo
    at = {"yaw": 0, "roll": 2}[axis]
    turned = turn_face(image, marks, **{axis: 30})

    def mirror(im):
        return np.ascontiguousarray(im[:, ::-1])

    a = reading(turned)[at] - reading(image)[at]
    b = reading(mirror(turned))[at] - reading(mirror(image))[at]
    assert a > 2 and b < -2, (a, b)  # the sign; the size is the benchmark's (README)


def test_no_landmarks_no_angles():
    assert head_pose(None) is None and head_pose([(0, 0)] * 5) is None
    assert head_pose([(1, 2), (3, 4)]) is None


# --- the whole command line: three clips, events, participants, --max-yaw -----------------------

#: Clips: 2 s of the face as it is (the model reads neutral), then 6 s tinted blue by each
#: participant's amount (the model reads happy with that probability), then 1 s turned away.
TINT = {"ann": 0.9, "bob": 0.5, "cid": 0.7}
FPS = 10


def fake_proba(self, crops):
    """A stand-in model: happy with the probability the blue tint of the face codes, the rest
    neutral (no tint: neutral 1)."""
    out = []
    for c in crops:
        tint = float(c[..., 0].mean() - c[..., 2].mean())
        if fake_proba.base is None:  # the first face of a run is untinted: the zero point
            fake_proba.base = tint
        p = float(np.clip((tint - fake_proba.base) / 100, 0, 1))
        row = np.zeros(len(EMOTIONS))
        row[EMOTIONS.index("happy")], row[EMOTIONS.index("neutral")] = p, 1 - p
        out.append(row)
    return np.array(out).reshape(len(crops), len(EMOTIONS))


def study_clip(path: Path, amount: float) -> None:
    who = person()
    marks = reading_marks(who)
    away = turn_face(who, marks, yaw=45)
    frame = np.full((480, 640, 3), 120, np.uint8)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (640, 480))
    for i in range(9 * FPS):
        face = away if i >= 8 * FPS else who
        f = frame.copy()
        f[100 : 100 + who.shape[0], 200 : 200 + who.shape[1]] = face
        if 2 * FPS <= i < 8 * FPS:
            f = tinted(f, amount)
        vw.write(f)
    vw.release()


def tinted(image: np.ndarray, amount: float) -> np.ndarray:
    out = image.astype(np.int16)
    out[..., 0] += int(50 * amount)
    out[..., 2] -= int(50 * amount)
    return np.clip(out, 0, 255).astype(np.uint8)


def reading_marks(image):
    from mobilefer.detectors import YuNetDetector

    return YuNetDetector().detect(image, 0)[0].landmarks


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    for name, amount in TINT.items():
        study_clip(folder / f"{name}.mp4", amount)
    (folder / "events.csv").write_text("name,start,end\nbaseline,0,2\nad,2,8\nend,8,9\n")
    (folder / "people.csv").write_text(
        "clip,participant,group\nann.mp4,ann,early\nbob.mp4,bob,early\ncid.mp4,cid,late\n"
    )
    return folder


def test_a_study_of_three_clips_in_one_command(capsys, monkeypatch, study, tmp_path):
    pytest.importorskip("plotly")
    fake_proba.base = None
    monkeypatch.setattr(ExpressionModel, "predict_proba", fake_proba)
    out, table = tmp_path / "study.html", tmp_path / "study.csv"
    code, _, err = run(
        capsys,
        "report",
        *sorted(study.glob("*.mp4")),
        "--events",
        study / "events.csv",
        "--participants",
        study / "people.csv",
        "--baseline",
        "baseline",
        "--max-yaw",
        "20",
        "--out",
        out,
        "--csv",
        table,
    )
    assert code == 0, err
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 9
    by = {(r["participant"], r["event"]): r for r in rows}
    for who, amount in TINT.items():
        ad, base = by[(who, "ad")], by[(who, "baseline")]
        assert float(ad["mean_happy"]) == pytest.approx(amount, abs=0.05), (who, ad)
        assert float(base["mean_happy"]) == pytest.approx(0, abs=0.05)
        assert float(ad["change_happy"]) == pytest.approx(amount, abs=0.05)
        assert int(ad["usable"]) == int(ad["frames"]) == 60
        end = by[(who, "end")]  # turned 45 degrees, beyond --max-yaw 20: counted, not scored
        assert int(end["frames"]) == int(end["turned"]) + int(end["usable"]) == 10
        assert int(end["turned"]) >= 6  # yaw is under-read (README): some read under 20
    page = out.read_text()
    assert (
        "<table id=study>" in page
        and "early" in page
        and "http" not in page.split("<body>")[1].split("<script")[0]
    )


def test_the_study_report_opens_in_chromium(capsys, monkeypatch, study, tmp_path):
    pytest.importorskip("plotly")
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("no chromium")
    monkeypatch.setattr(ExpressionModel, "predict_proba", fake_proba)
    fake_proba.base = None
    out = tmp_path / "two.html"
    code, _, err = run(
        capsys,
        "report",
        study / "ann.mp4",
        study / "bob.mp4",
        "--events",
        study / "events.csv",
        "--participants",
        study / "people.csv",
        "--baseline",
        "baseline",
        "--out",
        out,
    )
    assert code == 0, err
    errors, requests = [], []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on(
            "request", lambda r: not r.url.startswith(("file:", "data:")) and requests.append(r.url)
        )
        page.goto(out.as_uri())
        page.wait_for_selector("#study")
        assert page.locator("#study tr").count() == 1 + 3 * 2  # 3 events x (everyone, early)
        assert page.locator(".js-plotly-plot").count() >= 2 + 2 * 3
        assert page.locator("text=baseline").count() > 0
        page.screenshot(path=str(tmp_path / "study.png"), full_page=True)
        browser.close()
    assert not errors and not requests
    assert (tmp_path / "study.png").stat().st_size > 10_000


def test_what_a_study_names_but_does_not_get_is_said(capsys, monkeypatch, study, tmp_path):
    """A typo in a clip's name, or events for photos only: one line each, and the report is
    still written (the events were an afterthought of hours of analysis)."""
    pytest.importorskip("plotly")
    monkeypatch.setattr(ExpressionModel, "predict_proba", fake_proba)
    fake_proba.base = None
    (tmp_path / "people.csv").write_text("clip,participant\nann.mp4,ann\nanne.mp4,anne\n")
    out = tmp_path / "r.html"
    code, _, err = run(
        capsys,
        "report",
        study / "ann.mp4",
        "--events",
        study / "events.csv",
        "--participants",
        tmp_path / "people.csv",
        "--out",
        out,
    )
    assert code == 0 and "anne.mp4: named in --events or --participants but not among" in err
    photo = tmp_path / "photo.jpg"
    cv2.imwrite(str(photo), person())
    code, _, err = run(
        capsys,
        "report",
        photo,
        "--events",
        study / "events.csv",
        "--out",
        tmp_path / "p.html",
        "--csv",
        tmp_path / "p.csv",
    )
    assert code == 0 and "no video was read" in err and (tmp_path / "p.html").exists()


def test_a_study_has_at_most_so_many_events(tmp_path):
    from mobilefer.study.plan import MAX_EVENTS

    rows = "".join(f"e{i},{i},{i + 1}\n" for i in range(MAX_EVENTS + 1))
    (tmp_path / "e.csv").write_text("name,start,end\n" + rows)
    with pytest.raises(InputError, match=f"over {MAX_EVENTS} events"):
        read_events(tmp_path / "e.csv")


def test_bad_study_files_stop_the_report_before_any_work(capsys, study, tmp_path):
    (tmp_path / "e.csv").write_text("name,start,end\nad,5,1\n")
    code, _, err = run(
        capsys,
        "report",
        study / "ann.mp4",
        "--events",
        tmp_path / "e.csv",
        "--out",
        tmp_path / "r.html",
    )
    assert code == 2 and "e.csv:2: ad: needs 0 <= start < end" in err and "frames/s" not in err
    code, _, err = run(
        capsys, "report", study / "ann.mp4", "--baseline", "intro", "--out", tmp_path / "r.html"
    )
    assert code == 2 and "go with --events" in err
    code, _, err = run(
        capsys,
        "report",
        study / "ann.mp4",
        "--events",
        study / "events.csv",
        "--out",
        tmp_path / "r.html",
        "--csv",
        study / "events.csv",
    )
    assert code == 2 and "that is an input" in err  # the events file is never written over


def test_an_events_error_past_the_first_row_names_the_file():
    """Each row's event name overwrote the file's name, so errors after the first row named the
    previous event instead of the file."""
    with pytest.raises(InputError, match=r"^events.csv:4: b: needs 0 <= start < end"):
        from mobilefer.study.plan import parse_events

        parse_events("name,start,end\na,0,1\nc,1,2\nb,3,2\n")
