import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mobilefer.cli import main  # noqa: E402
from mobilefer.data import load_fer2013  # noqa: E402
from mobilefer.errors import DataError, OptionError, WeightsError  # noqa: E402
from mobilefer.train.loop import fit, load_checkpoint  # noqa: E402
from mobilefer.train.recipes import RECIPES, recipe  # noqa: E402


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
    from mobilefer.train.config import check_config

    for cfg in RECIPES.values():  # every shipped recipe within the bounds
        assert check_config(cfg) is cfg


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
            "--set",
            "blur_prob=0.4",
            "--set",
            "zoom=0.9,1.1",
        ]
    )
    out, _ = capsys.readouterr()
    assert code == 0
    assert "| Epoch | Training Loss | Training Accuracy | PublicTest Loss" in out
    saved = json.loads((run / "config.json").read_text())
    assert saved["blur_prob"] == 0.4 and saved["zoom"] == [0.9, 1.1]
    for name in ("table.md", "curves.png", "confusion_public.png", "public_scores.json"):
        assert (run / name).is_file(), name
    # the report's scores (TorchScorer through evaluate_model) are the training loop's own
    best = json.loads((run / "metrics.json").read_text())["best"]["public_accuracy"]
    assert json.loads((run / "public_scores.json").read_text())["accuracy"] == pytest.approx(best)

    model = tmp_path / "m.onnx"
    # candidates are judged on PublicTest only; PrivateTest is scored on request, for the winner
    code = main(["export", str(run / "best.pt"), "--out", str(model), "--data", str(fer_npz)])
    out, _ = capsys.readouterr()
    assert code == 0
    report = json.loads(out.splitlines()[-1])
    assert set(report["metrics"]) >= {"public_fer2013_accuracy", "public_fer2013_macro_f1"}
    assert not any(k.startswith("private") for k in report["metrics"])
    argv = ["export", str(run / "best.pt"), "--out", str(model), "--data", str(fer_npz)]
    code = main([*argv, "--report-private", "--overwrite"])  # the same --out, replaced
    out, _ = capsys.readouterr()
    assert code == 0
    report = json.loads(out.splitlines()[-1])
    assert report["max_abs_diff"] <= 1e-4
    assert set(report["metrics"]) >= {
        "public_fer2013_accuracy",
        "private_fer2013_accuracy",
        "private_fer2013_macro_f1",
    }
    from mobilefer import Recognizer

    card = Recognizer(model, detector="haar").card
    assert card.metrics == report["metrics"]
    # one view per zoom of the grid, each with its own flip and tau; the file keeps the best
    from mobilefer.train.export import ZOOM_GRID, best_row

    assert [r["zoom"] for r in report["zoom_table"]] == list(ZOOM_GRID)
    assert best_row(report["zoom_table"])["zoom"] == report["zoom"] == card.preprocessing.zoom

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

    net = FerNet(hidden=tiny_config.hidden, width_mult=tiny_config.width_mult, backbone=None).eval()
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


def test_the_committed_tiny_model_is_what_its_script_makes(tmp_path):
    """tests/data/tiny.onnx, which the inference tests use without torch, is still what
    scripts/make_tiny_model.py makes: the same bytes (or, with another torch, the same
    probabilities)."""
    import make_tiny_model

    from mobilefer import ExpressionModel

    from conftest import TINY_MODEL

    made = make_tiny_model.make(tmp_path / "tiny.onnx")
    if made.read_bytes() != TINY_MODEL.read_bytes():
        faces = list(np.random.default_rng(0).integers(0, 256, (16, 48, 48), np.uint8))
        want = ExpressionModel(TINY_MODEL).predict_proba(faces)
        assert np.abs(ExpressionModel(made).predict_proba(faces) - want).max() < 1e-6


def test_checkpoint_roundtrip(tmp_path, fer_npz, tiny_config):
    fit(tiny_config, fer_npz, tmp_path / "r")
    model, cfg = load_checkpoint(tmp_path / "r" / "best.pt")
    assert cfg == tiny_config
    assert not model.training


