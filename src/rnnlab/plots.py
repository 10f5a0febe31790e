"""Plots of one run rendered by the project itself (PNG), so offline users need no CDN.

``dvc plots show`` writes HTML that loads its JavaScript from the network; these PNGs
are the offline view of the same data: ``rnnlab.evaluate``'s learning curves and
confusion matrix. (The gradient-flow figure is ``rnnlab.callbacks.gradient_plot``, the
sweep report's figures ``rnnlab.report.plots``.) Every PNG goes through :func:`save_png`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rnnlab.io import atomic_save_figure  # noqa: E402
from rnnlab.metrics import read_metrics_csv  # noqa: E402


def save_png(fig, out_png: str | Path, dpi: int = 100) -> Path:
    """Write ``fig`` atomically (rnnlab.io) and close it, even when rendering fails."""
    out = Path(out_png)
    try:
        atomic_save_figure(fig, out, dpi=dpi)
    finally:
        plt.close(fig)
    return out


def plot_learning_curves(metrics_csv: str | Path, out_png: str | Path, title: str = "") -> Path:
    """Loss (left) and the other validation metrics (right) per epoch."""
    series = read_metrics_csv(metrics_csv)
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 4))
    for key in ("train/loss_epoch", "train/loss", "val/loss"):
        if key in series:
            xs, ys = zip(*series[key])
            ax_loss.plot(xs, ys, marker="o", label=key)
    for key, points in sorted(series.items()):
        if key.startswith("val/") and key != "val/loss":
            xs, ys = zip(*points)
            ax_metric.plot(xs, ys, marker="o", label=key)
    for ax, name in ((ax_loss, "loss"), (ax_metric, "validation metrics")):
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return save_png(fig, out_png)


def plot_confusion_matrix(
    matrix, class_names: list[str], out_png: str | Path, title: str = ""
) -> Path:
    """Row-normalised confusion matrix (rows: true class) with counts annotated."""
    m = np.asarray(matrix, dtype=float)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * n, 0.8 + 0.6 * n))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    int(m[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    ax.set_title(title)
    fig.tight_layout()
    return save_png(fig, out_png)
