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

MAX_GRADIENT_PANELS = 24


def curve_key(job: Job, metric: str) -> str | None:
    """The validation series to draw: the ranked metric without ``_best`` when it is a
    per-epoch series, else the job's monitor. A test metric is measured once, after
    training (a single point), so for ``--metric test/acc`` the monitor's curve is drawn."""
    base = metric.removesuffix("_best")
    candidates = (job.monitor,) if base.startswith("test/") else (base, job.monitor)
    for key in candidates:
        if key and len(job.curves.get(key) or []) > 1:
            return key
    for key in candidates:
        if key and job.curves.get(key):
            return key
    return None


def loss_axis(series: list[list[float]]) -> tuple[str, float | None]:
    """The train-loss panel's y scale and clip: ``log`` when every value is positive
    (else ``linear``), and an upper limit of 10x the median over runs of each run's
    maximum when some run goes above it (a diverging run would otherwise flatten every
    other curve); None when nothing needs clipping."""
    finite = [[v for v in s if math.isfinite(v)] for s in series]
    finite = [s for s in finite if s]
    if not finite:
        return "linear", None
    scale = "log" if all(v > 0 for s in finite for v in s) else "linear"
    peaks = sorted(max(s) for s in finite)
    median = float(np.median(peaks))
    top = 10 * median if median > 0 else None
    return scale, top if top is not None and peaks[-1] > top else None


def _series(job: Job, key: str | None) -> tuple[list[int], list[float]]:
    if not key or not job.curves.get(key):
        return [], []
    xs, ys = zip(*job.curves[key])
    return list(xs), [float(y) for y in ys]


def _train_key(job: Job) -> str | None:
    return next((k for k in ("train/loss_epoch", "train/loss") if job.curves.get(k)), None)


def _band(jobs: list[Job], key_of) -> tuple[np.ndarray, ...] | None:
    """Per epoch over the seeds that reached it: epochs, mean, min, max (finite only)."""
    by_epoch: dict[int, list[float]] = {}
    for job in jobs:
        for x, y in zip(*_series(job, key_of(job))):
            if math.isfinite(y):
                by_epoch.setdefault(int(x), []).append(y)
    if not by_epoch:
        return None
    epochs = np.array(sorted(by_epoch))
    values = [by_epoch[e] for e in epochs]
    return (
        epochs,
        np.array([np.mean(v) for v in values]),
        np.array([min(v) for v in values]),
        np.array([max(v) for v in values]),
    )


def plot_learning_curves(
    report: Report, labels: dict[str, str], out: Path
) -> tuple[Path, str] | str:
    """Validation curve (left) and train loss (right) per epoch: one line per job, or,
    when configurations ran under several seeds, one mean line per configuration with
    a min-max band over its seeds. Returns the PNG and its caption."""
    jobs = [j for j in report.jobs if j.curves]
    if not jobs:
        return "learning_curves.png skipped: no job has csv/metrics.csv"
    fig, (ax_val, ax_train) = plt.subplots(1, 2, figsize=(12, 4.5))
    val_keys = {k for j in jobs if (k := curve_key(j, report.metric))}
    if report.grouped:
        groups = [
            (report.config_label(c), [j for j in c.jobs if j.curves], c.status)
            for c in report.configs
        ]
        groups = [g for g in groups if g[1]]
    else:
        groups = [(labels[j.name], [j], j.status) for j in jobs]
    colors = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
    train_series = []
    for i, (label, members, status) in enumerate(groups):
        color, style = colors(i % colors.N), "-" if status == "ok" else ":"
        for ax, key_of in ((ax_val, lambda j: curve_key(j, report.metric)), (ax_train, _train_key)):
            band = _band(members, key_of)
            if band is None:
                continue
            xs, mean, low, high = band
            ax.plot(
                xs,
                mean,
                style,
                marker="o",
                ms=3,
                color=color,
                label=label if ax is ax_val else None,
            )
            if len(members) > 1:
                ax.fill_between(xs, low, high, color=color, alpha=0.2, linewidth=0)
        train_series += [_series(j, _train_key(j))[1] for j in members]
    val_title = ", ".join(sorted(val_keys)) or "validation metric (not logged)"
    base = report.metric.removesuffix("_best")
    if base not in val_keys and val_keys:
        val_title += f"\n(the monitored validation curve; {base} has no per-epoch curve)"
    ax_val.set_title(val_title, fontsize=10)
    scale, top = loss_axis(train_series)
    ax_train.set_yscale(scale)
    train_title = "train/loss" + (" (log scale)" if scale == "log" else "")
    if top is not None:
        ax_train.set_ylim(top=top)
        train_title += f"\nclipped at {top:.3g} (10x the median run's maximum)"
    ax_train.set_title(train_title, fontsize=10)
    for ax in (ax_val, ax_train):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3, which="both")
    if ax_val.get_legend_handles_labels()[0]:
        fig.legend(loc="center right", fontsize=8, frameon=False)
    what = f"{len(groups)} configurations x seeds" if report.grouped else f"{len(jobs)} jobs"
    fig.suptitle(f"Learning curves ({what}; dotted: failed, diverged or unranked)")
    fig.tight_layout(rect=(0, 0, 0.8, 1))
    caption = _curves_caption(report, val_keys, scale, top)
    return save_png(fig, out), caption


