"""Reading a set of DVC experiments: one :class:`~rnnlab.report.jobs.Job` per experiment
and dataset.

``dvc exp show --json`` lists the baseline commit and its experiments, each with the
``params.yaml`` it ran with and the metrics files dvc.yaml declares:
``results/<dataset>/train/metrics.json`` (train.py's record: ``status``, ``metrics``,
``epoch``) and ``results/<dataset>/eval/metrics.json`` (rnnlab.evaluate's test metrics,
flat). Each (experiment, dataset) becomes a job whose "overrides" are the flattened
params (``model.*``, ``optim.*``, ``seed``, and ``pipeline.train``, the dataset's extra
train overrides), so experiments that differ only in ``seed`` form one configuration::

    dvc exp run --queue -S seed=0 ; dvc exp run --queue -S seed=1 ; dvc queue start -j 1
    python -m rnnlab.report --dvc-exps .

The workspace row is skipped when other rows exist (after ``dvc exp run`` it is a copy
of the last experiment); a row without metrics (a baseline never reproduced) is skipped;
a row with a DVC error and no metrics is a failed job. ``task.monitor``/``task.mode``
come from ``conf/data/<dataset>.yaml`` of the repository. Learning curves and gradient
flow are not part of ``dvc exp show``: the report notes their figures as skipped.
A saved ``dvc exp show --json`` output file can be passed instead of the repository.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from rnnlab.report.collect import apply_run_status, job_axes, rank_jobs
from rnnlab.report.jobs import AXIS_KEYS, SEED_KEYS, Job, Report, ReportError

PARAMS_FILE = "params.yaml"


def exp_show(repo: Path) -> list[dict[str, Any]]:
    """``dvc exp show --json`` of ``repo`` (the current baseline and its experiments)."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    cmd = [sys.executable, "-m", "dvc", "exp", "show", "--json"]
    try:
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ReportError(f"{repo}: could not run `dvc exp show --json` ({err})") from None
    if proc.returncode != 0:
        raise ReportError(
            f"{repo}: `dvc exp show --json` failed ({proc.returncode}): "
            f"{proc.stderr.strip()[-500:]}; is it a DVC repository with a git commit?"
        )
    return json.loads(proc.stdout or "[]")


