"""Plots rendered by the project itself (PNG), so offline users need no CDN.

``dvc plots show`` writes HTML that loads its JavaScript from the network; these PNGs
are the offline view of the same data.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics_csv(path: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Lightning CSVLogger file -> {metric: [(epoch, value), ...]} (epoch-level rows)."""
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            epoch = row.get("epoch")
            if epoch in (None, ""):
                continue
            for key, value in row.items():
                if key in ("epoch", "step") or value in (None, "") or key.endswith("_step"):
                    continue
                series[key].append((int(float(epoch)), float(value)))
    return dict(series)


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
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_confusion_matrix(
    matrix, class_names: list[str], out_png: str | Path, title: str = ""
) -> Path:
    """Row-normalised confusion matrix (rows: true class) with counts annotated."""
    import numpy as np

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
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_gradient_flow(records: list[dict], out_png: str | Path) -> Path:
    """‖∂L/∂h_t‖ over time: every layer at the latest probe (left), and the first
    profiled layer at every probe so far (right). Log scale: vanishing is geometric."""
    latest = records[-1]
    fig, (ax_layers, ax_epochs) = plt.subplots(1, 2, figsize=(11, 4))
    for name, layer in latest["layers"].items():
        _log_line(ax_layers, layer["dh_norm"], label=name)
    _log_line(ax_layers, latest["input"]["dx_norm"], label="input (∂L/∂x_t)", linestyle="--")
    ax_layers.set_title(f"epoch {latest['epoch']}, step {latest['global_step']}")
    first = next(iter(latest["layers"]), None)
    key = ("layers", first, "dh_norm") if first else ("input", "dx_norm")
    cmap = plt.get_cmap("viridis")
    for i, record in enumerate(records):
        values = record
        for k in key:
            values = values.get(k, {}) if isinstance(values, dict) else {}
        if isinstance(values, list):
            label = "before training" if record["global_step"] == 0 else f"epoch {record['epoch']}"
            _log_line(ax_epochs, values, label=label, color=cmap(i / max(len(records) - 1, 1)))
    ax_epochs.set_title(f"{first or 'input'} over training")
    for ax in (ax_layers, ax_epochs):
        ax.set_xlabel("time step t")
        ax.set_ylabel("‖∂L/∂h_t‖ (mean over probe batch)")
        ax.grid(alpha=0.3, which="both")
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    out_png = Path(out_png)
    tmp = out_png.with_name(out_png.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out_png)
    return out_png


def _log_line(ax, values: list[float], **kwargs) -> None:
    """Plot positive values on a log axis (zeros, e.g. unreachable steps, are dropped)."""
    points = [(t, v) for t, v in enumerate(values) if v and v > 0]
    if points:
        xs, ys = zip(*points)
        ax.semilogy(xs, ys, **kwargs)