def test_int8_quantization_keeps_the_card_and_marks_it(tmp_path, tiny_model):
    from mobilefer import Recognizer
    from mobilefer.quantize import quantize_file

    faces = np.random.default_rng(0).integers(0, 256, (64, 48, 48), dtype=np.uint8)
    rep = quantize_file(tiny_model, tmp_path / "q.onnx", faces, "entropy")
    assert rep["bytes"] < tiny_model.stat().st_size
    fp32, int8 = Recognizer(tiny_model, detector="haar"), Recognizer(rep["path"], detector="haar")
    assert int8.card.preprocessing == fp32.card.preprocessing
    assert int8.card.recipe == fp32.card.recipe
    assert (fp32.card.precision, int8.card.precision) == ("float32", "int8")
    assert int8.card.quantization["calibration"] == "entropy"
    assert int8.card.quantization["faces"] == 64
    p = int8.predict_proba(list(faces[:8]))
    assert np.allclose(p.sum(1), 1) and np.abs(p - fp32.predict_proba(list(faces[:8]))).max() < 0.1
    with pytest.raises(OptionError, match="choose from minmax, entropy, percentile"):
        quantize_file(tiny_model, tmp_path / "x.onnx", faces, "kl")
    # the first convolution and the head kept float: no QDQ pair feeds them
    import onnx

    kept = quantize_file(tiny_model, tmp_path / "k.onnx", faces, "percentile", float_ends=True)
    graph = onnx.load(kept["path"]).graph
    made = {o: n.op_type for n in graph.node for o in n.output}
    gemms = [n for n in graph.node if n.op_type == "Gemm"]
    assert gemms and all(made.get(n.input[1]) != "DequantizeLinear" for n in gemms)
    # and the logits and probabilities stay float: no uint8 steps of 1/255 on the output
    assert made[graph.output[0].name] == "Softmax"
    softmax = next(n for n in graph.node if n.op_type == "Softmax")
    assert made[softmax.input[0]] == "Gemm"
    assert Recognizer(kept["path"], detector="haar").card.quantization["float"].startswith("first")


def test_bias_correction_removes_the_mean_logit_shift(tmp_path, tiny_model):
    """Rule q5: after the correction, the int8 file's logits over the calibration faces have
    the float file's mean (the shift common to every face is gone)."""
    import onnx

    from mobilefer.modelcard import read_card_file
    from mobilefer.quantize import bias_correct, logits_of, quantize_file, view_batches

    faces = np.random.default_rng(1).integers(0, 256, (64, 48, 48), dtype=np.uint8)
    made = quantize_file(tiny_model, tmp_path / "q.onnx", faces, float_ends=True)
    fixed = bias_correct(tiny_model, made["path"], tmp_path / "b.onnx", faces)
    batches = view_batches(faces, read_card_file(tiny_model).preprocessing)
    ref = logits_of(onnx.load(str(tiny_model)), batches).mean(0)
    before = logits_of(onnx.load(made["path"]), batches).mean(0)
    after = logits_of(onnx.load(fixed["path"]), batches).mean(0)
    assert np.allclose(after, ref, atol=1e-4) and np.allclose(
        ref - before, fixed["correction"], atol=1e-3
    )
    assert "bias_correction" in read_card_file(fixed["path"]).quantization
    without = quantize_file(tiny_model, tmp_path / "n.onnx", faces)  # no float head: refused
    with pytest.raises(OptionError, match="--float-ends"):
        bias_correct(tiny_model, without["path"], tmp_path / "x.onnx", faces)


def test_quantize_command_writes_each_calibration_and_its_parity(
    tmp_path, capsys, fer_npz, tiny_model
):
    out = tmp_path / "q.onnx"
    argv = [
        "quantize",
        str(tiny_model),
        "--data",
        str(fer_npz),
        "--out",
        str(out),
        "--no-val",
        "--faces",
        "16",
    ]
    code = main([*argv, "--calibration", "all"])
    out_text, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out_text)  # stdout holds the report alone
    assert "symbolic shape inference" not in err  # ONNX Runtime's info lines are not ours
    assert sorted(report["files"]) == ["distribution", "entropy", "minmax", "percentile"]
    assert all(Path(f["path"]).is_file() for f in report["files"].values())
    rows = report["parity"]
    assert [r["file"] for r in rows][0] == "float" and len(rows) == 5
    assert all(0 <= r["public"] <= 1 for r in rows) and rows[0]["worst_change"] == 0
    assert main(argv) == 0 and out.is_file()
    assert main(argv) == 2  # exists: not replaced without --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main([*argv[:5], str(tiny_model), *argv[6:]]) == 2


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


# ----------------------------------------------------------------------------- correctness
def test_resume_refuses_a_changed_config(tmp_path, fer_npz, tiny_config):
    """Resuming with other settings used to swap the config in after the optimizer and the
    schedule were built from the given one; now the change is refused, naming it."""
    from dataclasses import replace

    fit(tiny_config, fer_npz, tmp_path / "r")
    with pytest.raises(OptionError, match=r"lr 0.001 -> 0.01"):
        fit(replace(tiny_config, lr=0.01), fer_npz, tmp_path / "r", resume=True)
    with pytest.raises(OptionError, match="no checkpoint to resume"):
        fit(tiny_config, fer_npz, tmp_path / "none", resume=True)


