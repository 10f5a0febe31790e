"""What the sweep report is about: one :class:`Job` per job directory, the ranked
:class:`Report`, and :class:`ReportError` for problems a user caused."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


class ReportError(ValueError):
    """A user-caused problem (wrong directory, bad option), reported without a traceback."""


@dataclass
class Job:
    """One job directory of a sweep and everything read from it.

    ``status`` is ``ok``, ``missing metric`` (finished, but without the ranked metric)
    or ``failed`` (no readable metrics.json, or a non-finite metric); ``reason`` says why.
    ``curves`` are the per-epoch series of ``csv/metrics.csv``: ``{key: [(epoch, v)]}``.
    """

    name: str
    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, str] = field(default_factory=dict)
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


@dataclass
class Report:
    """The collected sweep: jobs in leaderboard order plus what was ranked and how."""

    sweep_dir: Path
    jobs: list[Job]
    metric: str
    mode: str
    swept: list[str]
    test_keys: list[str]
    optuna: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ranked(self) -> list[Job]:
        return [j for j in self.jobs if j.status == "ok"]

    @property
    def best(self) -> Job | None:
        return self.ranked[0] if self.ranked else None

    def label(self, job: Job) -> str:
        """Short name of a job's configuration: the axes and keys that vary in the sweep."""
        varying = [a for a in AXES if len({j.axes.get(a) for j in self.jobs}) > 1]
        parts = [job.axes.get(a, "?") for a in varying]
        parts += [f"{k}={job.overrides.get(k, '-')}" for k in self.swept]
        return f"#{job.name} " + " ".join(parts) if parts else f"#{job.name}"
