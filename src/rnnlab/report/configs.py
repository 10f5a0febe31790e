"""Grouping a sweep's jobs into configurations: jobs that differ only in ``seed``.

For the ranked metric ``m`` and the ``n`` seeds of a configuration whose jobs finished
(status ``ok``) with values ``m_1..m_n``, the row reports (:func:`rnnlab.stats.summarize`)
``n``, the mean, the sample std, the 95 % confidence interval
``mean ± t_{0.975,n-1}·std/√n`` and min/max; the same for every test metric.

Order: configurations whose seeds all finished come first, best mean first (ties keep
job order); then, by the worst status among their seeds, those with a seed missing the
metric, diverged or failed, each marked with how many of its seeds did so.

The best configuration is compared with every other ranked one by Welch's two-sided
t-test (:func:`rnnlab.stats.welch`): the difference of means, p and Cohen's d.
"""

from __future__ import annotations

from rnnlab.report.jobs import STATUS_ORDER, Config, Job
from rnnlab.stats import summarize, welch, with_holm


def group_jobs(jobs: list[Job]) -> list[list[Job]]:
    """Jobs with the same :meth:`Job.config_key`, each group in job order, groups in
    order of their first job."""
    groups: dict[tuple, list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.config_key(), []).append(job)
    return list(groups.values())


def _status(jobs: list[Job]) -> tuple[str, str]:
    worst = max(jobs, key=lambda j: STATUS_ORDER.get(j.status, len(STATUS_ORDER))).status
    if worst == "ok":
        return "ok", ""
    bad = [j for j in jobs if j.status == worst]
    seeds = ", ".join(f"{j.name} (seed {j.seed})" for j in bad)
    first = bad[0].reason
    reason = f"{len(bad)} of {len(jobs)} seeds {worst}: job {seeds}"
    return worst, f"{reason}; {first}" if first else reason


def build_configs(jobs: list[Job], test_keys: list[str], mode: str) -> list[Config]:
    """The ranked configurations of ``jobs`` (already ranked by ``rank.rank``, which set
    each job's ``value`` and status); the best compared with each runner-up."""
    order = {id(j): i for i, j in enumerate(sorted(jobs, key=_job_number))}
    configs = []
    for members in group_jobs(sorted(jobs, key=_job_number)):
        ok = [j for j in members if j.status == "ok" and j.value is not None]
        metrics = {
            k: summarize([j.metrics[k] for j in ok if j.metrics and k in j.metrics])
            for k in test_keys
        }
        status, reason = _status(members)
        configs.append(Config(members, summarize([j.value for j in ok]), metrics, status, reason))
    sign = -1.0 if mode == "max" else 1.0

    def key(c: Config) -> tuple:
        mean = c.summary.mean if c.summary.n else float("inf")
        finite = mean == mean  # NaN mean (no finished seed) sorts last in its status
        return (
            STATUS_ORDER.get(c.status, len(STATUS_ORDER)),
            not finite,
            sign * mean if finite else 0.0,
            order[id(c.first)],
        )

    configs.sort(key=key)
    ranked = [c for c in configs if c.status == "ok" and c.values]
    if ranked:
        best = ranked[0]
        tests = with_holm([welch(best.values, other.values) for other in ranked[1:]])
        for other, comparison in zip(ranked[1:], tests):
            other.comparison = comparison
    return configs


def _job_number(job: Job) -> tuple:
    return (not job.name.isdigit(), int(job.name) if job.name.isdigit() else 0, job.name)