def test_resume_with_more_epochs_extends_the_run(tmp_path, fer_npz, tiny_config):
    from dataclasses import replace

    from mobilefer.errors import OptionError

    fit(replace(tiny_config, epochs=2), fer_npz, tmp_path / "r")
    before = torch.load(tmp_path / "r" / "last.pt", weights_only=True)["model"]
    more = fit(replace(tiny_config, epochs=3), fer_npz, tmp_path / "r", resume=True)
    after = torch.load(tmp_path / "r" / "last.pt", weights_only=True)["model"]
    assert [r["epoch"] for r in more["history"]] == [1, 2, 3]
    # the stretched schedule still learns in epoch 3 (a learning rate of 0 would not)
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("head."))
    with pytest.raises(OptionError, match="already trained 3 epochs"):
        fit(replace(tiny_config, epochs=2), fer_npz, tmp_path / "r", resume=True)


def test_cli_resume_uses_the_runs_own_settings(tmp_path, fer_npz, capsys):
    run = tmp_path / "run"
    base = [
        "train",
        "--data",
        str(fer_npz),
        "--out",
        str(run),
        "--input-size",
        "32",
        "--no-pretrained",
        "--threads",
        "1",
        "--batch-size",
        "16",
    ]
    assert main([*base, "--epochs", "1"]) == 0
    # without the run's options: they come from the checkpoint, and --epochs 2 extends it
    assert (
        main(["train", "--data", str(fer_npz), "--out", str(run), "--resume", "--epochs", "2"]) == 0
    )
    assert main([*base, "--resume", "--lr", "0.5"]) == 2
    _, err = capsys.readouterr()
    assert "lr 0.001 -> 0.5" in err


def test_frozen_blocks_keep_their_batchnorm_statistics(fer_npz, tiny_config):
    from dataclasses import replace

    from mobilefer.data import load_fer2013
    from mobilefer.train.loop import build, train_one_epoch
    from mobilefer.train.trainset import make_train_set

    cfg = replace(tiny_config, freeze_blocks=3)
    model, opt, sched = build(cfg, 3, torch.device("cpu"))
    frozen = {k: v.clone() for k, v in model.features[:3].state_dict().items()}
    trained = {k: v.clone() for k, v in model.features[3:].state_dict().items()}
    data = make_train_set(load_fer2013(fer_npz).split("train"), cfg, torch.device("cpu"))
    train_one_epoch(model, opt, sched, data, cfg, torch.device("cpu"), torch.Generator())
    for k, v in model.features[:3].state_dict().items():
        assert torch.equal(v, frozen[k]), k  # running_mean/var and weights alike
    moved = [
        k
        for k, v in model.features[3:].state_dict().items()
        if "running_mean" in k and not torch.equal(v, trained[k])
    ]
    assert moved  # the blocks that train still update their statistics


def test_checkpoints_load_with_weights_only(tmp_path, fer_npz, tiny_config):
    fit(tiny_config, fer_npz, tmp_path / "r")
    for name in ("last.pt", "best.pt"):
        ck = torch.load(tmp_path / "r" / name, weights_only=True)
        assert ck["epoch"] == 1
    last = torch.load(tmp_path / "r" / "last.pt", weights_only=True)
    assert "cuda_rng" in last and "generator" in last and "torch_rng" in last


def test_no_step_waits_for_the_device(monkeypatch, fer_npz, tiny_config):
    """A GPU step must not sync on .item(): the running sums are read once per epoch."""
    import sys

    from mobilefer.data import load_fer2013
    from mobilefer.train.loop import build, train_one_epoch
    from mobilefer.train.trainset import make_train_set

    calls = []
    real = torch.Tensor.item

    def item(t):  # count the calls made by the training loop itself (not torch's optimizers)
        if sys._getframe(1).f_code.co_filename.endswith("loop.py"):
            calls.append(1)
        return real(t)

    monkeypatch.setattr(torch.Tensor, "item", item)
    model, opt, sched = build(tiny_config, 3, torch.device("cpu"))
    data = make_train_set(load_fer2013(fer_npz).split("train"), tiny_config, torch.device("cpu"))
    train_one_epoch(model, opt, sched, data, tiny_config, torch.device("cpu"), torch.Generator())
    assert len(data.labels) // tiny_config.batch_size >= 2  # several steps ran
    assert len(calls) == 3  # loss, accuracy and the labelled count, once each, at the end