def _curves_caption(report: Report, val_keys: set[str], scale: str, top: float | None) -> str:
    parts = []
    if report.grouped:
        parts.append(
            "One line per configuration: the mean over its seeds at each epoch; the band "
            "spans the min-max over the seeds that reached that epoch"
        )
    base = report.metric.removesuffix("_best")
    if val_keys and base not in val_keys:
        parts.append(
            f"Left: {', '.join(sorted(val_keys))}, the monitored validation metric per epoch "
            f"({base} is measured once, after training, so it has no curve)"
        )
    loss = "Right: train loss on a log axis" if scale == "log" else "Right: train loss"
    if top is not None:
        loss += f", y clipped at {top:.3g} (10x the median run's maximum) so a diverging run does not flatten the others"
    parts.append(loss)
    return ". ".join(parts) + "."


def plot_heatmap(report: Report, labels: dict[str, str], out: Path) -> Path | str:
    """The ranked metric over activation (rows) x connection (columns).

    When other axes or swept keys vary too, each cell holds the best job of that
    activation and connection; the title names what was aggregated over.
    """
    jobs = report.ranked
    if not jobs:
        return f"heatmap.png skipped: no job has a finite {report.metric}"
    # one entry per cell candidate: (axes, value, std); configurations when grouped
    if report.grouped:
        entries = [
            (c.first.axes, c.summary.mean, c.summary.std, c.summary.n)
            for c in report.ranked_configs
        ]
        swept, unit = report.config_keys, "configurations"
    else:
        entries = [(j.axes, j.value, None, 1) for j in jobs]
        swept, unit = report.swept, "jobs"
    if not entries:
        return f"heatmap.png skipped: no configuration has a finite {report.metric} in every seed"
    acts = sorted({e[0]["activation"] for e in entries})
    conns = sorted({e[0]["connection"] for e in entries})
    grid = np.full((len(acts), len(conns)), np.nan)
    stds = np.full_like(grid, np.nan)
    counts = np.zeros_like(grid, dtype=int)
    sign = 1.0 if report.mode == "max" else -1.0
    for axes, value, std, _ in entries:
        r, c = acts.index(axes["activation"]), conns.index(axes["connection"])
        counts[r, c] += 1
        if math.isnan(grid[r, c]) or sign * value > sign * grid[r, c]:
            grid[r, c], stds[r, c] = value, np.nan if std is None else std
    others = [a for a in ("cell", "dataset") if len({e[0][a] for e in entries}) > 1]
    others += swept
    title = f"{report.metric} by activation x connection"
    if report.grouped:
        seeds = sorted({e[3] for e in entries})
        title += f"\n(mean ± std over {'/'.join(map(str, seeds))} seeds)"
    if counts.max() > 1:
        over = ", ".join(others) if others else f"repeated {unit}"
        title += f"\n(best of {counts.max()} {unit} per cell over {over})"
    height = 1.6 + 0.7 * len(acts) if not report.grouped else 1.9 + 0.9 * len(acts)
    fig, ax = plt.subplots(figsize=(1.8 + 1.5 * len(conns), height))
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
            if report.grouped and not math.isnan(stds[r, c]):
                text += f"\n± {stds[r, c]:.2g}"
            bright = report.mode == "max" and value > mid or report.mode == "min" and value < mid
            color = "black" if bright or math.isnan(value) else "white"
            ax.text(c, r, text, ha="center", va="center", fontsize=9, color=color)
    word = "higher" if report.mode == "max" else "lower"
    fig.colorbar(image, ax=ax, label=f"{report.metric} ({word} is better)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save_png(fig, out)


def plot_gradient_flow(report: Report, labels: dict[str, str], out: Path) -> tuple[Path, str] | str:
    """||dL/dh_t|| over time steps t from each job's last gradient-flow record, log-y:
    one panel per job, one line per layer; vanishing gradients fall toward t = 0."""
    panels = []
    # with repeated seeds, one panel per configuration (its first seed with a record):
    # the seeds of one configuration share a profile shape, and 50 panels take seconds
    candidates = [c.jobs for c in report.configs] if report.grouped else [[j] for j in report.jobs]
    for jobs in candidates:
        for job in jobs:
            records = (job.gradient_flow or {}).get("records") or []
            if records and (records[-1].get("layers") or records[-1].get("input")):
                panels.append((job, records[-1]))
                break
    if not panels:
        return "gradient_flow.png skipped: no job has gradient_flow/gradient_flow.json"
    shown = len(panels)
    panels = panels[:MAX_GRADIENT_PANELS]
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.5 * ncols, 3.3 * nrows), squeeze=False, sharey=True
    )
    floor = _floor_level(panels)
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
            zeros = floor_steps(values or [])
            norms[~(norms > 0)] = np.nan  # log scale: zeros and NaN are gaps...
            if np.isfinite(norms).any():
                (line,) = ax.plot(np.arange(len(norms)), norms, style, label=name)
                drawn = True
                if zeros and floor is not None:  # ...but zeros are marked, not hidden
                    ax.plot(
                        zeros,
                        [floor] * len(zeros),
                        "v",
                        ms=4,
                        color=line.get_color(),
                        label=f"{name}: {len(zeros)} steps = 0",
                    )
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
    title = "Gradient flow: per-step gradient norm, last record of each " + (
        "configuration (its first seed)" if report.grouped else "job"
    )
    if shown > len(panels):
        title += f" (first {len(panels)} of {shown}, in leaderboard order)"
    fig.suptitle(title)
    fig.tight_layout()
    caption = (
        "||dL/dh_t|| per time step (log axis), from each job's last probe. Triangles at the "
        "bottom mark steps whose norm is exactly 0: an underflow below the float floor "
        "(or no gradient at all), not a missing value."
    )
    return save_png(fig, out), caption


