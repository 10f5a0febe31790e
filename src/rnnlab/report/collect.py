"""Reading a Hydra multirun directory: one :class:`~rnnlab.report.jobs.Job` per job.

A sweep ``outputs/multiruns/<time>_<pid>/`` holds ``multirun.yaml`` and one subdir per
job (``0/``, ``1/``, ...) with ``.hydra/{config,overrides,hydra}.yaml``, and, for
finished jobs, ``metrics.json``, ``csv/metrics.csv`` and optionally
``gradient_flow/gradient_flow.json``. Missing files are tolerated: a job without
``metrics.json`` is ``failed``, with the last error line of its log as the reason; a job
whose ``metrics.json`` records ``"status": "diverged"`` is ``diverged``.

:func:`rank_jobs` (ranking, notes, configurations) is shared with the DVC-experiment
reader, :mod:`rnnlab.report.dvc`.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import yaml

from rnnlab.metrics import read_metrics_csv
from rnnlab.report.configs import build_configs
from rnnlab.report.jobs import AXIS_KEYS, Job, Report, ReportError
from rnnlab.report.rank import default_metric, guess_mode, rank

log = logging.getLogger(__name__)

# Hydra sweep values: "a,b" or range()/choice()/interval()/glob(); "[a,b]" and "{a:1,b:2}"
# are a single list or dict value.
SWEEP_SYNTAX = re.compile(r"^[^\[{].*,|^(range|choice|interval|glob)\(")
ERROR_LINE = re.compile(r"Error|Exception|Traceback|Killed|\b(NaN|nan|inf)\b|\[(ERROR|CRITICAL)\]")
NOT_A_SWEEP = (
    "expected a Hydra multirun directory (outputs/multiruns/<time>_<pid>/) holding "
    "multirun.yaml and job subdirs 0/, 1/, ..."
)


def _load_yaml(path: Path) -> Any:
    with open(path) as f:
        return yaml.safe_load(f)


def find_job_dirs(sweep_dir: Path) -> list[Path]:
    """Job subdirectories (those with a ``.hydra/`` record, or numeric names), in job order."""
    if not sweep_dir.is_dir():
        raise ReportError(f"{sweep_dir}: no such directory; {NOT_A_SWEEP}")
    if (sweep_dir / ".hydra").is_dir() and not (sweep_dir / "multirun.yaml").is_file():
        raise ReportError(
            f"{sweep_dir}: this is a single run (it has .hydra/ but no multirun.yaml); "
            "rnnlab.report expects a multirun directory whose subdirs 0/, 1/, ... are the jobs"
        )
    dirs = [
        d
        for d in sweep_dir.iterdir()
        if d.is_dir() and d.name != "report" and ((d / ".hydra").is_dir() or d.name.isdigit())
    ]
    if not dirs:
        raise ReportError(
            f"{sweep_dir}: no job directories found; expected a Hydra multirun directory "
            "with multirun.yaml and one subdir per job (0/, 1/, ...), each with "
            ".hydra/config.yaml and, for finished jobs, metrics.json"
        )
    return sorted(
        dirs, key=lambda d: (not d.name.isdigit(), int(d.name) if d.name.isdigit() else 0, d.name)
    )


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """Hydra override strings (``key=value``, ``+key=...``, ``~key=...``) -> {key: value}."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = str(item).partition("=")
        if sep:
            out[key.lstrip("+~")] = value
    return out


def job_axes(config: dict[str, Any], choices: dict[str, Any]) -> dict[str, str]:
    """cell / activation / connection / dataset from the composed config (Hydra's group
    choices as fallback), so dotted overrides such as ``model.activation=relu`` count too."""
    model = config.get("model") or {}
    data = config.get("data") or {}
    connection = model.get("connection")
    if isinstance(connection, dict):
        connection = connection.get("name")
    dataset = data.get("name") or choices.get("data")
    if not dataset and data.get("_target_"):
        dataset = str(data["_target_"]).rsplit(".", 1)[-1]
    values = {
        "cell": model.get("cell") or choices.get("model/cell"),
        "activation": model.get("activation") or choices.get("model/activation"),
        "connection": connection or choices.get("model/connection"),
        "dataset": dataset,
    }
    return {k: str(v) if v is not None else "?" for k, v in values.items()}


def failure_reason(job_dir: Path) -> str:
    """The last error-looking line of the job's log file(s), else a generic reason."""
    for log_file in sorted(job_dir.glob("*.log")):
        try:
            lines = log_file.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in reversed(lines):
            if ERROR_LINE.search(line):
                text = re.sub(r"^\[[^\]]*\]\[[^\]]*\]\[[A-Z]+\] - ", "", line.strip())
                return text[:300]
    return "no metrics.json (the job did not finish; Hydra printed its error to the console)"


def _read_hydra(job: Job) -> None:
    hydra_dir = job.path / ".hydra"
    if (hydra_dir / "config.yaml").is_file():
        job.config = _load_yaml(hydra_dir / "config.yaml") or {}
    if (hydra_dir / "overrides.yaml").is_file():
        items = _load_yaml(hydra_dir / "overrides.yaml") or []
        job.overrides = parse_overrides(items)
        job.args = [str(item) for item in items if "=" in str(item)]
    choices: dict[str, Any] = {}
    if (hydra_dir / "hydra.yaml").is_file():
        hydra_cfg = (_load_yaml(hydra_dir / "hydra.yaml") or {}).get("hydra") or {}
        choices = (hydra_cfg.get("runtime") or {}).get("choices") or {}
    job.axes = job_axes(job.config, choices)