def experiment_rows(shown: list[dict[str, Any]]) -> list[tuple[str, dict, str | None]]:
    """``(name, data, error)`` of every row of ``dvc exp show --json`` (baselines and
    their experiments, depth first)."""
    rows: list[tuple[str, dict, str | None]] = []

    def visit(node: dict[str, Any]) -> None:
        if "data" in node or "rev" in node:
            rev = str(node.get("rev", "?"))
            name = node.get("name") or (rev if rev == "workspace" else rev[:7])
            error = node.get("error")
            if isinstance(error, dict):
                error = error.get("msg") or json.dumps(error)
            rows.append((name, node.get("data") or {}, error))
        for exp in node.get("experiments") or []:
            for rev in exp.get("revs") or [exp]:
                visit(rev)

    for node in shown:
        visit(node)
    named = [r for r in rows if r[0] != "workspace"]
    return named if any(r[1].get("metrics") for r in named) else rows


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Nested params -> ``{"model.cell": "lstm", ...}`` (values as strings)."""
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for k, v in value.items():
            out |= flatten(v, f"{prefix}{k}.")
        return out
    return {prefix.rstrip("."): "null" if value is None else str(value)}


def _dataset(path: str) -> tuple[str, str]:
    """``results/<dataset>/<train|eval>/metrics.json`` -> (dataset, stage)."""
    parts = Path(path).parts
    if len(parts) >= 3 and parts[-2] in ("train", "eval"):
        return parts[-3], parts[-2]
    return Path(path).parent.name or "?", "train"


def _task(repo: Path, dataset: str, metrics: dict[str, float]) -> dict[str, Any]:
    """task.monitor/mode from conf/data/<dataset>.yaml; else the one ``val/*_best`` key."""
    conf = repo / "conf" / "data" / f"{dataset}.yaml"
    if conf.is_file():
        task = (yaml.safe_load(conf.read_text()) or {}).get("task") or {}
        if task.get("monitor"):
            return {"monitor": task["monitor"], "mode": task.get("mode")}
    best = [k for k in metrics if k.startswith("val/") and k.endswith("_best")]
    return {"monitor": best[0].removesuffix("_best")} if len(best) == 1 else {}


def jobs_from_row(repo: Path, name: str, data: dict, error: str | None) -> list[Job]:
    """One job per dataset whose metrics.json the experiment has."""
    params = ((data.get("params") or {}).get(PARAMS_FILE) or {}).get("data") or {}
    files: dict[str, dict[str, Any]] = {}
    for path, content in (data.get("metrics") or {}).items():
        if not (content or {}).get("data"):  # not produced in this revision
            continue
        dataset, stage = _dataset(path)
        files.setdefault(dataset, {})[stage] = (path, content["data"])
    if not files:
        if not error:
            return []
        job = Job(name=name, path=repo, status="failed", reason=f"dvc: {error}")
        job.overrides = _overrides(params, None)
        return [job]
    jobs = []
    for dataset, stages in sorted(files.items()):
        job = Job(name=name if len(files) == 1 else f"{name}:{dataset}", path=repo)
        metrics: dict[str, float] = {}
        if "train" in stages:
            where, record = stages["train"]
            metrics |= _numbers(record.get("metrics") or {})
            job.epochs = record.get("epoch")
            apply_run_status(job, record, Path(where))
        if "eval" in stages:
            metrics |= _numbers(stages["eval"][1])
        job.metrics = metrics
        job.overrides = _overrides(params, dataset)
        job.config = {
            "model": params.get("model") or {},
            "seed": params.get("seed"),
            "data": {"name": dataset},
            "task": _task(repo, dataset, metrics),
        }
        job.axes = job_axes(job.config, {})
        jobs.append(job)
    return jobs


def _numbers(record: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in record.items() if isinstance(v, (int, float)) and k != "epoch"}


def _overrides(params: dict[str, Any], dataset: str | None) -> dict[str, str]:
    pipeline = params.get("pipeline") or {}
    out = flatten({k: v for k, v in params.items() if k != "pipeline"})
    item = pipeline.get(dataset) if dataset else None
    if isinstance(item, dict) and item.get("train"):
        out["pipeline.train"] = str(item["train"])
    return out


def read_dvc_jobs(repo: str | Path) -> tuple[Path, list[Job]]:
    """``(root, jobs)``: one job per experiment and dataset of ``repo`` (or of a saved
    ``dvc exp show --json``)."""
    repo = Path(repo)
    if repo.is_file():
        shown, root = json.loads(repo.read_text()), repo.parent
    elif (repo / "dvc.yaml").is_file():
        shown, root = exp_show(repo), repo
    else:
        raise ReportError(
            f"{repo}: not a DVC repository (no dvc.yaml) nor a `dvc exp show --json` file"
        )
    jobs = [j for row in experiment_rows(shown) for j in jobs_from_row(root, *row)]
    if not jobs:
        raise ReportError(
            f"{repo}: no DVC experiment with metrics; run some first, e.g. "
            "`dvc exp run --queue -S seed=0 ; dvc exp run --queue -S seed=1 ; dvc queue start`"
        )
    return root, jobs


def job_dataset(job: Job) -> str | None:
    return ((job.config or {}).get("data") or {}).get("name")


def dvc_datasets(jobs: list[Job]) -> list[str]:
    """The datasets the experiments trained, in name order (a failed experiment with no
    metrics belongs to none)."""
    return sorted({d for j in jobs if (d := job_dataset(j))})


def collect_dvc(
    repo: str | Path,
    metric: str | None = None,
    mode: str | None = None,
    dataset: str | None = None,
    read: tuple[Path, list[Job]] | None = None,
) -> Report:
    """Read and rank the DVC experiments of ``repo`` (or a saved ``dvc exp show --json``);
    with ``dataset``, only that dataset's jobs (each dataset has its own monitor: the
    pipeline's datasets are compared with themselves, never with each other)."""
    root, jobs = read or read_dvc_jobs(repo)
    if dataset is not None:
        jobs = [j for j in jobs if job_dataset(j) in (dataset, None)]
    keys = {k for j in jobs for k in j.overrides}
    swept = sorted(
        k for k in keys if len({j.overrides.get(k) for j in jobs}) > 1 and k not in AXIS_KEYS
    )
    report = rank_jobs(root, jobs, swept, metric, mode, source="dvc")
    if all(k in SEED_KEYS for k in swept) and len(jobs) > 1:
        report.notes.append(f"{len(jobs)} DVC experiments that differ only in seed")
    return report
