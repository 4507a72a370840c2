"""Train several recipes side by side on one GPU within a fixed wall-clock budget.

Written for a borrowed accelerator with a hard time limit (the project's ``device`` lease): the
data arrive as the compact pack of ``../shared/data/fer2013/device/`` (Training and PublicTest
only, xz-compressed), every job trains in its own process on the one GPU, and whatever a job has
finished when the budget runs out is kept (``fit`` checkpoints every epoch).

    python lab/device_train.py --pack DIR --work DIR --out DIR --budget SECONDS JOB...

``JOB`` is ``NAME:RECIPE[:KEY=VALUE,...]`` with ``--set``'s keys, e.g. ``paper:paper`` or
``long0:default:freeze_blocks=0,seed=2``. A job that sets ``epochs`` trains exactly that many;
any other job first times 60 steps and one PublicTest pass while its neighbours do the same,
then trains as many epochs as fit in the budget (at most ``--max-epochs``), so that its cosine
schedule runs to the end. Into ``--out``: each job's ``best.pt`` / ``best_ferplus.pt`` as float16
copies (``NAME_best.pt``; the loaders cast them back to float32), and ``runs.tar.gz`` with every
job's config, metrics and log. PrivateTest is not in the pack: score it on the CPU machine.
"""

from __future__ import annotations

import argparse
import io
import json
import lzma
import math
import os
import signal
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

PARTS = ("fer2013_training_part1", "fer2013_training_part2", "fer2013_publictest")
BACKBONE = "mobilenet_v2_imagenet_fp16.pth"


def unpack(pack: Path, work: Path) -> None:
    """The pack's Training and PublicTest rows -> ``work/fer2013.npz`` in row order, and the
    FER+ votes of the same rows -> ``work/ferplus.npz``."""

    def read(name: str) -> dict:
        with lzma.open(pack / f"{name}.npz.xz") as f, np.load(io.BytesIO(f.read())) as z:
            return {k: z[k] for k in z.files}

    with ThreadPoolExecutor(len(PARTS)) as ex:
        parts = list(ex.map(read, PARTS))
    rows = np.concatenate([p["row_index"] for p in parts])
    if not np.array_equal(rows, np.arange(len(rows))):
        raise SystemExit(f"{pack}: the parts do not hold rows 0-{len(rows) - 1} in order")
    work.mkdir(parents=True, exist_ok=True)
    np.savez(
        work / "fer2013.npz",
        **{k: np.concatenate([p[k] for p in parts]) for k in ("pixels", "emotion", "usage")},
    )
    with np.load(pack / "ferplus.npz") as z:
        np.savez(work / "ferplus.npz", votes=z["votes"][: len(rows)])


def parse_job(text: str) -> tuple[str, str, dict]:
    from mobilefer.train.config import parse_setting

    name, _, rest = text.partition(":")
    recipe_name, _, settings = rest.partition(":")
    overrides = dict(parse_setting(s) for s in settings.split(",") if s)
    return name, recipe_name or "default", overrides


def plan_epochs(cfg, data, deadline: float, max_epochs: int, device: str) -> tuple[int, dict]:
    """How many epochs of ``cfg`` fit before ``deadline``, timed on this GPU as it is shared now:
    60 training steps and one PublicTest pass after a warm-up of each, one epoch's JPEG faces."""
    import torch

    from mobilefer.train.augment import jpeg_faces
    from mobilefer.train.loop import build, evaluate, train_one_epoch
    from mobilefer.train.trainset import make_train_set

    dev = torch.device(device)
    train, public = data.split("train"), data.split("public")
    if cfg.limit_train:
        train = train.head(cfg.limit_train)
    warm = make_train_set(train.head(10 * cfg.batch_size), cfg, dev)
    probe = make_train_set(train.head(60 * cfg.batch_size), cfg, dev)
    model, opt, sched = build(cfg, 70, dev)
    gen = torch.Generator(device=dev).manual_seed(cfg.seed)
    train_one_epoch(model, opt, sched, warm, cfg, dev, gen)
    evaluate(model, public, cfg, dev)  # the first pass also picks cuDNN's kernels: 9-13 s
    t0 = time.perf_counter()
    train_one_epoch(model, opt, sched, probe, cfg, dev, gen)
    t1 = time.perf_counter()
    evaluate(model, public, cfg, dev)
    t2 = time.perf_counter()
    jpeg_faces(train.pixels, cfg, 1)
    t3 = time.perf_counter()
    per_face = (t1 - t0) / len(probe.labels)
    epoch_s = per_face * len(train) + (t2 - t1) + (t3 - t2) + 0.5  # + checkpoint writes
    left = deadline - time.time() - 5
    epochs = max(1, min(max_epochs, math.floor(left / (1.1 * epoch_s))))
    timing = {
        "faces_per_s": 1 / per_face,
        "eval_s": t2 - t1,
        "jpeg_s": t3 - t2,
        "epoch_s": epoch_s,
        "left_s": left,
        "epochs": epochs,
    }
    return epochs, timing