def test_augmentation_keeps_shape_range_and_determinism(tiny_config):
    from mobilefer.train.augment import augment, jpeg_faces

    x = torch.rand(6, 1, 48, 48)
    a = augment(x, tiny_config, torch.Generator().manual_seed(1))
    b = augment(x, tiny_config, torch.Generator().manual_seed(1))
    assert a.shape == (6, 1, 32, 32) and torch.equal(a, b)
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    pixels = np.random.default_rng(0).integers(0, 256, (200, 48, 48), dtype=np.uint8)
    idx, out = jpeg_faces(pixels, tiny_config, epoch=3)
    idx2, out2 = jpeg_faces(pixels, tiny_config, epoch=3)
    assert 0 < len(idx) < 200 and np.array_equal(idx, idx2) and np.array_equal(out, out2)
    assert out.shape == (len(idx), 48, 48) and not np.array_equal(out, pixels[idx])


# ----------------------------------------------------------------------------- FER+ and balance
def test_ferplus_head_trains_exports_and_is_scored(tmp_path, fer_npz, tiny_config):
    from dataclasses import replace

    from mobilefer.data import load_fer2013
    from mobilefer.evaluate import evaluate_model
    from mobilefer.labels import FERPLUS_LABELS
    from mobilefer.model import ExpressionModel
    from mobilefer.train.export import export_checkpoint

    data = load_fer2013(fer_npz).with_ferplus(fer_npz.parent / "ferplus.npz")
    cfg = replace(tiny_config, ferplus_weight=1.0)
    result = fit(cfg, data, tmp_path / "r")
    assert 0 <= result["history"][0]["public_ferplus_accuracy"] <= 1
    assert (tmp_path / "r" / "best_ferplus.pt").is_file()
    rep = export_checkpoint(
        tmp_path / "r" / "best_ferplus.pt",
        tmp_path / "plus.onnx",
        data=data,
        head="ferplus",
        report_private=True,
    )
    rec = ExpressionModel(tmp_path / "plus.onnx")
    assert rec.labels == FERPLUS_LABELS and len(rec.card.prior) == 8
    assert 0 <= rep["metrics"]["private_ferplus_accuracy"] <= 1
    assert "private_accuracy" not in rep["metrics"]  # each figure says which labels it is on
    r = evaluate_model(rec, data.split("private"))
    assert r["ferplus"]["n"] == int((data.split("private").votes[:, 9] < 10).sum())
    assert set(r["per_class_recall"]) == set(FERPLUS_LABELS)
    # the 7-class head of the same run has no contempt, and says so
    with pytest.raises(ValueError, match="no FER\\+ head"):
        fit(tiny_config, fer_npz, tmp_path / "r7")  # control: no votes needed without a head
        export_checkpoint(
            tmp_path / "r7" / "best.pt",
            tmp_path / "x.onnx",
            head="ferplus",
            flip_tta=False,
            prior_tau=0,
            zoom=1,
        )


def test_default_recipe_needs_ferplus_votes(tmp_path, fer_npz, tiny_config):
    from dataclasses import replace

    from mobilefer.errors import OptionError

    with pytest.raises(OptionError, match="pass --ferplus ferplus.npz, or --ferplus-weight 0"):
        fit(replace(tiny_config, ferplus_weight=1.0), fer_npz, tmp_path / "r")


def test_prior_correction_is_stored_and_applied(tmp_path, tiny_config):
    from mobilefer.model import ExpressionModel
    from mobilefer.train.export import export_onnx
    from mobilefer.train.model import FerNet

    net = FerNet(hidden=tiny_config.hidden, width_mult=tiny_config.width_mult, backbone=None).eval()
    prior = (0.14, 0.015, 0.145, 0.25, 0.17, 0.11, 0.17)
    export_onnx(net, tiny_config, tmp_path / "plain.onnx")
    export_onnx(net, tiny_config, tmp_path / "fixed.onnx", prior=prior, prior_tau=0.5)
    faces = list(np.random.default_rng(1).integers(0, 256, (5, 48, 48), dtype=np.uint8))
    plain = ExpressionModel(tmp_path / "plain.onnx").predict_proba(faces)
    fixed = ExpressionModel(tmp_path / "fixed.onnx").predict_proba(faces)
    want = plain / np.asarray(prior) ** 0.5
    assert np.allclose(fixed, want / want.sum(1, keepdims=True), atol=1e-5)
    assert np.allclose(fixed.sum(1), 1)


