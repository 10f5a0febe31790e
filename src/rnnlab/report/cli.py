"""``build_report`` (collect, then write every output) and the ``python -m rnnlab.report``
command line around it."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from rnnlab.report.collect import collect
from rnnlab.report.jobs import AXES, Report, ReportError
from rnnlab.report.leaderboard import write_leaderboard
from rnnlab.report.page import write_html
from rnnlab.report.plots import plot_gradient_flow, plot_heatmap, plot_learning_curves

log = logging.getLogger("rnnlab.report")

# (title in report.html, figure function, file name)
FIGURES = (
    ("Learning curves", plot_learning_curves, "learning_curves.png"),
    ("Heat map", plot_heatmap, "heatmap.png"),
    ("Gradient flow", plot_gradient_flow, "gradient_flow.png"),
)


def build_report(
    sweep_dir: str | Path,
    metric: str | None = None,
    mode: str | None = None,
    out_dir: str | Path | None = None,
) -> tuple[Report, Path]:
    """Collect the sweep, write every output to ``out_dir`` (default
    ``<sweep_dir>/report``); return the report and report.html's path."""
    report = collect(sweep_dir, metric, mode)
    out = Path(out_dir) if out_dir else report.sweep_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    write_leaderboard(report, out)
    images: dict[str, Path] = {}
    notes: list[str] = list(report.notes)
    labels = {j.name: report.label(j) for j in report.jobs}
    for title, plot, filename in FIGURES:
        result = plot(report, labels, out / filename)
        if isinstance(result, Path):
            images[title] = result
        else:
            notes.append(result)
            log.info("%s", result)
    return report, write_html(report, out, images, notes)


def _print_best(report: Report) -> None:
    best = report.best
    if best is None:
        print(f"best: none (no job has a finite {report.metric})")
        return
    overrides = " ".join(f"{k}={v}" for k, v in best.overrides.items())
    axes = " ".join(f"{a}={best.axes[a]}" for a in AXES)
    print(
        f"best: job {best.name}: {axes}, {report.metric}={best.value:.6g} ({report.mode})\n"
        f"  rerun: python -m rnnlab.train {overrides}"
    )


def main(argv: list[str] | None = None) -> int:
    """The CLI: 0 on success, 2 (and ``error: ...`` on stderr) on a :class:`ReportError`."""
    parser = argparse.ArgumentParser(
        prog="python -m rnnlab.report",
        description="Offline report of a Hydra multirun sweep: leaderboard, plots, one HTML page.",
    )
    parser.add_argument("sweep_dir", help="multirun directory, e.g. outputs/multiruns/<time>_<pid>")
    parser.add_argument(
        "--metric", help="metric key to rank by (default: <task.monitor>_best, e.g. val/acc_best)"
    )
    parser.add_argument("--mode", choices=("max", "min"), help="default: task.mode or by name")
    parser.add_argument("--out", help="output directory (default: <sweep_dir>/report)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        report, page = build_report(args.sweep_dir, args.metric, args.mode, args.out)
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"report: {page}")
    _print_best(report)
    return 0