def run_job(args: argparse.Namespace) -> None:
    """One job, in its own process (``--job``)."""
    import torch

    from mobilefer.data import load_fer2013
    from mobilefer.train.loop import fit
    from mobilefer.train.recipes import recipe

    torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
    name, recipe_name, overrides = parse_job(args.job)
    data = load_fer2013(args.work / "fer2013.npz").with_ferplus(args.work / "ferplus.npz")
    cfg = recipe(recipe_name, backbone=str(args.pack / BACKBONE), threads=args.threads)
    cfg = replace(cfg, **overrides)
    timing = {}
    if "epochs" not in overrides:
        epochs, timing = plan_epochs(cfg, data, args.deadline, args.max_epochs, args.device)
        cfg = replace(cfg, epochs=epochs)
    gpu = torch.cuda.get_device_name() if args.device == "cuda" else args.device
    cfg = replace(cfg, notes={**cfg.notes, "device": gpu, **timing})
    print(f"{name}: {json.dumps(timing)}", flush=True)

    def show(row: dict) -> None:
        print(f"{name} " + " ".join(f"{k}={v:.4g}" for k, v in row.items()), flush=True)

    fit(cfg, data, args.work / name, on_epoch=show, device=args.device)


def stop(procs: dict[str, subprocess.Popen]) -> None:
    """End the jobs still running: SIGTERM, then SIGKILL 3 s later (no wait if none runs)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        running = [p for p in procs.values() if p.poll() is None]
        if not running:
            return
        for p in running:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:  # ended meanwhile
                pass
        time.sleep(3)


def collect(names: list[str], work: Path, out: Path) -> None:
    """fp16 copies of the checkpoints, and a tarball of the rest (the return trip's limits:
    few files, 16 MiB each)."""
    import torch

    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        for ck in ("best.pt", "best_ferplus.pt"):
            src = work / name / ck
            if not src.is_file():
                continue
            obj = torch.load(src, map_location="cpu", weights_only=True)
            obj["model"] = {
                k: v.half() if v.is_floating_point() else v for k, v in obj["model"].items()
            }
            torch.save(obj, out / f"{name}_{ck}")
    with tarfile.open(out / "runs.tar.gz", "w:gz") as tar:
        for name in names:
            for f in ("config.json", "metrics.json", "job.log"):
                if (work / name / f).is_file():
                    tar.add(work / name / f, arcname=f"{name}/{f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("jobs", nargs="*", metavar="JOB")
    ap.add_argument("--pack", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--budget", type=float, help="seconds for all jobs, unpacking included")
    ap.add_argument("--max-epochs", type=int, default=120)
    ap.add_argument("--threads", type=int, default=3, help="torch CPU threads per job")
    ap.add_argument("--device", default="cuda", help="cpu only to try this script out")
    ap.add_argument("--job", help=argparse.SUPPRESS)
    ap.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.job:
        return run_job(args)
    if args.out is None or args.budget is None or not args.jobs:
        ap.error("give --out, --budget and at least one JOB")
    from mobilefer.errors import OptionError

    try:  # before anything is unpacked or started
        names = [parse_job(job)[0] for job in args.jobs]
    except OptionError as e:
        ap.error(str(e))
    if len(set(names)) < len(names) or not all(names):
        ap.error(f"jobs need distinct names before their first ':'; got {', '.join(names)}")

    start = time.time()
    deadline = start + args.budget
    unpack(args.pack, args.work)
    print(f"unpacked in {time.time() - start:.1f} s", flush=True)
    procs = {}
    for name, job in zip(names, args.jobs, strict=True):
        (args.work / name).mkdir(parents=True, exist_ok=True)
        log = open(args.work / name / "job.log", "w")  # noqa: SIM115 (lives as long as the job)
        cmd = [
            sys.executable,
            __file__,
            "--job",
            job,
            "--pack",
            str(args.pack),
            "--work",
            str(args.work),
            "--deadline",
            str(deadline - 10),
            "--max-epochs",
            str(args.max_epochs),
            "--threads",
            str(args.threads),
            "--device",
            args.device,
        ]
        procs[name] = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    while time.time() < deadline - 8 and any(p.poll() is None for p in procs.values()):
        time.sleep(2)
    stop(procs)
    for name, p in procs.items():
        print(f"{name}: exit {p.returncode}", flush=True)
        print("".join((args.work / name / "job.log").read_text().splitlines(True)[-4:]))
    collect(names, args.work, args.out)
    print(f"done in {time.time() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
