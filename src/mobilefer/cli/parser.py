"""The command line: every command's flags (the inference options come from the options
record, :mod:`mobilefer.options`)."""

from __future__ import annotations

import argparse

from ..preprocess import MARGIN_RANGE
from ..train.recipes import RECIPES
from .common import Parser, add_inference_options, number
from .model import cmd_evaluate, cmd_export, cmd_quantize, cmd_train
from .run import cmd_predict, cmd_report, cmd_webcam
from .serve import cmd_serve

#: --margin's check, from the library's range.
MARGIN = number(float, *MARGIN_RANGE, what="must lie in {:g} to {:g}".format(*MARGIN_RANGE))


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    p = Parser(prog="mobilefer", description="Facial expression recognition.")
    p.add_argument("--version", action="version", version=f"mobilefer {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    pr = sub.add_parser("predict", help="faces and expressions in images, folders, videos, webcams")
    pr.add_argument("source", nargs="+", help="image, folder, glob, video file or webcam index")
    pr.add_argument(
        "--save",
        help="folder for annotated images and videos (input folders are "
        "mirrored; names are never reused)",
    )
    pr.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="ray: run on a Ray cluster (needs [ray] and --out)",
    )
    pr.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    pr.add_argument("--out", help="with --engine ray: results.parquet or results.jsonl")
    pr.add_argument(
        "--overwrite", action="store_true", help="with --engine ray: replace an existing --out"
    )
    pr.add_argument(
        "--actors",
        type=number(int, 1, 1024, what="must lie in 1-1024"),
        default=2,
        help="with --engine ray: Recognizer actors in the pool (at most 1,024)",
    )
    pr.add_argument(
        "--calibrate",
        metavar="IMAGE",
        help="a photo of the person's neutral face "
        "(one face): every face is calibrated on it (one person's inputs)",
    )
    add_inference_options(pr)
    pr.set_defaults(func=cmd_predict)

    w = sub.add_parser("webcam", help="live webcam with boxes, labels and frames/s")
    w.add_argument(
        "index", nargs="?", type=number(int, 0, what="must be >= 0"), default=0, help="camera index"
    )
    w.add_argument("--save", help="write the annotated stream to this video file (no window)")
    w.add_argument("--overwrite", action="store_true", help="replace an existing --save file")
    w.add_argument("--no-window", action="store_true", help="no window (use with --print)")
    w.add_argument("--print", action="store_true", help="also print the faces to stdout")
    w.add_argument(
        "--calibrate",
        metavar="IMAGE",
        help="a photo of the person's neutral face (one face): every face is calibrated on it",
    )
    add_inference_options(w)
    w.set_defaults(func=cmd_webcam)

    rp = sub.add_parser(
        "report", help="an HTML report of each clip's faces over time (needs the [report] extra)"
    )
    rp.add_argument("source", nargs="+", help="video files (or images, folders, globs)")
    rp.add_argument("--out", required=True, help="the HTML file to write (self-contained)")
    rp.add_argument("--csv", help="also write one row per tracked face to this CSV file")
    rp.add_argument("--overwrite", action="store_true", help="replace an existing --out or --csv")
    rp.add_argument(
        "--events",
        metavar="CSV",
        help="the stimulus's parts: a CSV of name,start,end "
        "in seconds (a column clip gives a clip its own times); marked on every "
        "timeline, with a table per event, and --csv one row per participant and "
        "event",
    )
    rp.add_argument(
        "--baseline",
        metavar="EVENT",
        help="with --events: the event each is compared with (e.g. a neutral screen shown first)",
    )
    rp.add_argument(
        "--participants",
        metavar="CSV",
        help="with --events: a CSV of "
        "clip,participant,group,offset (offset: seconds from the clip's start to "
        "the stimulus's; default: one participant per clip, named by the "
        "file)",
    )
    rp.add_argument(
        "--calibrate",
        metavar="EVENT",
        help="with --events: calibrate each face "
        "on its own frames of this event (its resting face, e.g. the "
        "baseline) before any mean",
    )
    add_inference_options(rp, output=False)
    rp.set_defaults(func=cmd_report)

    sv = sub.add_parser("serve", help="the live demo in a browser: webcam, timeline, photos")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (this machine only)")
    sv.add_argument(
        "--port",
        type=number(int, 1, 65535, what="must lie in 1-65535"),
        default=8000,
        help="port to listen on",
    )
    add_inference_options(sv, output=False)
    sv.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="another page origin (http://host:port) that may open the live "
        "WebSocket; the server's own always may (repeatable)",
    )
    sv.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another host name the server answers to (a DNS name of this machine; "
        "repeatable); it answers to no other",
    )
    sv.add_argument(
        "--token",
        default="auto",
        metavar="auto|off|TOKEN",
        help="a token every request must carry: auto (default) makes one when "
        "--host is not this machine only, and prints the address with it; off "
        "never asks for one",
    )
    sv.set_defaults(func=cmd_serve)

    e = sub.add_parser("evaluate", help="accuracy, macro-F1 and confusion matrix on FER2013")
    e.add_argument("--data", required=True, help="fer2013.csv, fer2013.npz or an image folder")
    e.add_argument(
        "--split",
        default="private",
        choices=["train", "public", "private"],
        help="which split to score",
    )
    e.add_argument("--json", action="store_true", help="end stdout with one JSON object")
    e.add_argument("--ferplus", help="FER+ votes (default: a ferplus.npz beside --data, if any)")
    add_inference_options(e, scopes=("model",), output=False)
    e.set_defaults(func=cmd_evaluate)

    x = sub.add_parser("export", help="checkpoint -> ONNX model file with metadata (needs [train])")
    x.add_argument(
        "checkpoint",
        nargs="+",
        help="best.pt, best_ferplus.pt or last.pt from 'mobilefer train'; several "
        "make one ensemble file that averages them",
    )
    x.add_argument("--out", required=True, help="the .onnx file to write")
    x.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    x.add_argument("--data", help="FER2013: for the choices, the parity batch and the scores")
    x.add_argument(
        "--flip-tta",
        choices=["auto", "on", "off"],
        default="auto",
        help="auto: on if it raises PublicTest accuracy (needs --data)",
    )
    x.add_argument(
        "--head",
        default="fer2013",
        choices=["fer2013", "ferplus"],
        help="which head of the checkpoint to export",
    )
    x.add_argument("--ferplus", help="FER+ votes (default: a ferplus.npz beside --data, if any)")
    x.add_argument(
        "--prior-tau",
        default="auto",
        help="divide probabilities by the Training class prior to this power, 0-2 (auto: "
        "chosen on PublicTest for accuracy and macro-F1 together; needs --data)",
    )
    x.add_argument(
        "--zoom",
        default="auto",
        help="the model sees the central 1/ZOOM of each 48x48 face, 0.5-2 (auto: chosen on "
        "PublicTest from 1-1.2 as --prior-tau is; needs --data)",
    )
    x.add_argument("--margin", type=MARGIN, default=0.0, help="crop margin stored in the file")
    x.add_argument("--int8", action="store_true", help="static int8 quantization (needs --data)")
    x.add_argument(
        "--report-private",
        action="store_true",
        help="also score PrivateTest into the file: once, for the file you ship, "
        "after every choice was made on PublicTest (needs --data)",
    )
    x.set_defaults(func=cmd_export)

    q = sub.add_parser(
        "quantize",
        help="model file -> static int8 model file, with its "
        "accuracy beside the float file's (needs [train])",
    )
    q.add_argument("model", help="a model file from 'mobilefer export' (or a shipped name's file)")
    q.add_argument(
        "--out",
        required=True,
        help="the int8 .onnx file to write (with --calibration all: OUT.METHOD.onnx each)",
    )
    q.add_argument(
        "--data", required=True, help="FER2013: Training faces calibrate, PublicTest scores"
    )
    q.add_argument("--ferplus", help="FER+ votes (default: a ferplus.npz beside --data, if any)")
    q.add_argument(
        "--calibration",
        default="minmax",
        choices=["minmax", "entropy", "percentile", "distribution", "all"],
        help="ONNX Runtime's calibration method",
    )
    q.add_argument(
        "--faces",
        type=number(int, 1, 28709, what="must lie in 1-28709"),
        default=512,
        help="Training faces to calibrate on (each with its mirror)",
    )
    q.add_argument(
        "--no-val",
        action="store_true",
        help="score PublicTest only, not the val "
        "folds of $MOBILEFER_SHARED/data/ood (scored where that is set)",
    )
    q.add_argument(
        "--folds",
        action="store_true",
        help="also calibrate on the fold=train faces of $MOBILEFER_SHARED/data/ood "
        "(studio photos and film stills)",
    )
    q.add_argument(
        "--float-ends",
        action="store_true",
        help="keep the first convolution and the dense head in float",
    )
    q.add_argument(
        "--bias-correct",
        action="store_true",
        help="with --float-ends: move the last bias by the mean float-int8 difference of the "
        "logits over the calibration faces (rule q5)",
    )
    q.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="one of ONNX Runtime's calibration extra_options, e.g. "
        "CalibMovingAverage=true or CalibPercentile=99.99 (repeatable)",
    )
    q.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    q.set_defaults(func=cmd_quantize)

    t = sub.add_parser("train", help="fine-tune MobileNetV2 on FER2013 (needs the [train] extra)")
    t.add_argument(
        "--recipe",
        choices=list(RECIPES),
        metavar="RECIPE",
        help=f"one of {', '.join(RECIPES)} (default: default)",
    )
    t.add_argument("--data", required=True, help="fer2013.csv, fer2013.npz or an image folder")
    t.add_argument("--out", required=True, help="run folder: checkpoints, metrics, plots")
    t.add_argument("--ferplus", help="FER+ votes (default: a ferplus.npz beside --data)")
    t.add_argument(
        "--ferplus-weight",
        type=number(float, 0, what="must be >= 0"),
        help="loss weight of the FER+ head (0: none; recipe default)",
    )
    t.add_argument(
        "--logit-adjust",
        type=number(float, 0, 2, what="must lie in 0-2"),
        help="tau of a logit-adjusted loss (0: off; recipe default)",
    )
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue OUT/last.pt with its own settings; a larger --epochs extends it",
    )
    positive = number(int, 1, what="must be >= 1")
    t.add_argument("--epochs", type=positive, help="epochs (recipe default)")
    t.add_argument(
        "--input-size",
        type=number(int, 32, 1024, what="must lie in 32-1024"),
        help="model input side in px (recipe default)",
    )
    t.add_argument(
        "--batch-size",
        type=number(int, 2, what="must be >= 2"),
        help="faces per step (recipe default)",
    )
    t.add_argument(
        "--lr",
        type=number(float, 0, what="must be >= 0"),
        help="peak learning rate (recipe default)",
    )
    t.add_argument("--seed", type=number(int, 0, what="must be >= 0"), help="random seed")
    t.add_argument("--threads", type=positive, help="torch CPU threads")
    t.add_argument("--limit-train", type=positive, help="use only the first N training faces")
    t.add_argument("--backbone-weights", help="a local mobilenet_v2-b0353104.pth")
    t.add_argument("--no-pretrained", action="store_true", help="random backbone (tests)")
    t.add_argument(
        "--init",
        help="start from a checkpoint (best.pt of a run), a model file "
        "or a shipped model name (fer2013, ferplus; one network of it)",
    )
    t.add_argument("--no-amp", action="store_true", help="no bf16 autocast (GPU, bf16 CPUs)")
    t.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other recipe setting, e.g. --set blur_prob=0.3 --set zoom=0.8,1.3 "
        "(repeatable; the names are those of config.json)",
    )
    t.set_defaults(func=cmd_train)
    return p
