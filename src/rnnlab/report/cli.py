"""``build_report`` (collect, then write every output) and the ``python -m rnnlab.report``
command line around it.

Sources: a Hydra multirun directory (``python -m rnnlab.report <multirun dir>``) or a
set of DVC experiments (``python -m rnnlab.report --dvc-exps [REPO]``, also picked when
the directory is a DVC repository without ``multirun.yaml``; see
:mod:`rnnlab.report.dvc`). ``--wandb`` logs the report's tables once to W&B
(:mod:`rnnlab.report.wandb_table`; offline unless the machine has W&B credentials).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from rnnlab.report.collect import collect
from rnnlab.report.importance import importance
from rnnlab.report.jobs import AXES, Report, ReportError
from rnnlab.report.leaderboard import write_leaderboard
from rnnlab.report.page import write_html
from rnnlab.report.plots import (
    plot_gradient_flow,
    plot_heatmap,
    plot_importance,
    plot_learning_curves,
)

log = logging.getLogger("rnnlab.report")

# (title in report.html, figure function, file name); a figure function returns the
# PNG path (or path and caption), a note saying why it drew nothing, or None when the
# figure does not apply to this sweep.
FIGURES = (
    ("Learning curves", plot_learning_curves, "learning_curves.png"),
    ("Heat map", plot_heatmap, "heatmap.png"),
    ("Gradient flow", plot_gradient_flow, "gradient_flow.png"),
    ("Hyper-parameter importance", plot_importance, "importance.png"),
)


def is_dvc_repo(path: Path) -> bool:
    return (path / "dvc.yaml").is_file() and not (path / "multirun.yaml").is_file()


def build_report(
    sweep_dir: str | Path,
    metric: str | None = None,
    mode: str | None = None,
    out_dir: str | Path | None = None,
    *,
    dvc_exps: bool | None = None,
    dataset: str | None = None,
) -> tuple[Report, Path]:
    """Collect the sweep (or, with ``dvc_exps`` or a DVC repository as ``sweep_dir``,
    the DVC experiments, of ``dataset`` if given), write every output to ``out_dir``
    (default ``<sweep_dir>/report``, ``<repo>/outputs/dvc_report`` for DVC); return the
    report and report.html's path."""
    sweep_dir = Path(sweep_dir)
    if dvc_exps or (dvc_exps is None and is_dvc_repo(sweep_dir)):
        from rnnlab.report.dvc import collect_dvc

        report = collect_dvc(sweep_dir, metric, mode, dataset=dataset)
        default_out = report.sweep_dir / "outputs" / "dvc_report"
    else:
        report = collect(sweep_dir, metric, mode)
        default_out = report.sweep_dir / "report"
    return report, write_report(report, Path(out_dir) if out_dir else default_out)


def build_dvc_reports(
    repo: str | Path,
    metric: str | None = None,
    mode: str | None = None,
    out_dir: str | Path | None = None,
) -> list[tuple[str | None, Report, Path]]:
    """The DVC experiments' report, one per dataset when they trained several (the
    default pipeline trains three, each with its own monitor and metrics): ``(dataset,
    report, report.html)`` each, in ``<out>/<dataset>/`` (``<out>`` for one dataset)."""
    from rnnlab.report.dvc import collect_dvc, dvc_datasets, read_dvc_jobs

    read = read_dvc_jobs(repo)
    root = read[0]
    out = Path(out_dir) if out_dir else root / "outputs" / "dvc_report"
    datasets = dvc_datasets(read[1])
    if len(datasets) <= 1:
        report = collect_dvc(repo, metric, mode, read=read)
        return [(datasets[0] if datasets else None, report, write_report(report, out))]
    built = []
    for name in datasets:
        report = collect_dvc(repo, metric, mode, dataset=name, read=read)
        built.append((name, report, write_report(report, out / name)))
    return built


