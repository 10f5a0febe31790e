"""Ranking a sweep's jobs: which metric, which direction, and the leaderboard order.

The default metric is ``<task.monitor>_best`` (the best validation value of each run);
the direction is ``task.mode`` when the metric is the jobs' monitor, else guessed from
its name (losses and error rates are minimised). Jobs with a finite value come first,
best first (ties keep job order); then jobs without the metric; then diverged jobs
(``metrics.json`` ``"status": "diverged"``, whatever their last good epoch scored) and
failed jobs last, unranked.
"""

from __future__ import annotations

import logging
import math
from collections import Counter

from rnnlab.report.jobs import Job, ReportError

log = logging.getLogger(__name__)

MIN_WORDS = ("loss", "mse", "mae", "rmse", "cer", "wer", "err", "perplexity", "ppl")


def guess_mode(metric: str, jobs: list[Job]) -> str:
    """``task.mode`` when the metric is the jobs' monitor (or its ``_best``), else by name."""
    base = metric.removesuffix("_best")
    for job in jobs:
        if job.monitor and base in (job.monitor, job.monitor.removesuffix("_best")) and job.mode:
            return job.mode
    name = base.rsplit("/", 1)[-1].lower()
    return "min" if any(w in name for w in MIN_WORDS) else "max"


def default_metric(jobs: list[Job]) -> str:
    """``<monitor>_best`` (the best validation value of the run), the most common monitor."""
    monitors = Counter(j.monitor for j in jobs if j.monitor)
    if not monitors:
        raise ReportError(
            f"{jobs[0].path.parent}: no job has task.monitor in .hydra/config.yaml; "
            "pass --metric KEY (e.g. --metric val/acc_best)"
        )
    monitor = monitors.most_common(1)[0][0]
    if len(monitors) > 1:
        log.warning("jobs monitor different metrics %s; ranking by %s", dict(monitors), monitor)
    best = monitor if monitor.endswith("_best") else f"{monitor}_best"
    has_best = any(
        j.metrics and (best in j.metrics or monitor.removesuffix("_best") in j.curves) for j in jobs
    )
    return best if has_best else monitor


def metric_value(job: Job, metric: str, mode: str) -> float | None:
    """The metric from metrics.json; a ``<key>_best`` not stored there is the best epoch
    of ``<key>`` in csv/metrics.csv (regression logs ``val/loss`` without a tracker)."""
    if job.metrics and metric in job.metrics:
        return job.metrics[metric]
    base = metric.removesuffix("_best")
    if metric.endswith("_best") and job.curves.get(base):
        values = [v for _, v in job.curves[base] if math.isfinite(v)]
        if values:
            return max(values) if mode == "max" else min(values)
        return float("nan")
    return None


def rank(jobs: list[Job], metric: str, mode: str) -> list[Job]:
    """Best first; then jobs without the metric ("missing metric"); then diverged jobs;
    failed jobs last.

    Sets each job's ``value`` and, where it has no finite metric, ``status``/``reason``.
    A diverged job keeps its (finite) value for display but is never ranked.
    """
    for job in jobs:
        if job.status == "failed":
            continue
        value = metric_value(job, metric, mode)
        if job.status == "diverged":
            if value is not None and math.isfinite(value):
                job.value = value
            continue
        if value is None:
            job.status, job.reason = "missing metric", f"{metric} not in metrics.json"
        elif not math.isfinite(value):
            job.value = value
            job.status, job.reason = "failed", f"{metric} is {value}"
        else:
            job.value = value
    sign = -1.0 if mode == "max" else 1.0
    # stable sort: ties keep job order (jobs arrive sorted by job number)
    ok = sorted((j for j in jobs if j.status == "ok"), key=lambda j: sign * j.value)
    missing = [j for j in jobs if j.status == "missing metric"]
    diverged = [j for j in jobs if j.status == "diverged"]
    failed = [j for j in jobs if j.status == "failed"]
    return ok + missing + diverged + failed
