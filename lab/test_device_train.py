"""lab/device_train.py, run on the CPU over a tiny pack of the device pack's layout: a crash
on the borrowed GPU would cost the lease, so the whole path is tried here first."""

from __future__ import annotations

import importlib.util
import io
import json
import lzma
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "device_train.py"


def _script():
    spec = importlib.util.spec_from_file_location("device_train", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _write_part(path, rows: np.ndarray, usage: int) -> None:
    rng = np.random.default_rng(int(rows[0]))
    buf = io.BytesIO()
    np.savez(
        buf,
        pixels=rng.integers(0, 256, (len(rows), 48, 48), dtype=np.uint8),
        emotion=(rows % 7).astype(np.int8),
        usage=np.full(len(rows), usage, dtype=np.int8),
        row_index=rows.astype(np.int32),
    )
    path.write_bytes(lzma.compress(buf.getvalue()))


@pytest.fixture
def pack(tmp_path):
    """Training rows 0-47 in two parts, PublicTest rows 48-63, FER+ votes for 80 rows (the
    real file also covers PrivateTest), a width-0.25 backbone stored as float16."""
    torch = pytest.importorskip("torch")
    from torchvision.models import mobilenet_v2

    d = tmp_path / "pack"
    d.mkdir()
    _write_part(d / "fer2013_training_part1.npz.xz", np.arange(0, 24), 0)
    _write_part(d / "fer2013_training_part2.npz.xz", np.arange(24, 48), 0)
    _write_part(d / "fer2013_publictest.npz.xz", np.arange(48, 64), 1)
    votes = np.random.default_rng(0).integers(0, 5, (80, 10)).astype(np.int16)
    np.savez(d / "ferplus.npz", votes=votes)
    sd = mobilenet_v2(weights=None, width_mult=0.25).state_dict()
    torch.save(
        {k: v.half() if v.is_floating_point() else v for k, v in sd.items()},
        d / "mobilenet_v2_imagenet_fp16.pth",
    )
    return d


def test_unpack_joins_the_parts_in_row_order(pack, tmp_path):
    from mobilefer.data import load_fer2013

    _script().unpack(pack, tmp_path / "work")
    data = load_fer2013(tmp_path / "work" / "fer2013.npz").with_ferplus(
        tmp_path / "work" / "ferplus.npz"
    )
    assert len(data) == 64
    assert list(data.labels[:10]) == [i % 7 for i in range(10)]
    assert (data.usage[:48] == 0).all() and (data.usage[48:] == 1).all()
    assert data.votes.shape == (64, 10)


def test_unpack_refuses_parts_that_do_not_join(pack, tmp_path):
    _write_part(pack / "fer2013_training_part2.npz.xz", np.arange(30, 54), 0)  # a gap at 24
    with pytest.raises(SystemExit, match="rows 0-63 in order"):
        _script().unpack(pack, tmp_path / "work")


def test_jobs_train_side_by_side_and_come_back_as_float16(pack, tmp_path):
    torch = pytest.importorskip("torch")
    from mobilefer.train.checkpoints import load_checkpoint

    tiny = "width_mult=0.25,input_size=32,batch_size=8,threads=1"
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--pack",
        str(pack),
        "--work",
        str(tmp_path / "work"),
        "--out",
        str(out),
        "--budget",
        "240",
        "--max-epochs",
        "2",
        "--threads",
        "1",
        "--device",
        "cpu",
        f"fixed:paper:epochs=1,{tiny}",
        f"planned:default:freeze_blocks=0,seed=3,{tiny}",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=230, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "fixed: exit 0" in done.stdout and "planned: exit 0" in done.stdout

    assert sorted(p.name for p in out.iterdir()) == [
        "fixed_best.pt",
        "planned_best.pt",
        "planned_best_ferplus.pt",
        "runs.tar.gz",
    ]
    ck = torch.load(out / "planned_best.pt", weights_only=True)
    assert {v.dtype for v in ck["model"].values() if v.is_floating_point()} == {torch.float16}
    model, cfg = load_checkpoint(out / "planned_best.pt")
    assert next(model.parameters()).dtype == torch.float32 and cfg.seed == 3

    with tarfile.open(out / "runs.tar.gz") as tar:
        metrics = {n: json.load(tar.extractfile(f"{n}/metrics.json")) for n in ("fixed", "planned")}
    assert len(metrics["fixed"]["history"]) == 1  # epochs given: no planning
    planned = metrics["planned"]["config"]
    assert 1 <= planned["epochs"] <= 2  # as many as fit, at most --max-epochs
    assert len(metrics["planned"]["history"]) == planned["epochs"]
    assert planned["notes"]["epochs"] == planned["epochs"] and planned["notes"]["faces_per_s"] > 0


@pytest.mark.parametrize(
    ("jobs", "message"),
    [(["a:default:fps=3"], "KEY one of"), (["a:default", "a:paper"], "distinct names")],
)
def test_bad_jobs_stop_before_anything_is_unpacked(tmp_path, jobs, message):
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--pack",
        str(tmp_path / "no-pack"),
        "--work",
        str(tmp_path / "work"),
        "--out",
        str(tmp_path / "out"),
        "--budget",
        "60",
        *jobs,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "work").exists()
