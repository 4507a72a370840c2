import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mobilefer.cli import main  # noqa: E402
from mobilefer.data import load_fer2013  # noqa: E402
from mobilefer.train.loop import RECIPES, fit, load_checkpoint, recipe  # noqa: E402


def test_recipes_are_the_papers_and_ours():
    paper = RECIPES["paper"]
    assert (paper.input_size, paper.epochs, paper.optimizer, paper.augment) == (
        224,
        25,
        "adam",
        False,
    )
    assert paper.mean == (0.0, 0.0, 0.0) and paper.std == (1.0, 1.0, 1.0)  # x / 255 only
    assert paper.hidden == (128, 64)
    with pytest.raises(ValueError, match="choose from paper, default"):
        recipe("fast")


def test_one_epoch_on_synthetic_data(tmp_path, fer_npz, tiny_config):
    rows = []
    result = fit(tiny_config, fer_npz, tmp_path / "run", on_epoch=rows.append)
    assert [r["epoch"] for r in rows] == [1]
    for key in ("train_loss", "train_accuracy", "public_loss", "public_accuracy"):
        assert np.isfinite(rows[0][key])
    for name in ("config.json", "last.pt", "best.pt", "metrics.json"):
        assert (tmp_path / "run" / name).is_file()
    assert result["best"]["epoch"] == 1


def test_resume_continues_a_stopped_run(tmp_path, fer_npz, tiny_config):
    from dataclasses import replace

    cfg = replace(tiny_config, epochs=2)
    # stop after epoch 1 (as a kill would), then resume
    fit(replace(cfg, epochs=1), fer_npz, tmp_path / "a")
    ck1 = torch.load(tmp_path / "a" / "last.pt", weights_only=False)
    ck1["config"]["epochs"] = 2  # the stopped run was planned for 2 epochs
    torch.save(ck1, tmp_path / "a" / "last.pt")
    resumed = fit(cfg, fer_npz, tmp_path / "a", resume=True)
    straight = fit(cfg, fer_npz, tmp_path / "b")
    assert [r["epoch"] for r in resumed["history"]] == [1, 2]
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=False)
    assert a["epoch"] == b["epoch"] == 2
    for k in a["model"]:
        assert torch.allclose(a["model"][k].float(), b["model"][k].float(), atol=1e-5), k
    assert resumed["history"][1]["train_loss"] == pytest.approx(
        straight["history"][1]["train_loss"], rel=1e-4
    )


def test_train_export_evaluate_cli(tmp_path, fer_npz, capsys):
    run = tmp_path / "run"
    code = main(
        [
            "train",
            "--data",
            str(fer_npz),
            "--out",
            str(run),
            "--epochs",
            "1",
            "--input-size",
            "32",
            "--no-pretrained",
            "--threads",
            "1",
            "--batch-size",
            "16",
        ]
    )
    out, _ = capsys.readouterr()
    assert code == 0
    assert "| Epoch | Training Loss | Training Accuracy | PublicTest Loss" in out
    for name in ("table.md", "curves.png", "confusion_public.png", "public_scores.json"):
        assert (run / name).is_file(), name

    model = tmp_path / "m.onnx"
    code = main(["export", str(run / "best.pt"), "--out", str(model), "--data", str(fer_npz)])
    out, _ = capsys.readouterr()
    assert code == 0
    report = json.loads(out.splitlines()[-1])
    assert report["max_abs_diff"] <= 1e-4
    assert set(report["metrics"]) >= {"public_accuracy", "private_accuracy", "private_macro_f1"}
    from mobilefer import Recognizer

    stored = Recognizer(model, detector="haar").info.metrics
    assert stored == report["metrics"]

    code = main(
        ["evaluate", "--model", str(model), "--data", str(fer_npz), "--split", "private", "--json"]
    )
    out, _ = capsys.readouterr()
    assert code == 0
    result = json.loads(out.splitlines()[-1])
    assert result["n"] == len(load_fer2013(fer_npz).split("private"))
    assert 0 <= result["accuracy"] <= 1 and 0 <= result["macro_f1"] <= 1
    assert np.array(result["confusion_matrix"]).sum() == result["n"]


def test_export_parity_and_metadata(tmp_path, tiny_config):
    import onnx

    from mobilefer.train.export import export_onnx
    from mobilefer.train.model import FerNet

    net = FerNet(hidden=tiny_config.hidden, width_mult=0.25, backbone=None).eval()
    rep = export_onnx(net, tiny_config, tmp_path / "x.onnx", flip_tta=True, metrics={"a": 1})
    assert rep["max_abs_diff"] <= 1e-4
    proto = onnx.load(str(tmp_path / "x.onnx"))
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    meta = json.loads({p.key: p.value for p in proto.metadata_props}["mobilefer"])
    assert meta["flip_tta"] is True and meta["metrics"] == {"a": 1}
    assert meta["labels"][3] == "happy" and meta["input_size"] == 32


def test_backbone_weights_file(tmp_path):
    from mobilefer.errors import WeightsError
    from mobilefer.train.model import FerNet, load_backbone_file

    from conftest import WEIGHTS

    src = WEIGHTS / "mobilenet_v2_imagenet.pth"
    if not src.is_file():
        pytest.skip("../shared/weights lacks the ImageNet file")
    net = FerNet(backbone=src)
    sd = load_backbone_file(src)
    assert torch.equal(net.features[0][0].weight, sd["features.0.0.weight"])
    with pytest.raises(WeightsError, match="no such file"):
        load_backbone_file(tmp_path / "none.pth")


def test_checkpoint_roundtrip(tmp_path, fer_npz, tiny_config):
    fit(tiny_config, fer_npz, tmp_path / "r")
    model, cfg = load_checkpoint(tmp_path / "r" / "best.pt")
    assert cfg == tiny_config
    assert not model.training


def test_int8_quantization_keeps_metadata(tmp_path, tiny_model):
    from mobilefer import Recognizer
    from mobilefer.train.export import quantize_int8

    faces = np.random.default_rng(0).integers(0, 256, (64, 48, 48), dtype=np.uint8)
    rep = quantize_int8(tiny_model, tmp_path / "q.onnx", faces)
    assert rep["bytes"] < tiny_model.stat().st_size
    fp32, int8 = Recognizer(tiny_model, detector="haar"), Recognizer(rep["path"], detector="haar")
    assert int8.info.preprocessing == fp32.info.preprocessing
    assert int8.info.recipe == fp32.info.recipe
    p = int8.predict_proba(list(faces[:8]))
    assert np.allclose(p.sum(1), 1) and np.abs(p - fp32.predict_proba(list(faces[:8]))).max() < 0.1


def test_imagenet_weights_through_the_torch_hub_cache(tmp_path, monkeypatch):
    """The cache seeded from a local file is what torchvision then loads: no download."""
    from mobilefer.errors import WeightsError
    from mobilefer.train.model import FerNet, load_backbone_file, seed_hub_cache

    from conftest import WEIGHTS

    src = WEIGHTS / "mobilenet_v2_imagenet.pth"
    if not src.is_file():
        pytest.skip("../shared/weights lacks the ImageNet file")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    cached = seed_hub_cache(src)
    assert cached.parent == tmp_path / "torch" / "hub" / "checkpoints"
    net = FerNet(backbone="imagenet")
    assert torch.equal(net.features[0][0].weight, load_backbone_file(src)["features.0.0.weight"])
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"x")
    with pytest.raises(WeightsError, match="sha256"):
        seed_hub_cache(bad)