def test_zoom_is_stored_and_applied(tmp_path, tiny_config):
    from mobilefer.model import ExpressionModel
    from mobilefer.train.export import export_onnx
    from mobilefer.train.model import FerNet
    from mobilefer.train.scoring import predict_probs

    torch.manual_seed(0)
    net = FerNet(hidden=tiny_config.hidden, width_mult=tiny_config.width_mult, backbone=None).eval()
    with torch.no_grad():  # untrained BatchNorm statistics make every face look alike
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = None  # one batch sets the statistics outright
        net.train()(torch.randn(32, 3, 32, 32))
        net.eval()
    export_onnx(net, tiny_config, tmp_path / "z.onnx", zoom=1.2)
    rec = ExpressionModel(tmp_path / "z.onnx")
    assert rec.card.preprocessing.zoom == 1.2
    faces = np.random.default_rng(1).integers(0, 96, (6, 48, 48), dtype=np.uint8)
    faces[:, :, :5] = 255  # a bright band that zooming in leaves out
    got = rec.predict_proba(list(faces))
    cpu = torch.device("cpu")
    want = predict_probs(net, faces, tiny_config, cpu, zoom=1.2).numpy()
    whole = predict_probs(net, faces, tiny_config, cpu).numpy()
    assert np.abs(got - want).max() < 1e-4 < np.abs(got - whole).max()


def test_choose_tau_trades_common_for_rare_classes():
    from mobilefer.train.export import choose_tau

    rng = np.random.default_rng(0)
    prior = np.array([0.9, 0.1])
    y = (rng.random(2000) < 0.5).astype(int)  # test labels balanced, training prior skewed
    logits = np.stack([np.zeros(2000), (y - 0.5) * 2 + rng.normal(0, 1.2, 2000)], 1)
    probs = np.exp(logits) * prior
    probs /= probs.sum(1, keepdims=True)
    tau, rows = choose_tau(probs, y, prior)
    assert [r["tau"] for r in rows][0] == 0.0 and tau >= 0.7
    assert rows[-1]["macro_f1"] > rows[0]["macro_f1"]


def test_init_starts_from_a_checkpoint(tmp_path, fer_npz, tiny_config):
    from dataclasses import replace

    fit(tiny_config, fer_npz, tmp_path / "a")
    start = torch.load(tmp_path / "a" / "best.pt", weights_only=True)["model"]
    cfg = replace(tiny_config, init=str(tmp_path / "a" / "best.pt"), lr=0.0, seed=5)
    fit(cfg, fer_npz, tmp_path / "b")
    after = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["model"]
    heads = [k for k in start if k.startswith("head.")]
    assert heads and all(torch.equal(start[k], after[k]) for k in heads)  # lr 0: unchanged


def test_set_is_typed_by_the_default_and_names_the_choices(capsys, fer_npz, tmp_path):
    from mobilefer.train.config import parse_setting

    assert parse_setting("jpeg_prob=0.3") == ("jpeg_prob", 0.3)
    assert parse_setting("freeze-blocks=2") == ("freeze_blocks", 2)
    assert parse_setting("augment=false") == ("augment", False)
    assert parse_setting("hidden=256,128") == ("hidden", (256, 128))
    assert parse_setting("init=none") == ("init", None)
    for bad in ("blur", "nope=1", "freeze_blocks=two", "epochs=-1", "lr=nan", "augment=maybe"):
        with pytest.raises(OptionError, match="--set"):
            parse_setting(bad)
    out = tmp_path / "never"
    code = main(["train", "--data", str(fer_npz), "--out", str(out), "--set", "blurr=0.3"])
    _, err = capsys.readouterr()
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "blur_prob" in err and "jpeg_prob" in err and not out.exists()


