"""Render the figures of README.md and the whole of src/mobilefer/MODEL_CARD.md from the results
files that benchmarks wrote and from the shipped model files' own cards, so that no figure is
pasted by hand and no two copies can disagree; and README's record table from the record schema
(mobilefer.results.RECORD_FIELDS).

    python scripts/render_docs.py            # rewrite both files
    python scripts/render_docs.py --check    # exit 1 if either is not what the results say

Reads ``results/domains-report.json`` (benchmarks/domains.py --part report: the shipped files
and the peers on FER2013 PrivateTest and the report parts of the sets from elsewhere) and
``results/speed.json`` (benchmarks/speed.py with the peer) and, where present,
``results/report_cost.json`` (benchmarks/report_cost.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
README = ROOT / "README.md"
MODEL_CARD = ROOT / "src" / "mobilefer" / "MODEL_CARD.md"
START = "<!-- results:start (rendered by scripts/render_docs.py from results/; do not edit) -->"
END = "<!-- results:end -->"
FIELDS_START = "<!-- fields:start (rendered by scripts/render_docs.py from RECORD_FIELDS) -->"
FIELDS_END = "<!-- fields:end -->"
SETS = (
    ("fer2013", "FER2013 PrivateTest"),
    ("taiwanese", "studio photos"),
    ("sfew", "film stills"),
    ("sfew_detected", "film stills, detected"),
)
#: What each training source is, and its terms (the card names the sources a file learnt from).
SOURCE_TERMS = {
    "taiwanese": "posed studio photos of 11 performers (Taiwan Corpora of Chinese Emotions, "
    "`fold=train`: 466 photos, faces cut by the default detector); released by its authors "
    "for academic research use",
    "sfew": "face crops of film stills from 33 films (SFEW 2.0 train, `fold=train`: 652 "
    "faces); released by the EmotiW organisers for research use",
    "lfw": "13,718 face crops of news photos (LFW) with one person's label each; LFW is for "
    "research use",
}


def sets_of(domains: dict) -> list[tuple[str, str]]:
    """The sets a results file holds (older files lack the detected film stills)."""
    return [(s, t) for s, t in SETS if s in domains["rows"][0]]


DOMAINS = (
    ".venv/bin/python benchmarks/domains.py --part report --model fer2013 ferplus "
    "--fer-python ../venv-fer/bin/python --faceapi ../faceapi"
)
SPEED = ".venv/bin/python benchmarks/speed.py --threads 2 --fer-python ../venv-fer/bin/python"
REPORT_COST = ".venv/bin/python benchmarks/report_cost.py"
POSE = ".venv/bin/python benchmarks/pose.py"
CALIBRATION = ".venv/bin/python benchmarks/calibration.py --part report"


def load(name: str) -> dict:
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        sys.exit(f"{path}: missing; run the benchmark that writes it (see {Path(__file__).name})")
    return json.loads(path.read_text())


def cell(r: dict) -> str:
    return f"{r['accuracy']:.1%} ({r['macro_f1']:.3f})"


def shipped_name(row: dict) -> str:
    return row["system"].removeprefix("mobilefer ")


def results_section(
    domains: dict,
    speed: dict,
    cost: dict | None = None,
    pose: dict | None = None,
    calibration: dict | None = None,
) -> str:
    n = domains["n"]
    lines = [
        START,
        "Accuracy (macro-F1) through the public API: FER2013's PrivateTest faces "
        f"({n['fer2013']:,}; the FER+ model on its majority vote), studio photos "
        f"({n['taiwanese']:,} whole photos, the largest face found; no face counts as wrong) and "
        f"film stills ({n['sfew']:,} face crops"
        + (", classified whole and through the detector" if len(sets_of(domains)) > 3 else "")
        + "), each read once per shipped file; the people and films in them were never trained "
        "on:",
        "",
        "| model | " + " | ".join(title for _, title in sets_of(domains)) + " |",
        "|---" * (len(sets_of(domains)) + 1) + "|",
    ]
    for row in domains["rows"]:
        name = row["system"]
        if name.startswith("mobilefer "):
            name = f"**mobilefer `{shipped_name(row)}`**"
        lines.append(f"| {name} | " + " | ".join(cell(row[s]) for s, _ in sets_of(domains)) + " |")
    missed = [
        (r["system"].split(" ")[0], r["sfew_detected"]["no_face"])
        for r in domains["rows"]
        if "sfew_detected" in r and r["sfew_detected"]["no_face"] > n["sfew"] / 2
    ]
    if missed:
        lines += [
            "",
            "On the detected film stills, "
            + " and ".join(f"`{who}` found no face in {k} of {n['sfew']}" for who, k in missed)
            + " (tight crops, the face filling the image); those count as wrong.",
        ]
    shipped = next(c for c in speed["classifier"] if c["as_shipped"] and not c.get("baseline"))
    ratio = speed.get("batch32_ratio_to_baseline")
    then = f", {ratio:.2f}x the two-network file shipped at {speed['baseline']}" if ratio else ""
    lines += [
        "",
        f"Speed on {speed['machine']}: `Recognizer().stream(video)` with its defaults runs at "
        f"**{speed['stream_fps'] / speed['fer_fps']:.1f}x** the frames/s of `fer`'s "
        f"`detect_emotions` on the same 640x480 video in the same run ({speed['stream_fps']:.0f} "
        f"against {speed['fer_fps']:.0f}); the default model (int8) alone classifies "
        f"{shipped['faces_per_s']['32']:,.0f} faces/s at batch 32{then}."
        + (
            f" With the face mesh (`--mesh`) the stream runs at {speed['stream_mesh_fps']:.0f} "
            "frames/s."
            if speed.get("stream_mesh_fps")
            else ""
        ),
    ]
    if cost:
        lines += [
            "",
            f"`mobilefer report` took {cost['report_s']:.1f} s where `predict` took "
            f"{cost['predict_s']:.1f} s on the same {cost['frames']}-frame clip "
            f"({cost['extra']:+.0%}), for a page of {cost['page_bytes'] / 1e6:.1f} MB "
            f"(`{REPORT_COST}`).",
        ]
    if pose:
        lines += ["", *pose_lines(pose)]
    if calibration:
        lines += ["", *calibration_lines(calibration)]
    lines += [
        "",
        f"Made by `{DOMAINS}` and `{SPEED}` (benchmarks/README.md sets up the peers).",
        END,
    ]
    return "\n".join(lines)


def pose_lines(pose: dict) -> list[str]:
    """The head-angle table: each method's mean absolute error on faces turned by known angles,
    and what it reads on the front views as photographed."""
    out = [
        f"Head angles on {pose['faces']} faces turned by known angles (`{POSE}`; synthetic "
        "turns of real photos), mean absolute error in degrees for turns up to 30, and the "
        "mean reading of the front views as photographed (0 if unbiased):",
        "",
        "| method | yaw | pitch | roll | front views: yaw / pitch / roll |",
        "|---|---|---|---|---|",
    ]
    for name, key in (
        ("YuNet's five points (default)", "summary"),
        ("face mesh (`--mesh`)", "summary_mesh"),
    ):
        m = pose.get(key)
        if m:
            front = " / ".join(f"{m[f'{a}_front_mean']:+.1f}" for a in ("yaw", "pitch", "roll"))
            out.append(
                f"| {name} | {m['yaw_mae_within_30']:.1f} | {m['pitch_mae_within_30']:.1f} | "
                f"{m['roll_mae_within_30']:.1f} | {front} |"
            )
    mp = pose.get("mesh_against_mediapipe")
    if mp:
        out += [
            "",
            f"The mesh's angles are MediaPipe's: on the {mp['faces']} front views they differ "
            f"from MediaPipe's own facial transformation matrix by {mp['yaw_mean_abs']:.1f} / "
            f"{mp['pitch_mean_abs']:.1f} / {mp['roll_mean_abs']:.1f} degrees (yaw / pitch / "
            "roll, mean). Both read these synthetic turns short (a 30-degree yaw: MediaPipe "
            f"{mp['mediapipe_reads_30_yaw_as']:.0f}, the mesh {mp['mesh_reads_30_yaw_as']:.0f}): "
            "a photo laid on an ellipsoid is not a turned head.",
        ]
    return out


def calibration_lines(c: dict) -> list[str]:
    """Participant calibration on the report performers: plain against calibrated."""
    best = c["best"]
    labels = list(c["plain"]["recall"])
    head = "| | accuracy | macro-F1 | " + " | ".join(labels) + " |"
    rows = [("plain `analyze`", c["plain"]), (f"calibrated (beta {best['beta']:g})", best)]
    return [
        f"**Participant calibration** (`rec.calibrate(neutral)`, below) on the studio photos' "
        f"report performers with a neutral photo ({c['performers']}; each one's first neutral "
        f"photo is the reference, their {c['photos']} other photos are scored; "
        f"`{CALIBRATION}`):",
        "",
        head,
        "|---" * (len(labels) + 3) + "|",
        *(
            f"| {name} | {r['accuracy']:.1%} | {r['macro_f1']:.3f} | "
            + " | ".join(f"{r['recall'][k]:.2f}" for k in labels)
            + " |"
            for name, r in rows
        ),
    ]


def fields_section() -> str:
    """The README's table of record fields, one row per field of the schema."""
    from mobilefer.records import RECORD_FIELDS

    rows = [f"| `{f.name}` | {f.meaning} |" for f in RECORD_FIELDS]
    return "\n".join([FIELDS_START, "| field | meaning |", "|---|---|", *rows, FIELDS_END])


