"""The sweep report's figures (PNG, Agg backend: no display, no network).

Each function returns the PNG path, or a one-line note saying why it drew nothing, so the
report can list skipped figures instead of failing on a sweep that lacks their data.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from rnnlab.plots import save_png  # noqa: E402
from rnnlab.report.jobs import Job, Report  # noqa: E402


def _curve_key(job: Job, metric: str) -> str | None:
    """The validation series to draw: the ranked metric without ``_best``, else the monitor."""
    for key in (metric.removesuffix("_best"), job.monitor):
        if key and job.curves.get(key):
            return key
    return None


def plot_learning_curves(report: Report, labels: dict[str, str], out: Path) -> Path | str:
    """Validation monitor (left) and train loss (right) per epoch, one line per job."""
    jobs = [j for j in report.jobs if j.curves]
    if not jobs:
        return "learning_curves.png skipped: no job has csv/metrics.csv"
    fig, (ax_val, ax_train) = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = plt.get_cmap("tab10" if len(jobs) <= 10 else "tab20")
    val_keys = set()
    for i, job in enumerate(jobs):
        color = colors(i % colors.N)
        style = "-" if job.status == "ok" else ":"
        key = _curve_key(job, report.metric)
        if key:
            val_keys.add(key)
            xs, ys = zip(*job.curves[key])
            ax_val.plot(xs, ys, style, marker="o", ms=3, color=color, label=labels[job.name])
        for train_key in ("train/loss_epoch", "train/loss"):
            if job.curves.get(train_key):
                xs, ys = zip(*job.curves[train_key])
                ax_train.plot(xs, ys, style, marker="o", ms=3, color=color)
                break
    ax_val.set_title(", ".join(sorted(val_keys)) or "validation metric (not logged)")
    ax_train.set_title("train/loss")
    for ax in (ax_val, ax_train):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    if ax_val.get_legend_handles_labels()[0]:
        fig.legend(loc="center right", fontsize=8, frameon=False)
    fig.suptitle(f"Learning curves ({len(jobs)} jobs; dotted: failed or unranked)")
    fig.tight_layout(rect=(0, 0, 0.8, 1))
    return save_png(fig, out)


def plot_heatmap(report: Report, labels: dict[str, str], out: Path) -> Path | str:
    """The ranked metric over activation (rows) x connection (columns).

    When other axes or swept keys vary too, each cell holds the best job of that
    activation and connection; the title names what was aggregated over.
    """
    jobs = report.ranked
    if not jobs:
        return f"heatmap.png skipped: no job has a finite {report.metric}"
    acts = sorted({j.axes["activation"] for j in jobs})
    conns = sorted({j.axes["connection"] for j in jobs})
    grid = np.full((len(acts), len(conns)), np.nan)
    counts = np.zeros_like(grid, dtype=int)
    better = max if report.mode == "max" else min
    for job in jobs:
        r, c = acts.index(job.axes["activation"]), conns.index(job.axes["connection"])
        counts[r, c] += 1
        grid[r, c] = job.value if math.isnan(grid[r, c]) else better(grid[r, c], job.value)
    others = [a for a in ("cell", "dataset") if len({j.axes[a] for j in jobs}) > 1]
    others += report.swept
    title = f"{report.metric} by activation x connection"
    if counts.max() > 1:
        over = ", ".join(others) if others else "repeated jobs"
        title += f"\n(best of {counts.max()} jobs per cell over {over})"
    fig, ax = plt.subplots(figsize=(1.8 + 1.5 * len(conns), 1.6 + 0.7 * len(acts)))
    cmap = plt.get_cmap("viridis" if report.mode == "max" else "viridis_r")
    cmap = cmap.with_extremes(bad="#dddddd")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto")
    ax.set_xticks(range(len(conns)), conns)
    ax.set_yticks(range(len(acts)), acts)
    ax.set_xlabel("connection")
    ax.set_ylabel("activation")
    finite = grid[np.isfinite(grid)]
    mid = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for r in range(len(acts)):
        for c in range(len(conns)):
            value = grid[r, c]
            text = "n/a" if math.isnan(value) else f"{value:.4g}"
            bright = report.mode == "max" and value > mid or report.mode == "min" and value < mid
            color = "black" if bright or math.isnan(value) else "white"
            ax.text(c, r, text, ha="center", va="center", fontsize=9, color=color)
    word = "higher" if report.mode == "max" else "lower"
    fig.colorbar(image, ax=ax, label=f"{report.metric} ({word} is better)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save_png(fig, out)


def plot_gradient_flow(report: Report, labels: dict[str, str], out: Path) -> Path | str:
    """||dL/dh_t|| over time steps t from each job's last gradient-flow record, log-y:
    one panel per job, one line per layer; vanishing gradients fall toward t = 0."""
    panels = []
    for job in report.jobs:
        records = (job.gradient_flow or {}).get("records") or []
        if records and (records[-1].get("layers") or records[-1].get("input")):
            panels.append((job, records[-1]))
    if not panels:
        return "gradient_flow.png skipped: no job has gradient_flow/gradient_flow.json"
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.5 * ncols, 3.3 * nrows), squeeze=False, sharey=True
    )
    for ax, (job, record) in zip(axes.flat, panels):
        drawn = False
        lines = [
            (layer, stats.get("dh_norm"), "-")
            for layer, stats in sorted((record.get("layers") or {}).items())
        ]
        # the callback also records dL/dx_t at the stack's input (bidirectional layers,
        # which it cannot replay step by step, leave only this line)
        lines.append(("input dL/dx_t", (record.get("input") or {}).get("dx_norm"), "--"))
        for name, values, style in lines:
            norms = np.asarray(values or [], dtype=float)
            norms[~(norms > 0)] = np.nan  # log scale: zeros and NaN are gaps
            if np.isfinite(norms).any():
                ax.plot(np.arange(len(norms)), norms, style, label=name)
                drawn = True
        if drawn:
            ax.set_yscale("log")
            ax.legend(fontsize=7)
        ax.set_title(f"{labels[job.name]} (epoch {record.get('epoch', '?')})", fontsize=9)
        ax.set_xlabel("time step t")
        ax.grid(alpha=0.3, which="both")
    for ax in axes[:, 0]:
        ax.set_ylabel("||dL/dh_t||")
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle("Gradient flow: per-step gradient norm, last record of each job")
    fig.tight_layout()
    return save_png(fig, out)
