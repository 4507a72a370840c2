"""The paper's per-epoch table (with PublicTest beside it), training curves, confusion matrix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..labels import EMOTIONS
from ..sinks import atomic_output, write_atomic

_COLUMNS = (
    "Epoch",
    "Training Loss",
    "Training Accuracy",
    "PublicTest Loss",
    "PublicTest Accuracy",
    "s",
)


def epoch_header(ferplus: bool = False) -> str:
    """The table's header; with ``ferplus``, a column for the FER+ head's PublicTest accuracy."""
    cols = [*_COLUMNS[:-1], "PublicTest FER+ Accuracy", _COLUMNS[-1]] if ferplus else _COLUMNS
    return "| " + " | ".join(cols) + " |\n|" + "|".join("---" for _ in cols) + "|"


def epoch_row(r: dict) -> str:
    plus = (
        f"{r['public_ferplus_accuracy']:.4f} | "
        if r.get("public_ferplus_accuracy") is not None
        else ""
    )
    return (
        f"| {r['epoch']} | {r['train_loss']:.4f} | {r['train_accuracy']:.4f} | "
        f"{r['public_loss']:.4f} | {r['public_accuracy']:.4f} | {plus}{r['seconds']:.0f} |"
    )


def epoch_table(history: list[dict]) -> str:
    """The whole table as Markdown, one row per epoch."""
    ferplus = any(r.get("public_ferplus_accuracy") is not None for r in history)
    return "\n".join([epoch_header(ferplus), *(epoch_row(r) for r in history)])


def plot_curves(history: list[dict], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [r["epoch"] for r in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ep, [r["train_loss"] for r in history], label="training")
    a.plot(ep, [r["public_loss"] for r in history], label="PublicTest")
    a.set(xlabel="epoch", ylabel="loss", title="Loss")
    b.plot(ep, [r["train_accuracy"] for r in history], label="training")
    b.plot(ep, [r["public_accuracy"] for r in history], label="PublicTest")
    b.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    with atomic_output(path) as tmp:  # a kill mid-write leaves the old picture
        fig.savefig(tmp, dpi=100, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)


def plot_confusion(matrix: np.ndarray, path: str | Path, title: str = "") -> None:
    """Row-normalised confusion matrix (rows: true label, columns: predicted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(matrix, dtype=float)
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(m)):
        for j in range(len(m)):
            ax.text(
                j,
                i,
                f"{norm[i, j]:.2f}",
                ha="center",
                va="center",
                color="white" if norm[i, j] > 0.5 else "black",
                fontsize=8,
            )
    ax.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45)
    ax.set_yticks(range(len(EMOTIONS)), EMOTIONS)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    with atomic_output(path) as tmp:  # a kill mid-write leaves the old picture
        fig.savefig(tmp, dpi=100, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)


def write_run_files(run_dir: str | Path, data=None) -> Path:
    """From ``metrics.json``: ``table.md`` (the paper's table + PublicTest) and ``curves.png``;
    with ``data`` (a FerData or path) also ``confusion_public.png`` of ``best.pt`` on PublicTest
    and its scores in ``public_scores.json``."""
    run = Path(run_dir)
    metrics = json.loads((run / "metrics.json").read_text())
    write_atomic(run / "table.md", epoch_table(metrics["history"]) + "\n")
    plot_curves(metrics["history"], run / "curves.png")
    if data is not None and (run / "best.pt").is_file():
        from ..data import FerData, load_fer2013
        from ..evaluate import evaluate_model
        from .checkpoints import load_checkpoint
        from .scoring import TorchScorer

        public = (data if isinstance(data, FerData) else load_fer2013(data)).split("public")
        scorer = TorchScorer([load_checkpoint(run / "best.pt")])  # one view, as training scores
        result = evaluate_model(scorer, public)["fer2013"]
        write_atomic(run / "public_scores.json", json.dumps(result, indent=2))
        title = f"PublicTest, best epoch: accuracy {result['accuracy']:.3f}"
        plot_confusion(np.array(result["confusion_matrix"]), run / "confusion_public.png", title)
    return run / "table.md"
