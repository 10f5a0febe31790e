"""The report's tables: the leaderboard (CSV at full precision, Markdown at 6
significant digits), the per-configuration leaderboard of a sweep with several seeds
per configuration (``configs.csv``; first in leaderboard.md), the hyper-parameter
importance and marginal means (``importance.md``), and the per-layer gradient-flow
summary.

A sweep with one seed per configuration writes exactly the per-job leaderboard; with
repeated seeds, leaderboard.csv keeps one row per job (plus the ``config`` rank each
job belongs to) and configs.csv has one row per configuration.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from rnnlab.io import atomic_write_text
from rnnlab.report.jobs import AXES, Config, Report
from rnnlab.stats import Summary

STATS = ("mean", "std", "ci95_low", "ci95_high", "min", "max")


def fmt(value: Any) -> str:
    """A table cell: floats to 6 significant digits, anything else as ``str``."""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def leaderboard_rows(report: Report) -> tuple[list[str], list[list[Any]]]:
    """Column names and raw rows (floats unformatted) of the leaderboard."""
    columns = ["rank", "job", *AXES, *report.swept, report.metric, *report.test_keys]
    columns += ["epochs", "status"]
    config_of = {}
    if report.grouped:
        columns.insert(2, "config")
        config_of = {id(j): i for i, c in enumerate(report.configs, start=1) for j in c.jobs}
    rows = []
    for i, job in enumerate(report.jobs, start=1):
        status = job.status if not job.reason else f"{job.status}: {job.reason}"
        row = [
            i if job.status == "ok" else "",
            job.name,
            *(job.axes.get(a, "?") for a in AXES),
            *(job.overrides.get(k, "") for k in report.swept),
            job.value if job.value is not None else "",
            *((job.metrics or {}).get(k, "") for k in report.test_keys),
            job.epochs if job.epochs is not None else "",
            status,
        ]
        if report.grouped:
            row.insert(2, config_of[id(job)])
        rows.append(row)
    return columns, rows


def _stats(s: Summary | None) -> list[float | str]:
    if s is None or not s.n:
        return [""] * len(STATS)
    return [s.mean, s.std, s.ci_low, s.ci_high, s.min, s.max]


def config_rows(report: Report) -> tuple[list[str], list[list[Any]]]:
    """One row per configuration (full precision): n, then mean/std/95% CI/min/max of the
    ranked metric and every test metric over the finished seeds, then Welch's test of
    the best configuration against this one, status and job numbers."""
    metrics = [report.metric, *report.test_keys]
    columns = ["rank", "config", *AXES, *report.config_keys, "n", "seeds"]
    columns += [f"{m} {s}" for m in metrics for s in STATS]
    columns += ["diff_vs_best", "p_vs_best", "p_holm_vs_best", "cohens_d", "verdict"]
    columns += ["status", "jobs"]
    rows = []
    rank = 0
    for i, config in enumerate(report.configs, start=1):
        ranked = config.status == "ok" and bool(config.values)
        rank += ranked
        first = config.first
        row: list[Any] = [rank if ranked else "", i]
        row += [first.axes.get(a, "?") for a in AXES]
        row += [first.overrides.get(k, "") for k in report.config_keys]
        row += [config.summary.n, " ".join(j.seed for j in config.jobs)]
        row += _stats(config.summary)
        for key in report.test_keys:
            row += _stats(config.metrics.get(key))
        row += _comparison(report, config)
        status = config.status if not config.reason else f"{config.status}: {config.reason}"
        row += [status, " ".join(j.name for j in config.jobs)]
        rows.append(row)
    return columns, rows


def _comparison(report: Report, config: Config) -> list[Any]:
    c = config.comparison
    if config is report.best_config:
        return ["", "", "", "", "best"]
    if c is None:
        return ["", "", "", "", ""]
    return [c.diff, c.p, c.p_decisive, c.cohens_d, c.verdict()]


def _pm(s: Summary | None) -> tuple[str, str, str]:
    """``mean ± std``, ``[low, high]`` and ``min–max`` cells of a summary."""
    if s is None or not s.n:
        return "", "", ""
    if s.n == 1:
        return fmt(s.mean), "", fmt(s.mean)
    ci = f"[{s.ci_low:.4g}, {s.ci_high:.4g}]" if math.isfinite(s.ci_low) else ""
    return f"{s.mean:.4g} ± {s.std:.2g}", ci, f"{s.min:.4g}–{s.max:.4g}"


def config_display(report: Report) -> tuple[list[str], list[list[str]]]:
    """The configuration leaderboard for people (Markdown and HTML): mean ± std, 95% CI
    and min–max per metric, Welch's verdict against the best."""
    metrics = [report.metric, *report.test_keys]
    columns = ["rank", *AXES, *report.config_keys, "n"]
    for m in metrics:
        columns += [f"{m} mean ± std", f"{m} 95% CI", f"{m} min–max"]
    columns += ["vs best: p (Welch)", "p (Holm)", "Cohen's d", "verdict", "status"]
    _, raw = config_rows(report)
    rows = []
    for config, r in zip(report.configs, raw):
        first = config.first
        row = [fmt(r[0]), *(first.axes.get(a, "?") for a in AXES)]
        row += [first.overrides.get(k, "") for k in report.config_keys]
        row.append(f"{config.summary.n}/{config.n}")
        row += [*_pm(config.summary)]
        for key in report.test_keys:
            row += [*_pm(config.metrics.get(key))]
        c = config.comparison
        row += [fmt(c.p), fmt(c.p_decisive), fmt(c.cohens_d)] if c is not None else [""] * 3
        row.append(r[-3])
        row.append(r[-2])
        rows.append(row)
    return columns, rows


