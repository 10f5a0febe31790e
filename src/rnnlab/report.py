"""``python -m rnnlab.report <multirun dir>``: an offline report of a Hydra sweep.

Reads every job of ``outputs/multiruns/<time>_<pid>/`` (``.hydra/``, ``metrics.json``,
``csv/metrics.csv``, optional ``gradient_flow/gradient_flow.json``) and writes, to
``<multirun dir>/report/`` by default: ``leaderboard.md``, ``leaderboard.csv``,
``learning_curves.png``, ``heatmap.png``, ``gradient_flow.png`` and ``report.html``, one
self-contained page (images as data URIs, no JavaScript, CSS or fonts from a network), so
a sweep can be compared on a machine without W&B or internet.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import json
import logging
import math
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rnnlab.plots import read_metrics_csv
from rnnlab.report_plots import plot_gradient_flow, plot_heatmap, plot_learning_curves

log = logging.getLogger("rnnlab.report")

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
MIN_WORDS = ("loss", "mse", "mae", "rmse", "cer", "wer", "err", "perplexity", "ppl")
# Hydra sweep values: "a,b" or range()/choice()/interval()/glob(); "[a,b]" and "{a:1,b:2}"
# are a single list or dict value.
SWEEP_SYNTAX = re.compile(r"^[^\[{].*,|^(range|choice|interval|glob)\(")


class ReportError(ValueError):
    """A user-caused problem (wrong directory, bad option), reported without a traceback."""


@dataclass
class Job:
    """One job directory of a sweep and everything read from it."""

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


# ---------------------------------------------------------------------------- reading


def _load_yaml(path: Path) -> Any:
    with open(path) as f:
        return yaml.safe_load(f)


def find_job_dirs(sweep_dir: Path) -> list[Path]:
    """Job subdirectories (those with a ``.hydra/`` record, or numeric names), in job order."""
    if not sweep_dir.is_dir():
        raise ReportError(
            f"{sweep_dir}: no such directory; expected a Hydra multirun directory "
            "(outputs/multiruns/<time>_<pid>/) holding multirun.yaml and job subdirs 0/, 1/, ..."
        )
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


def _parse_overrides(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = str(item).partition("=")
        if sep:
            out[key.lstrip("+~")] = value
    return out


def _axes(config: dict[str, Any], choices: dict[str, Any]) -> dict[str, str]:
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


def _failure_reason(job_dir: Path) -> str:
    """The last error-looking line of the job's log file(s), else a generic reason."""
    pattern = re.compile(r"Error|Exception|Traceback|Killed|\b(NaN|nan|inf)\b|\[(ERROR|CRITICAL)\]")
    for log_file in sorted(job_dir.glob("*.log")):
        try:
            lines = log_file.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in reversed(lines):
            if pattern.search(line):
                text = re.sub(r"^\[[^\]]*\]\[[^\]]*\]\[[A-Z]+\] - ", "", line.strip())
                return text[:300]
    return "no metrics.json (the job did not finish; Hydra printed its error to the console)"


def read_job(job_dir: Path) -> Job:
    """Everything the report needs from one job directory; missing files are tolerated."""
    job = Job(name=job_dir.name, path=job_dir)
    hydra_dir = job_dir / ".hydra"
    if (hydra_dir / "config.yaml").is_file():
        job.config = _load_yaml(hydra_dir / "config.yaml") or {}
    if (hydra_dir / "overrides.yaml").is_file():
        job.overrides = _parse_overrides(_load_yaml(hydra_dir / "overrides.yaml"))
    choices: dict[str, Any] = {}
    if (hydra_dir / "hydra.yaml").is_file():
        hydra_cfg = (_load_yaml(hydra_dir / "hydra.yaml") or {}).get("hydra") or {}
        choices = (hydra_cfg.get("runtime") or {}).get("choices") or {}
    job.axes = _axes(job.config, choices)
    metrics_file = job_dir / "metrics.json"
    if metrics_file.is_file():
        try:
            record = json.loads(metrics_file.read_text())
            job.metrics = {k: float(v) for k, v in (record.get("metrics") or {}).items()}
            job.epochs = record.get("epoch")
        except (ValueError, TypeError) as err:
            job.status, job.reason = "failed", f"{metrics_file}: unreadable ({err})"
    else:
        job.status, job.reason = "failed", _failure_reason(job_dir)
    if not job.config and job.status == "ok":
        job.status, job.reason = "failed", f"{hydra_dir / 'config.yaml'} is missing"
    metrics_csv = job_dir / "csv" / "metrics.csv"
    if metrics_csv.is_file():
        try:
            job.curves = read_metrics_csv(metrics_csv)
        except (ValueError, OSError) as err:
            log.warning(
                "%s: could not read (%s); no learning curve for job %s", metrics_csv, err, job.name
            )
    gf_file = job_dir / "gradient_flow" / "gradient_flow.json"
    if gf_file.is_file():
        try:
            job.gradient_flow = json.loads(gf_file.read_text())
        except ValueError as err:
            log.warning("%s: not valid JSON (%s); skipped", gf_file, err)
    return job