def test_an_ensemble_file_averages_its_members(tmp_path, tiny_config, fer_npz):
    from dataclasses import replace

    import torch

    from mobilefer.model import ExpressionModel
    from mobilefer.modelcard import read_card_file
    from mobilefer.train.export import export_checkpoint, export_onnx
    from mobilefer.train.model import FerNet

    nets = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        nets.append(
            FerNet(
                hidden=tiny_config.hidden, width_mult=tiny_config.width_mult, backbone=None
            ).eval()
        )
    for i, net in enumerate(nets):
        export_onnx(net, tiny_config, tmp_path / f"m{i}.onnx")
    rep = export_onnx(nets, [tiny_config, replace(tiny_config, seed=7)], tmp_path / "both.onnx")
    assert rep["max_abs_diff"] <= 1e-4
    faces = list(np.random.default_rng(1).integers(0, 256, (6, 48, 48), dtype=np.uint8))
    one, two, both = (
        ExpressionModel(tmp_path / f"{n}.onnx").predict_proba(faces) for n in ("m0", "m1", "both")
    )
    assert not np.allclose(one, two, atol=1e-3)
    assert np.allclose(both, (one + two) / 2, atol=1e-5)
    assert [m["seed"] for m in read_card_file(tmp_path / "both.onnx").recipe["members"]] == [0, 7]
    # members must see the same input; the error says what differs, before any work
    runs = []
    for size in (32, 40):
        cfg = replace(tiny_config, input_size=size)
        fit(cfg, fer_npz, tmp_path / f"r{size}")
        runs.append(tmp_path / f"r{size}" / "best.pt")
    with pytest.raises(OptionError, match="same input.*input_size=32.*input_size=40"):
        export_checkpoint(runs, tmp_path / "x.onnx", data=load_fer2013(fer_npz))
    assert not (tmp_path / "x.onnx").exists()


def write_table_source(root: Path, rows: list[tuple[str, str, str]], photos: bool = False) -> Path:
    """A folder with images/ and labels.csv (file,label,part,fold): ``rows`` of (label, part,
    fold); whole photos (the astronaut's face pasted) where ``photos``, else random crops."""
    import cv2

    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    lines = ["file,label,part,fold"]
    face = cv2.imread(str(Path(__file__).parent / "data" / "astronaut.jpg"))
    for i, (label, part, fold) in enumerate(rows):
        img = face if photos else rng.integers(0, 256, (96, 80), np.uint8)
        cv2.imwrite(str(root / "images" / f"{i}.jpg"), img)
        lines.append(f"images/{i}.jpg,{label},{part},{fold}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def test_a_table_source_reads_its_fold_and_never_the_report_rows(tmp_path):
    from mobilefer.train.sources import Source, list_images

    rows = [
        ("0", "choose", "train"),
        ("3", "choose", "val"),
        ("4", "report", ""),
        ("-1", "choose", "train"),
        ("happy", "choose", "train"),
    ]
    src = Source("t", str(write_table_source(tmp_path / "t", rows)))
    train = list_images(src, "train")
    assert [(p.name, y) for p, y in train] == [("0.jpg", 0), ("4.jpg", 3)]  # -1: unlabelled
    assert [(p.name, y) for p, y in list_images(src, "val")] == [("1.jpg", 3)]
    assert list_images(src, "report") == []  # there is no such fold to ask for


def test_a_folder_source_is_read_as_imagefolder_and_set_with_extra(tmp_path):
    import cv2

    from mobilefer.train.config import apply_settings
    from mobilefer.train.recipes import recipe
    from mobilefer.train.sources import list_images, source_of

    for name in ("happy", "3", "sad"):
        (tmp_path / "mine" / name).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "mine" / name / "a.png"), np.zeros((60, 60), np.uint8))
    (tmp_path / "mine" / "sad" / "notes.txt").write_text("not an image")
    cfg = apply_settings(
        recipe("mixture"),
        [f"extra={tmp_path / 'mine'}", "extra_weight=2.5", "source.sfew.weight=0.5", "epochs=3"],
    )
    extra = source_of(cfg.sources[-1])
    assert (extra.name, extra.reader, extra.weight, cfg.epochs) == ("extra", "folder", 2.5, 3)
    assert next(s for s in cfg.sources if s["name"] == "sfew")["weight"] == 0.5
    assert recipe("mixture").sources[1]["weight"] == 2.0  # the recipe itself is unchanged
    assert sorted(y for _, y in list_images(extra, "train")) == [3, 3, 4]
    assert list_images(extra, "val") == []  # a user's folder is for training only
    with pytest.raises(OptionError, match="NAME one of taiwanese, sfew"):
        apply_settings(recipe("mixture"), ["source.lfw.weight=1"])
    with pytest.raises(OptionError, match="targets 'votes'; choose from labels, teacher"):
        apply_settings(recipe("mixture"), ["source.sfew.targets=votes"])
    (tmp_path / "mine" / "grumpy").mkdir()
    with pytest.raises(DataError, match="grumpy.*expected 0-6 or one of angry"):
        list_images(extra, "train")