def write_report(report: Report, out: Path) -> Path:
    """Every table and figure of ``report`` into ``out``; report.html's path."""
    report.importance = importance(report)
    out.mkdir(parents=True, exist_ok=True)
    write_leaderboard(report, out)
    images: dict[str, Path] = {}
    captions: dict[str, str] = {}
    notes: list[str] = list(report.notes)
    labels = {j.name: report.label(j) for j in report.jobs}
    for title, plot, filename in FIGURES:
        result = plot(report, labels, out / filename)
        if result is None:
            continue
        if isinstance(result, tuple):
            result, captions[title] = result
        if isinstance(result, Path):
            images[title] = result
        else:
            notes.append(result)
            log.info("%s", result)
    return write_html(report, out, images, notes, captions)


def _print_best(report: Report) -> None:
    best = report.best
    if best is None:
        print(f"best: none (no job has a finite {report.metric})")
        return
    config = report.best_config
    if report.grouped and config is not None:
        s = config.summary
        seeds = ",".join(j.seed for j in config.jobs)
        print(
            f"best configuration: {report.config_label(config)}: {report.metric}="
            f"{s.mean:.6g} ± {s.std:.2g} over {s.n} seeds ({report.mode}); jobs "
            f"{' '.join(j.name for j in config.jobs)}"
        )
        runner = report.ranked_configs[1] if len(report.ranked_configs) > 1 else None
        if runner is not None and runner.comparison is not None:
            print(f"  vs runner-up {report.config_label(runner)}: {runner.comparison.verdict()}")
        if report.source == "hydra":
            rerun = config.first.rerun_args(seed=False)
            print(f"  rerun: python -m rnnlab.train -m {rerun} seed={seeds}")
        return
    axes = " ".join(f"{a}={best.axes[a]}" for a in AXES)
    print(f"best: job {best.name}: {axes}, {report.metric}={best.value:.6g} ({report.mode})")
    if report.source == "hydra":
        print(f"  rerun: python -m rnnlab.train {best.rerun_args()}")


def main(argv: list[str] | None = None) -> int:
    """The CLI: 0 on success, 2 (and ``error: ...`` on stderr) on a :class:`ReportError`."""
    parser = argparse.ArgumentParser(
        prog="python -m rnnlab.report",
        description="Offline report of a Hydra multirun sweep or of DVC experiments: "
        "leaderboard (mean ± std over seeds), plots, importance, one HTML page.",
    )
    parser.add_argument(
        "sweep_dir",
        nargs="?",
        help="multirun directory, e.g. outputs/multiruns/<time>_<pid> (or, with --dvc-exps, "
        "the DVC repository; default .)",
    )
    parser.add_argument(
        "--dvc-exps",
        action="store_true",
        help="read the DVC experiments of the repository (dvc exp show --json) instead",
    )
    parser.add_argument(
        "--metric", help="metric key to rank by (default: <task.monitor>_best, e.g. val/acc_best)"
    )
    parser.add_argument("--mode", choices=("max", "min"), help="default: task.mode or by name")
    parser.add_argument("--out", help="output directory (default: <sweep_dir>/report)")
    parser.add_argument(
        "--wandb",
        action="store_true",
        help="log the leaderboard tables once to W&B (job_type=report, the sweep's group; "
        "offline unless this machine has W&B credentials)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.sweep_dir is None and not args.dvc_exps:
        parser.error("the multirun directory is required (or --dvc-exps [REPO])")
    target = args.sweep_dir or "."
    try:
        if args.dvc_exps or is_dvc_repo(Path(target)):
            built = build_dvc_reports(target, args.metric, args.mode, args.out)
        else:
            built = [(None, *build_report(target, args.metric, args.mode, args.out))]
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for name, report, page in built:
        print(f"report{f' ({name})' if len(built) > 1 else ''}: {page}")
        _print_best(report)
    if args.wandb:
        from rnnlab.report.wandb_table import log_report

        for _, report, page in built:
            run_dir = log_report(report, page.parent)
            print(f"W&B: report tables logged ({run_dir})")
    return 0