# ---------------------------------------------------------------------------- ranking


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
    """Best first; then jobs without the metric ("missing metric"); failed jobs last."""
    for job in jobs:
        if job.status == "failed":
            continue
        value = metric_value(job, metric, mode)
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
    failed = [j for j in jobs if j.status == "failed"]
    return ok + missing + failed


def swept_keys(sweep_dir: Path, jobs: list[Job]) -> list[str]:
    """Override keys that differ between jobs or carry sweep syntax in multirun.yaml
    (``a,b``, ``range(...)``, Optuna's ``hydra.sweeper.params``), minus the axis columns."""
    keys = {k for j in jobs for k in j.overrides}
    varying = {k for k in keys if len({j.overrides.get(k) for j in jobs}) > 1}
    multirun = sweep_dir / "multirun.yaml"
    if multirun.is_file():
        hydra_cfg = (_load_yaml(multirun) or {}).get("hydra") or {}
        task = ((hydra_cfg.get("overrides") or {}).get("task")) or []
        for key, value in _parse_overrides(task).items():
            if SWEEP_SYNTAX.search(value):
                varying.add(key)
        params = (hydra_cfg.get("sweeper") or {}).get("params") or {}
        varying.update(str(k) for k in params)
    return sorted(k for k in varying if k not in AXIS_KEYS and not k.startswith("hydra."))


def collect(sweep_dir: str | Path, metric: str | None = None, mode: str | None = None) -> Report:
    """Read a sweep directory and rank its jobs."""
    sweep_dir = Path(sweep_dir)
    jobs = [read_job(d) for d in find_job_dirs(sweep_dir)]
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
    test_keys = sorted({k for j in jobs if j.metrics for k in j.metrics if k.startswith("test/")})
    optuna = None
    if (sweep_dir / "optimization_results.yaml").is_file():
        optuna = _load_yaml(sweep_dir / "optimization_results.yaml")
    swept = swept_keys(sweep_dir, jobs)
    return Report(sweep_dir, ordered, metric, mode, swept, test_keys, optuna, notes)


# ---------------------------------------------------------------------------- leaderboard


def leaderboard_rows(report: Report) -> tuple[list[str], list[list[Any]]]:
    """Column names and raw rows (floats unformatted) of the leaderboard."""
    columns = ["rank", "job", *AXES, *report.swept, report.metric, *report.test_keys]
    columns += ["epochs", "status"]
    rows = []
    for i, job in enumerate(report.jobs, start=1):
        status = job.status if not job.reason else f"{job.status}: {job.reason}"
        rows.append(
            [
                i if job.status == "ok" else "",
                job.name,
                *(job.axes.get(a, "?") for a in AXES),
                *(job.overrides.get(k, "") for k in report.swept),
                job.value if job.value is not None else "",
                *((job.metrics or {}).get(k, "") for k in report.test_keys),
                job.epochs if job.epochs is not None else "",
                status,
            ]
        )
    return columns, rows