def replace_between(text: str, start: str, end: str, section: str) -> str:
    if start not in text or end not in text:
        sys.exit(f"{README}: the markers {start!r} and {end!r} are missing")
    head, rest = text.split(start, 1)
    return head + section + rest.split(end, 1)[1]


def render_readme(text: str, section: str) -> str:
    text = replace_between(text, START, END, section)
    return replace_between(text, FIELDS_START, FIELDS_END, fields_section())


def card_of(name: str):
    from mobilefer.model import ExpressionModel

    model = ExpressionModel(name)
    return model.card, Path(model.path)


def recall_table(row: dict, sets) -> list[str]:
    labels = [k for k in row["fer2013"]["labels"] if k != "no face"]
    out = ["| set | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for s, title in sets:
        rec = row[s]["per_class_recall"]
        out.append(f"| {title} | " + " | ".join(f"{rec.get(k, 0):.2f}" for k in labels) + " |")
    return out


def confusion(r: dict, title: str) -> list[str]:
    labels = r["labels"]
    rows = [(labels[i], v) for i, v in enumerate(r["confusion_matrix"]) if sum(v)]
    cols = [i for i, k in enumerate(labels) if k != "no face" or any(v[i] for _, v in rows)]
    out = [
        f"{title} (rows: true label, columns: predicted):",
        "",
        "| | " + " | ".join(labels[i] for i in cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    out += [f"| {name} | " + " | ".join(str(v[i]) for i in cols) + " |" for name, v in rows]
    return out + [""]


def model_card(domains: dict, speed: dict) -> str:
    rows = {shipped_name(r): r for r in domains["rows"] if r["system"].startswith("mobilefer ")}
    peers = [r for r in domains["rows"] if not r["system"].startswith("mobilefer ")]
    sets = sets_of(domains)
    sources: dict[str, str] = {}
    out = [
        "# Model card: mobilefer's shipped expression models",
        "",
        "Rendered by `scripts/render_docs.py` from each file's own card (its ONNX metadata) and "
        "from `results/`; do not edit by hand.",
        "",
        "## Model details",
        "",
    ]
    for name in ("fer2013", "ferplus"):
        card, path = card_of(name)
        pre, recipe = card.preprocessing, card.recipe
        members = recipe.get("members") or [recipe]
        learnt = [src["name"] for src in recipe.get("sources", [])]
        sources.update({k: SOURCE_TERMS.get(k, "a labelled folder") for k in learnt})
        quant = card.quantization
        out += [
            f"### `{name}` ({path.name}, {path.stat().st_size / 1e6:.1f} MB)",
            "",
            f"- Classes: {', '.join(card.labels)}.",
            f"- Network: {len(members)} MobileNetV2 (ImageNet) with the paper's dense head "
            f"({'-'.join(str(h) for h in recipe['hidden'])}-{len(card.labels)}), its "
            f"`{recipe.get('head', 'fer2013')}` head; recipe `{recipe['recipe']}`"
            + (f", averaged over {len(members)} networks" if len(members) > 1 else "")
            + ".",
            f"- Input: the face box squared, grown by {pre.margin:+g} of its side, 48x48 gray, "
            f"{pre.input_size} px, {pre.channels} channels, mean {pre.mean}, std {pre.std}; "
            f"zoom {pre.zoom:g}.",
            f"- Test time: flip TTA {'on' if card.flip_tta else 'off'}, class-prior correction "
            f"tau {card.prior_tau:g}.",
            "- Trained on: FER2013 Training"
            + "".join(f", {k}" for k in learnt)
            + (
                f"; fine-tuned from network {recipe.get('init_member', 0)} of the "
                f"`{recipe['init']}` file shipped before it"
                if recipe.get("init")
                else ""
            )
            + (
                f", its weights then averaged with that network's ({wise['alpha']:g} of the "
                "fine-tuned, WiSE-FT)"
                if (wise := recipe.get("notes", {}).get("wise_ft"))
                else ""
            )
            + ".",
            f"- Precision: {card.precision}"
            + (
                f" (ONNX Runtime's static quantization, {quant.get('format')}: weights "
                f"{quant.get('weights')}, activations {quant.get('activations')}; "
                f"{quant.get('calibration')} calibration"
                + (
                    " with a moving average"
                    if quant.get("options", {}).get("CalibMovingAverage")
                    else ""
                )
                + f" on {quant.get('faces'):,} faces ({quant.get('data')}) and their mirrors; "
                f"kept float: {quant.get('float')}"
                + (
                    "; the last bias corrected for the mean shift of the logits"
                    if quant.get("bias_correction")
                    else ""
                )
                + "). The float file it was made of ships as `fer2013-float`"
                if quant
                else ""
            )
            + ".",
            "- Scores stored in the file: "
            + ", ".join(
                f"{k} {v}"
                for k, v in card.metrics.items()
                if k.startswith(("private_fer2013_", "private_ferplus_"))
            )
            + ".",
            "",
        ]
    out += [
        "## Intended use",
        "",
        "Reading the expression a face shows (FER2013's seven, or FER+'s eight) in photos, video "
        "and webcams, for research, user studies and demos, on a laptop CPU. Not for judging "
        "individuals (hiring, policing, health, education), and not a reading of what a person "
        "feels.",
        "",
        "## Training data",
        "",
        "FER2013's Training split (28,709 web-scraped 48x48 gray faces; Goodfellow et al. "
        "2013), with FER+'s ten crowd votes per face (Barsoum et al. 2016) for the FER+ head, "
        "and, where a file's card names them:",
        "",
        *(f"- `{k}`: {v}." for k, v in sources.items()),
        "",
        "Every choice was made on PublicTest and the `fold=val` rows of the sets below (other "
        "performers and films); PrivateTest and the `report` parts (people and films never "
        "trained on or chosen by) were read once per shipped file.",
        "",
        "## Evaluation data",
        "",
        "- FER2013 PrivateTest (3,589 faces; FER+ majority vote for the 8-class model).",
        "- Studio photos: posed expressions of professional performers in whole 256x256 head "
        "and shoulders photos, white background (Taiwan Corpora of Chinese Emotions; Chen, Cho "
        "and Tseng 2013), the faces found by the default detector.",
        "- Film stills: aligned face crops from films (SFEW 2.0; Dhall et al. 2011), varied "
        "pose, lighting, blur and age.",
        "",
        "## Metrics",
        "",
        f"Accuracy (macro-F1), {domains['machine']}:",
        "",
        "| system | " + " | ".join(t for _, t in sets) + " |",
        "|---" * (len(sets) + 1) + "|",
    ]
    out += [
        f"| {r['system']} | " + " | ".join(cell(r[s]) for s, _ in sets) + " |"
        for r in [*rows.values(), *peers]
    ]
    for name, row in rows.items():
        out += ["", f"### `{name}`: recall per class", "", *recall_table(row, sets), ""]
        for s, title in sets:
            out += confusion(row[s], f"`{name}` on {title}")
    out += [
        "## Speed",
        "",
        f"On {speed['machine']}, `Recognizer().stream(video)` with its defaults: "
        f"{speed['stream_fps']:.0f} frames/s against `fer`'s {speed['fer_fps']:.0f} in the same "
        "run; the classifier alone, faces/s:",
        "",
        "| model | batch 1 | batch 32 | batch 256 |",
        "|---|---|---|---|",
    ]
    out += [
        f"| {c['model']} | " + " | ".join(f"{v:,.0f}" for v in c["faces_per_s"].values()) + " |"
        for c in speed["classifier"]
    ]
    out += [
        "",
        "## Limitations and bias",
        "",
        "- FER2013's faces are mostly frontal and young to middle-aged, from web searches; its "
        "labels are noisy (FER+ relabelled about a quarter). Accuracy on faces unlike them is "
        "far lower, as the table shows.",
        "- Subtle expressions are read as neutral; disgust and fear are recalled least.",
        "- No measurement per age, gender, skin tone or culture has been made: the sets above "
        "do not carry such labels. Expect errors to differ between groups.",
        "- Expressions are what a face shows, not what a person feels.",
        "",
        "## How they were made",
        "",
        "[docs/experiments.md](../../docs/experiments.md) gives every recipe, rule and "
        "measurement; [CHANGELOG.md](../../CHANGELOG.md) one entry per shipped file.",
        "",
    ]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--check", action="store_true", help="report differences, write nothing")
    args = ap.parse_args()
    domains, speed = load("domains-report"), load("speed")
    cost = load("report_cost") if (RESULTS / "report_cost.json").is_file() else None
    pose = load("pose") if (RESULTS / "pose.json").is_file() else None
    cal = load("calibration-report") if (RESULTS / "calibration-report.json").is_file() else None
    section = results_section(domains, speed, cost, pose, cal)
    wanted = {
        README: render_readme(README.read_text(), section),
        MODEL_CARD: model_card(domains, speed),
    }
    stale = [p for p, text in wanted.items() if not p.is_file() or p.read_text() != text]
    if args.check:
        for p in stale:
            print(
                f"{p.relative_to(ROOT)}: differs from what results/ says; run "
                f"python scripts/render_docs.py",
                file=sys.stderr,
            )
        return 1 if stale else 0
    for p in stale:
        p.write_text(wanted[p])
        print(f"wrote {p.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
