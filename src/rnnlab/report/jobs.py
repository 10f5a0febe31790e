"""What the sweep report is about: one :class:`Job` per job directory (or DVC
experiment), the :class:`Config` that groups jobs differing only in ``seed``, the
ranked :class:`Report`, and :class:`ReportError` for problems a user caused."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnlab.stats import Comparison, Summary

# The four design axes every leaderboard shows as columns.
AXES = ("cell", "activation", "connection", "dataset")
# Override keys already shown as an axis column (group and dotted spellings).
AXIS_KEYS = {
    "model/cell",
    "model.cell",
    "model/activation",
    "model.activation",
    "model/connection",
    "model.connection.name",
    "data",
    "data.name",
}
# Keys that name a random seed, not a configuration: jobs that differ only in these
# are repeats of one configuration.
SEED_KEYS = frozenset({"seed"})
# Leaderboard order of job (and configuration) statuses: ranked jobs first, then jobs
# without the metric, then diverged (metrics.json "status": "diverged") and failed jobs.
STATUS_ORDER = {"ok": 0, "missing metric": 1, "diverged": 2, "failed": 3}


class ReportError(ValueError):
    """A user-caused problem (wrong directory, bad option), reported without a traceback."""


@dataclass
class Job:
    """One job directory of a sweep (or one DVC experiment) and everything read from it.

    ``status`` is ``ok``, ``missing metric`` (finished, but without the ranked metric),
    ``diverged`` (its ``metrics.json`` says so: the training loss went non-finite; the
    metrics are those of the last good epoch) or ``failed`` (no readable metrics.json,
    or a non-finite metric); ``reason`` says why. ``curves`` are the per-epoch series
    of ``csv/metrics.csv``: ``{key: [(epoch, v)]}``.
    """

    name: str
    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)  # the overrides as typed (``+key=v``)
    axes: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] | None = None
    epochs: int | None = None
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    gradient_flow: dict[str, Any] | None = None
    value: float | None = None
    status: str = "ok"
    reason: str = ""

    @property
    def monitor(self) -> str | None:
        return (self.config.get("task") or {}).get("monitor")

    @property
    def mode(self) -> str | None:
        return (self.config.get("task") or {}).get("mode")

    @property
    def seed(self) -> str:
        for key in SEED_KEYS:
            if key in self.overrides:
                return self.overrides[key]
        return str(self.config.get("seed", "?"))

    def rerun_args(self, *, seed: bool = True) -> str:
        """The job's overrides as typed on the command line (``+`` / ``~`` kept), without
        the seed when ``seed`` is False: what reruns it."""
        keep = [a for a in self.args if seed or a.partition("=")[0].lstrip("+~") not in SEED_KEYS]
        return " ".join(keep)

    def config_key(self) -> tuple[tuple[str, str], ...]:
        """What identifies the job's configuration: its overrides without the seed."""
        return tuple(sorted((k, v) for k, v in self.overrides.items() if k not in SEED_KEYS))


@dataclass
class Config:
    """The jobs of one configuration (same overrides but the seed), in job order.

    ``summary`` is the ranked metric over the seeds whose status is ``ok``
    (:func:`rnnlab.stats.summarize`), ``metrics`` the same for every test metric;
    ``status`` is the worst status of its jobs (one diverged seed marks the whole
    configuration, which then ranks below every configuration whose seeds all
    finished); ``comparison`` is Welch's t-test of the best configuration against this
    one (None for the best itself and for unranked configurations).
    """

    jobs: list[Job]
    summary: Summary
    metrics: dict[str, Summary]
    status: str = "ok"
    reason: str = ""
    comparison: Comparison | None = None

    @property
    def first(self) -> Job:
        return self.jobs[0]

    @property
    def n(self) -> int:
        return len(self.jobs)

    @property
    def values(self) -> list[float]:
        return [j.value for j in self.jobs if j.status == "ok" and j.value is not None]


@dataclass
class Report:
    """The collected sweep: jobs in leaderboard order plus what was ranked and how.

    ``configs`` groups the jobs by configuration (ranked: status, then mean);
    ``grouped`` is True when some configuration ran under more than one seed, and
    only then do the outputs switch to one row per configuration (a sweep with one
    seed per configuration keeps its one row per job).
    """

    sweep_dir: Path
    jobs: list[Job]
    metric: str
    mode: str
    swept: list[str]
    test_keys: list[str]
    optuna: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    configs: list[Config] = field(default_factory=list)
    source: str = "hydra"
    # rnnlab.report.importance.Importance, set by build_report (None: < 2 varied keys)
    importance: Any = None

    @property
    def ranked(self) -> list[Job]:
        return [j for j in self.jobs if j.status == "ok"]

    @property
    def best(self) -> Job | None:
        return self.ranked[0] if self.ranked else None

    @property
    def grouped(self) -> bool:
        """Some configuration ran under two or more different seeds."""
        return any(len({j.seed for j in c.jobs}) > 1 for c in self.configs)

    @property
    def ranked_configs(self) -> list[Config]:
        return [c for c in self.configs if c.status == "ok" and c.values]

    @property
    def best_config(self) -> Config | None:
        ranked = self.ranked_configs
        return ranked[0] if ranked else None

    @property
    def config_keys(self) -> list[str]:
        """The swept keys that tell configurations apart (the swept keys but the seed)."""
        return [k for k in self.swept if k not in SEED_KEYS]

    def varying_axes(self) -> list[str]:
        return [a for a in AXES if len({j.axes.get(a) for j in self.jobs}) > 1]

    def label(self, job: Job) -> str:
        """Short name of a job's configuration: the axes and keys that vary in the sweep."""
        parts = [job.axes.get(a, "?") for a in self.varying_axes()]
        parts += [f"{k}={job.overrides.get(k, '-')}" for k in self.swept]
        return f"#{job.name} " + " ".join(parts) if parts else f"#{job.name}"

    def config_label(self, config: Config) -> str:
        """Short name of a configuration: what varies, without job number and seed."""
        job = config.first
        parts = [job.axes.get(a, "?") for a in self.varying_axes()]
        parts += [f"{k}={job.overrides.get(k, '-')}" for k in self.config_keys]
        return " ".join(parts) if parts else "(one configuration)"