def _fmt(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def write_leaderboard(report: Report, out_dir: Path) -> tuple[Path, Path]:
    """leaderboard.csv (full precision) and leaderboard.md (6 significant digits)."""
    columns, rows = leaderboard_rows(report)
    csv_path = out_dir / "leaderboard.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)
    md_path = out_dir / "leaderboard.md"
    lines = [
        f"# Sweep leaderboard: {report.sweep_dir}",
        "",
        f"Ranked by `{report.metric}` ({report.mode}, best first); {len(report.ranked)} of "
        f"{len(report.jobs)} jobs ranked.",
        *(f"\n{note}." for note in report.notes),
        "",
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join("---" for _ in columns) + " |",
    ]
    for row in rows:
        cells = [_fmt(v).replace("|", "\\|").replace("\n", " ") for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    if report.optuna:
        lines += [
            "",
            f"Optuna: best_value {report.optuna.get('best_value')}, "
            f"best_params {report.optuna.get('best_params')}",
        ]
    md_path.write_text("\n".join(lines) + "\n")
    return md_path, csv_path


# ---------------------------------------------------------------------------- html


def _data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def gradient_summary(report: Report) -> list[dict[str, Any]]:
    """Per job and layer, from the last gradient-flow record: how much ||dL/dh_t|| shrinks
    from the last step to the first (orders of magnitude; vanishing when large) and the
    saturated/dead unit fractions."""
    rows = []
    for job in report.jobs:
        records = (job.gradient_flow or {}).get("records") or []
        if not records:
            continue
        for layer, stats in sorted((records[-1].get("layers") or {}).items()):
            norms = [v for v in stats.get("dh_norm") or [] if isinstance(v, (int, float))]
            decay = None
            if len(norms) > 1 and norms[0] > 0 and norms[-1] > 0:
                decay = math.log10(norms[-1] / norms[0])
            rows.append(
                {
                    "job": job.name,
                    "layer": layer,
                    "epoch": records[-1].get("epoch"),
                    "log10(|dh_T|/|dh_0|)": decay,
                    "saturated_frac": stats.get("saturated_frac"),
                    "dead_frac": stats.get("dead_frac"),
                    "weight_grad_norm": stats.get("weight_grad_norm"),
                }
            )
    return rows


def _gradient_table(report: Report) -> str:
    rows = gradient_summary(report)
    if not rows:
        return ""
    esc = html.escape
    head = "".join(f"<th>{esc(k)}</th>" for k in rows[0])
    body = "".join(
        "<tr>"
        + "".join(f"<td>{esc(_fmt(v) if v is not None else '')}</td>" for v in r.values())
        + "</tr>"
        for r in rows
    )
    return (
        "<h2>Gradient flow summary (last record)</h2><p>log10(|dh_T|/|dh_0|): orders of "
        "magnitude the gradient loses from the last time step back to the first.</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def write_html(report: Report, out_dir: Path, images: dict[str, Path], notes: list[str]) -> Path:
    """One page with everything inline: it opens offline and can be mailed as one file."""
    esc = html.escape
    columns, rows = leaderboard_rows(report)
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for job, row in zip(report.jobs, rows):
        cls = "" if job.status == "ok" else ' class="bad"'
        if job is report.best:
            cls = ' class="best"'
        body.append(f"<tr{cls}>" + "".join(f"<td>{esc(_fmt(v))}</td>" for v in row) + "</tr>")
    best = report.best
    summary = (
        f"Best: job {esc(best.name)} ({esc(report.label(best))}), "
        f"{esc(report.metric)} = {best.value:.6g}"
        if best
        else "No job finished with the target metric."
    )
    figures = "".join(
        f'<h2>{esc(title)}</h2><img alt="{esc(title)}" src="{_data_uri(path)}">'
        for title, path in images.items()
    )
    notes_html = "".join(f"<li>{esc(n)}</li>" for n in notes)
    gradients = _gradient_table(report)
    optuna = ""
    if report.optuna:
        optuna = (
            f"<p>Optuna: best_value {esc(str(report.optuna.get('best_value')))}, "
            f"best_params {esc(str(report.optuna.get('best_params')))}</p>"
        )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>rnnlab sweep report</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
th, td {{ border: 1px solid #bbb; padding: 0.25em 0.5em; text-align: left; }}
th {{ background: #eee; }} tr.best {{ background: #dfd; }} tr.bad {{ color: #a33; }}
img {{ max-width: 100%; display: block; margin-bottom: 1em; }}
</style></head><body>
<h1>Sweep report</h1>
<p><code>{esc(str(report.sweep_dir))}</code>: {len(report.jobs)} jobs; ranked by
<code>{esc(report.metric)}</code> ({esc(report.mode)}, best first).</p>
<p><strong>{summary}</strong></p>{optuna}
<h2>Leaderboard</h2>
<table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>
{figures}
{gradients}
{f"<h2>Notes</h2><ul>{notes_html}</ul>" if notes else ""}
</body></html>
"""
    path = out_dir / "report.html"
    path.write_text(page)
    return path


# ---------------------------------------------------------------------------- entry


def build_report(
    sweep_dir: str | Path,
    metric: str | None = None,
    mode: str | None = None,
    out_dir: str | Path | None = None,
) -> tuple[Report, Path]:
    """Collect the sweep, write every output; return the report and report.html's path."""
    report = collect(sweep_dir, metric, mode)
    out = Path(out_dir) if out_dir else report.sweep_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    write_leaderboard(report, out)
    images: dict[str, Path] = {}
    notes: list[str] = list(report.notes)
    labels = {j.name: report.label(j) for j in report.jobs}
    plots = (
        ("Learning curves", plot_learning_curves, "learning_curves.png"),
        ("Heat map", plot_heatmap, "heatmap.png"),
        ("Gradient flow", plot_gradient_flow, "gradient_flow.png"),
    )
    for title, plot, filename in plots:
        result = plot(report, labels, out / filename)
        if isinstance(result, Path):
            images[title] = result
        else:
            notes.append(result)
            log.info("%s", result)
    return report, write_html(report, out, images, notes)


def main(argv: list[str] | None = None) -> int:
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
    best = report.best
    if best is None:
        print(f"best: none (no job has a finite {report.metric})")
    else:
        overrides = " ".join(f"{k}={v}" for k, v in best.overrides.items())
        axes = " ".join(f"{a}={best.axes[a]}" for a in AXES)
        print(
            f"best: job {best.name}: {axes}, {report.metric}={best.value:.6g} ({report.mode})\n"
            f"  rerun: python -m rnnlab.train {overrides}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
