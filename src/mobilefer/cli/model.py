"""``evaluate``, ``train``, ``export`` and ``quantize``: the commands about model files."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import OptionError
from ..preprocess import ZOOM_RANGE
from .common import err, float_in, missing_extra, options_of


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..data import load_fer2013_with_ferplus
    from ..errors import DataError
    from ..evaluate import evaluate_model, format_scores
    from ..model import ExpressionModel

    options = options_of(args)
    model = ExpressionModel(
        options.model,
        threads=options.threads,
        flip_tta=options.flip_tta,
        prior_tau=options.prior_tau,
        device=options.device,
    )
    data = load_fer2013_with_ferplus(args.data, args.ferplus).split(args.split)
    if not len(data):
        raise DataError(
            f"{args.data}: no faces in the {args.split} split; choose a split the "
            "data has (train, public or private)"
        )
    t0 = time.perf_counter()
    result = evaluate_model(model, data)
    result |= {
        "split": args.split,
        "model": model.path,
        "flip_tta": model.flip_tta,
        "prior_tau": model.card.prior_tau,
        "zoom": model.card.preprocessing.zoom,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    print(
        f"model {model.path}, split {args.split}, "
        f"flip TTA {'on' if model.flip_tta else 'off'}, prior tau {model.card.prior_tau}, "
        f"zoom {model.card.preprocessing.zoom}"
    )
    print(format_scores(result))
    if args.json:
        print(json.dumps(result))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise OptionError(f"--out {args.out}: exists and is not a folder; name the run's folder")
    try:
        from ..train.config import apply_settings, check_config, read_run_config
        from ..train.loop import fit
        from ..train.plots import epoch_header, epoch_row, write_run_files
        from ..train.recipes import recipe
    except ImportError as e:
        return missing_extra("training", "train", e)

    from ..data import load_fer2013, load_fer2013_with_ferplus

    given = {
        "epochs": args.epochs,
        "input_size": args.input_size,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "threads": args.threads,
        "limit_train": args.limit_train,
        "ferplus_weight": args.ferplus_weight,
        "logit_adjust": args.logit_adjust,
    }
    overrides = {k: v for k, v in given.items() if v is not None}
    if args.no_amp:
        overrides["amp"] = False
    if args.init:
        overrides["init"] = args.init
    if args.backbone_weights:
        overrides["backbone"] = args.backbone_weights
    elif args.no_pretrained:
        overrides["backbone"] = None
    if args.resume:
        # The run's own settings, changed only where an option was given: fit() refuses any
        # change but a longer --epochs.
        saved, _ = read_run_config(args.out)
        if args.recipe is not None:
            overrides["recipe"] = args.recipe
        cfg = apply_settings(replace(saved, **overrides), args.set)
    else:
        cfg = apply_settings(recipe(args.recipe or "default", **overrides), args.set)
    check_config(cfg)  # before the data is loaded
    if cfg.ferplus_weight > 0:
        data = load_fer2013_with_ferplus(args.data, args.ferplus)
    else:
        data = load_fer2013(args.data)
    print(epoch_header(ferplus=cfg.ferplus_weight > 0), flush=True)
    result = fit(
        cfg, data, args.out, resume=args.resume, on_epoch=lambda r: print(epoch_row(r), flush=True)
    )
    best = result["best"]
    print(
        f"best PublicTest accuracy {best['public_accuracy']:.4f} at epoch {best['epoch']}; "
        f"checkpoints in {args.out}",
        file=sys.stderr,
    )
    write_run_files(args.out, data=data)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    flip = {"auto": "auto", "on": True, "off": False}[args.flip_tta]
    tau, zoom = args.prior_tau, args.zoom  # checked first: a usage error needs no extra
    if tau != "auto":
        tau = float_in(tau, 0, 2, "--prior-tau")
    if zoom != "auto":
        zoom = float_in(zoom, *ZOOM_RANGE, "--zoom")
    from ..sinks import check_outputs

    read = [*args.checkpoint, *(f for f in (args.data, args.ferplus) if f)]
    check_outputs({"--out": args.out}, read, args.overwrite)  # never a checkpoint or the data
    try:
        from ..train.export import export_checkpoint
    except ImportError as e:
        return missing_extra("export", "train", e)
    data = None
    if args.data:
        from ..data import load_fer2013_with_ferplus

        data = load_fer2013_with_ferplus(args.data, args.ferplus)
    report = export_checkpoint(
        args.checkpoint,
        args.out,
        data=data,
        head=args.head,
        flip_tta=flip,
        prior_tau=tau,
        zoom=zoom,
        margin=args.margin,
        int8=args.int8,
        report_private=args.report_private,
    )
    for row in report.get("zoom_table", []):
        print(
            f"zoom {row['zoom']:.2f} (flip TTA {'on' if row['flip_tta'] else 'off'}, prior tau "
            f"{row['tau']:.1f}): PublicTest accuracy {row['accuracy']:.4f}, macro-F1 "
            f"{row['macro_f1']:.4f}, lowest recall {row['min_recall']:.4f}",
            file=sys.stderr,
        )
    if "public_accuracy_single" in report:
        print(
            f"PublicTest accuracy: single {report['public_accuracy_single']:.4f}, "
            f"flip TTA {report['public_accuracy_flip']:.4f}",
            file=sys.stderr,
        )
    for row in report.get("tau_table", []):
        print(
            f"prior tau {row['tau']:.1f}: PublicTest accuracy {row['accuracy']:.4f}, "
            f"macro-F1 {row['macro_f1']:.4f}, lowest recall {row['min_recall']:.4f}",
            file=sys.stderr,
        )
    print(json.dumps(report))
    return 0


def calibration_option(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` of ONNX Runtime's ``extra_options``: true/false, a number, or a word."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise OptionError(f"--option {text!r}: expected KEY=VALUE, e.g. CalibMovingAverage=true")
    if raw.lower() in ("true", "false"):
        return key, raw.lower() == "true"
    try:
        return key, float(raw)
    except ValueError:
        return key, raw


def cmd_quantize(args: argparse.Namespace) -> int:
    try:
        import onnx  # noqa: F401  (ONNX Runtime's quantization tool needs it)
        import sympy  # noqa: F401  (and its shape inference, before quantizing)

        from ..quantize import (
            CALIBRATIONS,
            bias_correct,
            calibration_faces,
            fold_faces,
            parity,
            quantize_file,
            rule_q4,
            worst_class,
        )
        from ..train.recipes import MIXTURE_SOURCES, VAL_SOURCES
        from ..train.sources import load_source, source_of
    except ImportError as e:
        return missing_extra("quantization", "train", e)
    from ..data import load_fer2013_with_ferplus

    src, out = Path(args.model), Path(args.out)
    if args.bias_correct and not args.float_ends:
        err("--bias-correct moves the float head's bias: add --float-ends")
        return 2
    methods = CALIBRATIONS if args.calibration == "all" else (args.calibration,)
    targets = {m: out if len(methods) == 1 else out.with_suffix(f".{m}.onnx") for m in methods}
    from ..sinks import check_outputs

    flags = {(f"--out ({m})" if len(targets) > 1 else "--out"): p for m, p in targets.items()}
    read = [src, args.data, *([args.ferplus] if args.ferplus else [])]
    check_outputs(flags, read, args.overwrite)  # never the model or data, a folder or a pipe
    data = load_fer2013_with_ferplus(args.data, args.ferplus)
    faces = calibration_faces(data.split("train").pixels, args.faces)
    where = "FER2013 Training, evenly spaced"
    if args.folds:
        folds = [source_of(spec) for spec in MIXTURE_SOURCES]
        try:
            more = fold_faces(folds, "train")
        except OptionError as e:
            err(f"--folds: {e}")
            return 2
        faces = np.concatenate([faces, more])
        where += f", and {len(more)} train-fold faces ({', '.join(s.name for s in folds)})"
    report = {"model": str(src), "calibration_faces": len(faces), "files": {}}
    for method, path in targets.items():
        report["files"][method] = quantize_file(
            src,
            path,
            faces,
            method,
            args.float_ends,
            dict(calibration_option(t) for t in args.option),
            where,
        )
        if args.bias_correct:
            report["files"][method] |= bias_correct(src, path, path, faces)
    val = []
    if not args.no_val:
        for spec in VAL_SOURCES:
            source = source_of(spec)
            try:
                root = source.root()
            except OptionError as e:  # no $MOBILEFER_SHARED: PublicTest alone, said once
                err(f"val folds not scored: {e}")
                break
            if root.is_dir():
                val.append((source.name, load_source(source, "val", 0.0, None)))
    files = {"float": src, **{f"int8 {m}": p for m, p in targets.items()}}
    report["parity"] = rows = parity(files, data.split("public"), val)
    sets = [k for k in rows[0] if k not in ("file", "path", "recall")]
    print("| file | " + " | ".join(sets) + " | worst class | rule q4 |", file=sys.stderr)
    for row in rows:
        row["worst_change"] = min(row[k] - rows[0][k] for k in sets)
        name, fall = worst_class(rows[0], row)
        row["rule_q4"] = failed = rule_q4(rows[0], row)
        cells = " | ".join(f"{row[k]:.2%}" for k in sets)
        verdict = "; ".join(failed) or "passes"
        print(
            f"| {row['file']} | {cells} | {name} {-fall * 100:+.2f} pt | {verdict} |",
            file=sys.stderr,
        )
    print(json.dumps(report))
    return 0