def floor_steps(values: list) -> list[int]:
    """Time steps whose recorded norm is exactly 0 (an underflow; a log axis hides it)."""
    return [t for t, v in enumerate(values) if isinstance(v, (int, float)) and v == 0]


def _floor_level(panels: list) -> float | None:
    """Where to draw the zero markers: a decade below the smallest positive norm."""
    positive = [
        v
        for _, record in panels
        for values in [
            *((s.get("dh_norm") or []) for s in (record.get("layers") or {}).values()),
            (record.get("input") or {}).get("dx_norm") or [],
        ]
        for v in values
        if isinstance(v, (int, float)) and v > 0 and math.isfinite(v)
    ]
    return min(positive) / 10 if positive else None


def plot_importance(report: Report, labels: dict[str, str], out: Path) -> tuple[Path, str] | None:
    """fANOVA importance of each varied key (horizontal bars, most important on top)."""
    imp = report.importance
    if imp is None or not imp.scores:
        return None  # not applicable: the importance section says why, if anything
    keys = list(imp.scores)[::-1]
    fig, ax = plt.subplots(figsize=(6.5, 1.2 + 0.45 * len(keys)))
    ax.barh(keys, [imp.scores[k] for k in keys], color="#4c72b0")
    for y, key in enumerate(keys):
        ax.text(imp.scores[key], y, f" {imp.scores[key]:.2f}", va="center", fontsize=8)
    ax.set_xlim(0, max(1.0, max(imp.scores.values()) * 1.15))
    ax.set_xlabel(f"fANOVA importance for {report.metric} (sums to 1)")
    ax.set_title(f"Hyper-parameter importance ({len(report.ranked)} finished jobs)", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    caption = (
        "fANOVA (optuna.importance, FanovaImportanceEvaluator(seed=0)): the share of the "
        f"variance of {report.metric} explained by each key alone, every finished job one "
        "observation; the seed is not a key (its noise is residual variance)."
    )
    return save_png(fig, out), caption