def test_each_source_is_seen_weight_times_an_epoch():
    from mobilefer.train.sources import epoch_indices

    gen = torch.Generator().manual_seed(0)
    order = epoch_indices([10, 4, 6], [1.0, 2.0, 0.5], gen)
    counts = np.bincount(order.numpy(), minlength=20)
    assert (counts[:10] == 1).all() and (counts[10:14] == 2).all()
    assert counts[14:].sum() == 3 and counts[14:].max() == 1  # a fresh half of the third
    assert not torch.equal(order, torch.sort(order).values)  # shuffled


def test_a_network_of_a_model_file_is_loaded_as_it_computes(tmp_path, tiny_config):
    """Fine-tuning starts from an exported file: its folded convolutions come back into a
    FerNet that gives the file's probabilities, for every member of an ensemble."""
    import onnxruntime as ort

    from mobilefer.preprocess import prepare
    from mobilefer.train.export import export_onnx
    from mobilefer.train.model import FerNet, onnx_state_dict

    c = tiny_config
    torch.manual_seed(1)
    nets = [
        FerNet(hidden=c.hidden, width_mult=c.width_mult, backbone=None).eval() for _ in range(2)
    ]
    for net in nets:
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.05, 0.5)
    path = tmp_path / "pair.onnx"
    export_onnx(nets, [c, c], path)
    x = prepare(
        list(np.random.default_rng(0).integers(0, 256, (8, 48, 48), np.uint8)), c.preprocessing()
    )
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = sess.run(None, {"input": x})[0]
    got = []
    for member in (0, 1):
        net = FerNet(hidden=c.hidden, width_mult=c.width_mult, backbone=None)
        state, heads = onnx_state_dict(path, net, member)
        assert heads == ["head"]
        net.load_state_dict(state)
        with torch.no_grad():
            got.append(torch.softmax(net.eval()(torch.from_numpy(x)), 1).numpy())
    assert np.abs((got[0] + got[1]) / 2 - want).max() < 1e-5
    with pytest.raises(WeightsError, match="no network 2"):
        onnx_state_dict(path, net, 2)


def test_training_on_sources_chooses_by_the_domain_score(
    tmp_path, fer_npz, tiny_config, tiny_model
):
    """A run with a table source of whole photos (cut by the detector, cached in the run) and
    val sources: every epoch is scored on them, best.pt is the best domain score, the FER+
    head learns the sources' labels as one-hot votes, and the run may start from a file."""
    from dataclasses import replace

    from mobilefer.data import load_fer2013_with_ferplus
    from mobilefer.train.sources import Source, load_source
    from mobilefer.train.trainset import make_train_set

    rows = [(str(i % 7), "choose", "train") for i in range(6)] + [("3", "choose", "val")] * 2
    root = write_table_source(tmp_path / "photos", rows, photos=True)
    spec = {"name": "photos", "path": str(root), "weight": 2.0, "detect": True}
    whole = {**spec, "name": "whole", "detect": False}
    cfg = replace(
        tiny_config,
        sources=(spec,),
        val_sources=(spec, whole),
        ferplus_weight=1.0,
        init=str(tiny_model),
        epochs=2,
    )
    result = fit(cfg, load_fer2013_with_ferplus(fer_npz), tmp_path / "run")
    faces = load_source(Source(**spec), "train", 0.0, tmp_path / "run")
    assert faces.found.all() and (tmp_path / "run" / "faces-photos-train.npz").is_file()
    assert faces.pixels.std() > 10  # the face, cut out, not a blank
    rows = result["history"]
    assert set(rows[0]["val_macro_f1"]) == {"public", "photos", "whole"}
    assert rows[0]["domain_score"] == pytest.approx(np.mean(list(rows[0]["val_macro_f1"].values())))
    best = max(rows, key=lambda r: r["domain_score"])
    assert result["best"]["epoch"] == best["epoch"] and "ferplus_domain_score" in rows[0]

    data = load_fer2013_with_ferplus(fer_npz).split("train")
    ts = make_train_set(data, cfg, torch.device("cpu"), [(Source(**spec), faces)])
    n = len(data)
    assert ts.groups == (n, 6) and ts.weights == (1.0, 2.0)
    assert (ts.labels[n:].numpy() == faces.labels).all()
    assert (ts.soft[n:].argmax(1).numpy() == faces.labels).all() and ts.soft_mask[n:].all()


