"""``gradient_flow.png``: the gradient-flow records of one run as a figure.

Left, ‖∂L/∂h_t‖ over time steps t for every layer at the latest probe (and ‖∂L/∂x_t‖ at
the stack input, dashed); right, the first profiled layer at every probe so far, from
"before training" to the latest epoch. Log-y: vanishing gradients decay geometrically
toward t = 0, a straight falling line. Steps whose norm is exactly 0 (underflow) are
marked with triangles below the line.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from rnnlab.plots import save_png  # noqa: E402


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
    return save_png(fig, out_png)


def _log_line(ax, values: list[float], **kwargs) -> None:
    """Plot positive values on a log axis; steps whose norm is exactly 0 (an underflow
    below the float floor, or no gradient at all) are marked with triangles a decade
    below the line's smallest value instead of vanishing from the plot."""
    points = [(t, v) for t, v in enumerate(values) if v and v > 0]
    zeros = [t for t, v in enumerate(values) if v == 0]
    if points:
        xs, ys = zip(*points)
        (line,) = ax.semilogy(xs, ys, **kwargs)
        if zeros:
            ax.semilogy(
                zeros,
                [min(ys) / 10] * len(zeros),
                "v",
                ms=3,
                color=line.get_color(),
                label=f"{kwargs.get('label', '')}: {len(zeros)} steps = 0 (underflow)",
            )