def importance_tables(report: Report) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, columns, rows) of the fANOVA ranking and of each key's marginal means."""
    imp = report.importance
    if imp is None:
        return []
    tables = []
    if imp.scores:
        rows = [[k, f"{v:.3f}"] for k, v in imp.scores.items()]
        tables.append(
            ("fANOVA importance (share of explained variance)", ["key", "importance"], rows)
        )
    for key, values in imp.marginals.items():
        rows = [[v, str(s.n), *_pm(s)] for v, s in values]
        title = f"Marginal means of {report.metric} by {key} (pooled over other keys and seeds)"
        tables.append((title, [key, "n", "mean ± std", "95% CI", "min–max"], rows))
    return tables


def _md_table(columns: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    for row in rows:
        cells = [fmt(v).replace("|", "\\|").replace("\n", " ") for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _markdown(report: Report, columns: list[str], rows: list[list[Any]]) -> str:
    lines = [
        f"# Sweep leaderboard: {report.sweep_dir}",
        "",
        f"Ranked by `{report.metric}` ({report.mode}, best first); {len(report.ranked)} of "
        f"{len(report.jobs)} jobs ranked.",
        *(f"\n{note}." for note in report.notes),
        "",
    ]
    if report.grouped:
        lines += [
            f"## Configurations ({len(report.configs)}; mean over seeds)",
            "",
            CONFIG_LEGEND,
            "",
            *_md_table(*config_display(report)),
            "",
            "## Jobs",
            "",
        ]
    lines += _md_table(columns, rows)
    if report.optuna:
        lines += [
            "",
            f"Optuna: best_value {report.optuna.get('best_value')}, "
            f"best_params {report.optuna.get('best_params')}",
        ]
    return "\n".join(lines) + "\n"


CONFIG_LEGEND = (
    "n: finished seeds / seeds. 95% CI: mean ± t(0.975, n-1)·std/√n. vs best: Welch's "
    "two-sided t-test of the best configuration against this one and Cohen's d (pooled "
    "std); p ≥ 0.05 means not distinguishable at these n, not equal. A configuration with a "
    "diverged or failed seed is listed below every configuration whose seeds all finished"
)


def _csv_text(columns: list[str], rows: list[list[Any]]) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue()


def write_leaderboard(report: Report, out_dir: Path) -> tuple[Path, Path]:
    """leaderboard.csv (full precision) and leaderboard.md (6 significant digits); with
    repeated seeds also configs.csv (one row per configuration, full precision)."""
    columns, rows = leaderboard_rows(report)
    csv_path = out_dir / "leaderboard.csv"
    atomic_write_text(csv_path, _csv_text(columns, rows))
    if report.grouped:
        atomic_write_text(out_dir / "configs.csv", _csv_text(*config_rows(report)))
    md_path = out_dir / "leaderboard.md"
    atomic_write_text(md_path, _markdown(report, columns, rows))
    if report.importance is not None:
        atomic_write_text(out_dir / "importance.md", _importance_markdown(report))
    return md_path, csv_path


def _importance_markdown(report: Report) -> str:
    """importance.md: the fANOVA ranking (if computed) and every key's marginal means."""
    lines = [f"# Hyper-parameter importance: {report.sweep_dir}", ""]
    lines.append(
        f"Target `{report.metric}` ({report.mode}); keys: {', '.join(report.importance.keys)} "
        "(seed is not a hyper-parameter)."
    )
    for title, cols, rows in importance_tables(report):
        lines += ["", f"## {title}", "", *_md_table(cols, rows)]
    if report.importance.note:
        lines += ["", report.importance.note + "."]
    return "\n".join(lines) + "\n"


def gradient_summary(report: Report) -> list[dict[str, Any]]:
    """Per job and layer, from the last gradient-flow record: how much ||dL/dh_t|| shrinks
    from the last step to the first, ``log10(|dh_T| / |dh_0|)`` (orders of magnitude;
    vanishing when large), and the saturated/dead unit fractions."""
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