def test_distillation_learns_the_teachers_targets_on_teacher_sources(
    tmp_path, fer_npz, tiny_config, tiny_model
):
    from dataclasses import replace

    from mobilefer.model import ExpressionModel
    from mobilefer.train.distill import teacher_probs
    from mobilefer.train.loop import distill_loss
    from mobilefer.train.sources import Source, load_source
    from mobilefer.train.trainset import make_train_set

    root = write_table_source(tmp_path / "extra", [(str(i), "choose", "train") for i in range(5)])
    spec = {"name": "extra", "path": str(root), "targets": "teacher"}
    faces = load_source(Source(**spec), "train", 0.0, None)
    assert faces.pixels.shape == (5, 48, 48) and faces.pixels.dtype == np.uint8

    # the teacher's targets are its own probabilities (no prior correction on this file)
    want = ExpressionModel(tiny_model).predict_proba(list(faces.pixels))
    assert np.allclose(teacher_probs(tiny_model, faces.pixels), want, atol=1e-6)

    # the loss is zero where the student already gives the teacher's distribution
    p = torch.tensor([[0.7, 0.1, 0.1, 0.05, 0.02, 0.02, 0.01]])
    cfg = replace(tiny_config, distill_weight=0.5, teacher=str(tiny_model))
    assert distill_loss(p.log(), p, cfg).abs().item() < 1e-6
    assert distill_loss(torch.zeros(1, 7), p, cfg).item() > 0.1

    data = load_fer2013(fer_npz)
    ts = make_train_set(data.split("train"), cfg, torch.device("cpu"), [(Source(**spec), faces)])
    n = len(data.split("train"))
    assert ts.faces.shape[0] == n + 5 and (ts.labels[n:] == -1).all()
    assert ts.teacher.shape == (n + 5, 7) and ts.teacher_mask.all()
    result = fit(replace(cfg, sources=(spec,)), fer_npz, tmp_path / "run")
    assert np.isfinite(result["history"][0]["train_loss"])
    with pytest.raises(OptionError, match="teacher"):
        fit(replace(tiny_config, distill_weight=0.5), fer_npz, tmp_path / "no_teacher")
    with pytest.raises(OptionError, match="distill_weight"):
        fit(replace(tiny_config, sources=(spec,)), fer_npz, tmp_path / "no_weight")


def test_torch_scorer_scores_as_the_exported_file(tmp_path, tiny_config):
    """One scoring path: a checkpoint scored in torch (as export chooses its settings) gives
    the probabilities of the file it is exported to, flip TTA and zoom included."""
    from mobilefer.model import ExpressionModel
    from mobilefer.train.export import export_onnx
    from mobilefer.train.model import FerNet
    from mobilefer.train.scoring import TorchScorer

    torch.manual_seed(0)
    c = tiny_config
    net = FerNet(hidden=c.hidden, width_mult=c.width_mult, backbone=None).eval()
    for m in net.modules():  # untrained, its features vanish: every face gets one answer
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.fill_(0.1)
    export_onnx(net, c, tmp_path / "m.onnx", zoom=1.1, flip_tta=True)
    faces = list(np.random.default_rng(1).integers(0, 256, (10, 48, 48), np.uint8))
    want = ExpressionModel(tmp_path / "m.onnx").predict_proba(faces)
    got = TorchScorer([(net, c)], zoom=1.1, flip_tta=True).predict_proba(faces)
    assert got.shape == want.shape and np.allclose(got, want, atol=1e-4)
    plain = TorchScorer([(net, c)], zoom=1.1).predict_proba(faces)
    assert np.abs(plain - got).max() > 1e-3  # the flip is there, and it matters
    assert got.std(0).max() > 1e-3  # and the faces get different answers


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--set", "batch_size=1000000000"], "batch_size=1000000000: expected 2 to 65536"),
        (["--threads", "100000"], "threads=100000: expected 0 to 256"),
        (["--seed", str(10**30)], "seed=.*: expected 0 to 4294967295"),
        (["--epochs", "100000000"], "epochs=100000000: expected 1 to 10000"),
        (["--set", "zoom=1.3,0.8"], r"zoom=\(1.3, 0.8\): expected 0.1 to 10 \(low,high\)"),
        (["--set", "flip_prob=2"], "flip_prob=2.0: expected 0 to 1"),
        (["--set", "optimizer=sgd"], "optimizer='sgd': choose from adamw, adam"),
        (["--set", "hidden=0"], r"hidden=\(0,\): expected 1 to 65536"),
    ],
)
def test_every_training_number_is_bounded_before_the_data_is_read(tmp_path, capsys, argv, message):
    """Found by the third round's fresh probe: `train --threads 100000` or a batch of 10^9 faces
    was accepted, and failed (or hung) only after the data was loaded."""
    code = main(
        ["train", "--data", str(tmp_path / "never-read.npz"), "--out", str(tmp_path / "run"), *argv]
    )
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    import re

    assert re.search(message, err), err
    assert not (tmp_path / "run").exists()
