"""The report's tables: the leaderboard (CSV at full precision, Markdown at 6
significant digits) and the per-layer gradient-flow summary."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from rnnlab.io import atomic_write_text
from rnnlab.report.jobs import AXES, Report


def fmt(value: Any) -> str:
    """A table cell: floats to 6 significant digits, anything else as ``str``."""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


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


def _markdown(report: Report, columns: list[str], rows: list[list[Any]]) -> str:
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
        cells = [fmt(v).replace("|", "\\|").replace("\n", " ") for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    if report.optuna:
        lines += [
            "",
            f"Optuna: best_value {report.optuna.get('best_value')}, "
            f"best_params {report.optuna.get('best_params')}",
        ]
    return "\n".join(lines) + "\n"


def write_leaderboard(report: Report, out_dir: Path) -> tuple[Path, Path]:
    """leaderboard.csv (full precision) and leaderboard.md (6 significant digits)."""
    columns, rows = leaderboard_rows(report)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(columns)
    writer.writerows(rows)
    csv_path = out_dir / "leaderboard.csv"
    atomic_write_text(csv_path, buffer.getvalue())
    md_path = out_dir / "leaderboard.md"
    atomic_write_text(md_path, _markdown(report, columns, rows))
    return md_path, csv_path


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