def apply_run_status(job: Job, record: dict[str, Any], where: Path) -> None:
    """The ``status`` train.py records in metrics.json (rnnlab.run_record): ``completed``
    (or absent: older runs) is ok, ``diverged`` is diverged, anything else failed."""
    status = record.get("status", "completed")
    if status == "diverged":
        job.status = "diverged"
        job.reason = (
            f"training diverged at epoch {record.get('epoch', '?')} (status in {where}); "
            "metrics are from the last good epoch"
        )
    elif status != "completed":
        job.status, job.reason = "failed", f"status {status!r} in {where}"


def _read_metrics(job: Job) -> None:
    metrics_file = job.path / "metrics.json"
    if metrics_file.is_file():
        try:
            record = json.loads(metrics_file.read_text())
            job.metrics = {k: float(v) for k, v in (record.get("metrics") or {}).items()}
            job.epochs = record.get("epoch")
            apply_run_status(job, record, metrics_file)
        except (ValueError, TypeError, AttributeError) as err:
            job.status, job.reason = "failed", f"{metrics_file}: unreadable ({err})"
    else:
        job.status, job.reason = "failed", failure_reason(job.path)
    if not job.config and job.status == "ok":
        job.status, job.reason = "failed", f"{job.path / '.hydra' / 'config.yaml'} is missing"


def _read_logs(job: Job) -> None:
    metrics_csv = job.path / "csv" / "metrics.csv"
    if metrics_csv.is_file():
        try:
            job.curves = read_metrics_csv(metrics_csv)
        except (ValueError, OSError) as err:
            log.warning(
                "%s: could not read (%s); no learning curve for job %s", metrics_csv, err, job.name
            )
    gf_file = job.path / "gradient_flow" / "gradient_flow.json"
    if gf_file.is_file():
        try:
            job.gradient_flow = json.loads(gf_file.read_text())
        except ValueError as err:
            log.warning("%s: not valid JSON (%s); skipped", gf_file, err)


def read_job(job_dir: Path) -> Job:
    """Everything the report needs from one job directory; missing files are tolerated."""
    job = Job(name=job_dir.name, path=job_dir)
    _read_hydra(job)
    _read_metrics(job)
    _read_logs(job)
    return job


def swept_keys(sweep_dir: Path, jobs: list[Job]) -> list[str]:
    """Override keys that differ between jobs or carry sweep syntax in multirun.yaml
    (``a,b``, ``range(...)``, Optuna's ``hydra.sweeper.params``), minus the axis columns."""
    keys = {k for j in jobs for k in j.overrides}
    varying = {k for k in keys if len({j.overrides.get(k) for j in jobs}) > 1}
    multirun = sweep_dir / "multirun.yaml"
    if multirun.is_file():
        hydra_cfg = (_load_yaml(multirun) or {}).get("hydra") or {}
        task = ((hydra_cfg.get("overrides") or {}).get("task")) or []
        for key, value in parse_overrides(task).items():
            if SWEEP_SYNTAX.search(value):
                varying.add(key)
        params = (hydra_cfg.get("sweeper") or {}).get("params") or {}
        varying.update(str(k).lstrip("+~") for k in params)  # keys as parse_overrides
    return sorted(k for k in varying if k not in AXIS_KEYS and not k.startswith("hydra."))


def collect(sweep_dir: str | Path, metric: str | None = None, mode: str | None = None) -> Report:
    """Read a sweep directory and rank its jobs (``metric``/``mode``: see rank.py)."""
    sweep_dir = Path(sweep_dir)
    jobs = [read_job(d) for d in find_job_dirs(sweep_dir)]
    optuna = None
    if (sweep_dir / "optimization_results.yaml").is_file():
        optuna = _load_yaml(sweep_dir / "optimization_results.yaml")
    return rank_jobs(sweep_dir, jobs, swept_keys(sweep_dir, jobs), metric, mode, optuna)


def rank_jobs(
    sweep_dir: Path,
    jobs: list[Job],
    swept: list[str],
    metric: str | None,
    mode: str | None,
    optuna: dict[str, Any] | None = None,
    source: str = "hydra",
) -> Report:
    """Rank read jobs, group them into configurations and note what the reader should
    know (a derived metric, the ranked metric's column not repeated among test keys)."""
    if mode is not None and mode not in ("max", "min"):
        raise ReportError(f"--mode={mode!r} is not valid; valid: max, min")
    metric = metric or default_metric(jobs)
    mode = mode or guess_mode(metric, jobs)
    ordered = rank(jobs, metric, mode)
    notes = []
    derived = [j.name for j in jobs if j.value is not None and metric not in (j.metrics or {})]
    if derived:
        notes.append(
            f"{metric} is not stored in metrics.json of job(s) {', '.join(derived)}: there it is "
            f"the best epoch of {metric.removesuffix('_best')} in csv/metrics.csv"
        )
    # the ranked metric has its own column: a test metric ranked on is not repeated
    test_keys = sorted(
        {k for j in jobs if j.metrics for k in j.metrics if k.startswith("test/") and k != metric}
    )
    diverged = [j.name for j in ordered if j.status == "diverged"]
    if diverged:
        notes.append(
            f"job(s) {', '.join(diverged)} diverged (metrics.json status): listed below every "
            "finished job, unranked, whatever their last good epoch scored"
        )
    configs = build_configs(ordered, test_keys, mode)
    return Report(
        sweep_dir, ordered, metric, mode, swept, test_keys, optuna, notes, configs, source
    )
