"""``python -m rnnlab.report <sweep> --wandb``: the report's tables, once, as W&B tables.

One W&B run per call, ``job_type="report"``, in the sweep's W&B group
(``sweep-<multirun dir name>``, the group train.py's jobs share; ``dvc-<repo name>``
for DVC experiments), holding ``report/leaderboard`` (one row per job), with repeated
seeds ``report/configs`` (one row per configuration: n, mean, std, 95% CI, min/max,
Welch's p and Cohen's d against the best), and ``report/importance`` when fANOVA ran;
the best configuration's mean goes to the run summary. The mode follows
:func:`rnnlab.loggers.resolve_mode` (``auto``: online only with W&B credentials, else
offline; ``WANDB_MODE`` wins), so the report never blocks on a login; the offline run is
under ``<report dir>/wandb/`` (``wandb sync`` uploads it).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

from rnnlab.loggers import resolve_mode
from rnnlab.report.jobs import Report
from rnnlab.report.leaderboard import config_rows, leaderboard_rows

log = logging.getLogger(__name__)


def _cell(value: Any) -> Any:
    """W&B tables type-check columns: blanks are None, numbers float, anything else str."""
    if value == "" or value is None:
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(float(value)) else None
    return str(value)


def _table(columns: list[str], rows: list[list[Any]]):
    import wandb

    return wandb.Table(
        columns=columns, data=[[_cell(v) for v in r] for r in rows], allow_mixed_types=True
    )


def group_name(report: Report) -> str:
    prefix = "sweep" if report.source == "hydra" else "dvc"
    return f"{prefix}-{report.sweep_dir.resolve().name}"


def log_report(report: Report, out_dir: Path, project: str = "rnnlab") -> Path | None:
    """Log the report's tables to one new W&B run; its directory, or None if disabled."""
    import wandb

    mode = resolve_mode("auto")
    if mode == "disabled":
        log.info("W&B disabled (WANDB_MODE): report tables not logged")
        return None
    os.environ["WANDB_MODE"] = mode
    out_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project=project,
        dir=str(out_dir),
        group=group_name(report),
        job_type="report",
        name=f"report {report.sweep_dir.name}",
        config={"metric": report.metric, "mode": report.mode, "jobs": len(report.jobs)},
        mode=mode,
        reinit="finish_previous",
    )
    try:
        tables = {"report/leaderboard": _table(*leaderboard_rows(report))}
        if report.grouped:
            tables["report/configs"] = _table(*config_rows(report))
        imp = report.importance
        if imp is not None and imp.scores:
            tables["report/importance"] = _table(
                ["key", "importance"], [[k, v] for k, v in imp.scores.items()]
            )
        run.log(tables)
        best = report.best_config
        if best is not None and best.summary.n:
            run.summary[f"best/{report.metric}/mean"] = best.summary.mean
            run.summary[f"best/{report.metric}/std"] = best.summary.std
            run.summary["best/config"] = report.config_label(best)
        run_dir = Path(run.dir).parent
    finally:
        run.finish()
    return run_dir
