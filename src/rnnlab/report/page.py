"""``report.html``: the whole report on one self-contained page.

Images are inlined as ``data:`` URIs; the page has no scripts, stylesheets, fonts or
links from a network, so it opens offline and can be mailed as one file.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from rnnlab.io import atomic_write_text
from rnnlab.report.jobs import Report
from rnnlab.report.leaderboard import (
    CONFIG_LEGEND,
    config_display,
    fmt,
    gradient_summary,
    importance_tables,
    leaderboard_rows,
)

STYLE = """body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; text-align: left; }
th { background: #eee; } tr.best { background: #dfd; } tr.bad { color: #a33; }
img { max-width: 100%; display: block; margin-bottom: 0.3em; }
p.caption { font-size: 0.85em; color: #555; margin-top: 0; margin-bottom: 1.2em; }"""

esc = html.escape


def data_uri(png: Path) -> str:
    """A PNG file as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def _gradient_table(report: Report) -> str:
    rows = gradient_summary(report)
    if not rows:
        return ""
    head = "".join(f"<th>{esc(k)}</th>" for k in rows[0])
    body = "".join(
        "<tr>"
        + "".join(f"<td>{esc(fmt(v) if v is not None else '')}</td>" for v in r.values())
        + "</tr>"
        for r in rows
    )
    return (
        "<h2>Gradient flow summary (last record)</h2><p>log10(|dh_T|/|dh_0|): orders of "
        "magnitude the gradient loses from the last time step back to the first.</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _table(columns: list[str], rows: list[list], classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{esc(fmt(v))}</td>" for v in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _config_table(report: Report) -> str:
    columns, rows = config_display(report)
    classes = [
        "best" if c is report.best_config else ("" if c.status == "ok" else "bad")
        for c in report.configs
    ]
    return (
        f"<h2>Leaderboard: {len(report.configs)} configurations (mean over seeds)</h2>"
        f"<p>{esc(CONFIG_LEGEND)}.</p>{_table(columns, rows, classes)}"
    )


def _importance(report: Report) -> str:
    parts = [
        f"<h2>{esc(title)}</h2>{_table(cols, rows)}"
        for title, cols, rows in importance_tables(report)
    ]
    if report.importance is not None and report.importance.note:
        parts.append(f"<p>{esc(report.importance.note)}.</p>")
    return "".join(parts)


def _leaderboard_table(report: Report) -> str:
    columns, rows = leaderboard_rows(report)
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for job, row in zip(report.jobs, rows):
        cls = "" if job.status == "ok" else ' class="bad"'
        if job is report.best:
            cls = ' class="best"'
        body.append(f"<tr{cls}>" + "".join(f"<td>{esc(fmt(v))}</td>" for v in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _summary(report: Report) -> str:
    best = report.best
    if best is None:
        return "No job finished with the target metric."
    config = report.best_config
    if report.grouped and config is not None:
        s = config.summary
        text = (
            f"Best configuration: {esc(report.config_label(config))}, {esc(report.metric)} = "
            f"{s.mean:.6g} ± {s.std:.2g} over {s.n} seeds"
        )
        runner = next((c for c in report.ranked_configs[1:2]), None)
        if runner is not None and runner.comparison is not None:
            text += (
                f"; runner-up {esc(report.config_label(runner))}: "
                f"{esc(runner.comparison.verdict())}"
            )
        return text
    return (
        f"Best: job {esc(best.name)} ({esc(report.label(best))}), "
        f"{esc(report.metric)} = {best.value:.6g}"
    )


def write_html(
    report: Report,
    out_dir: Path,
    images: dict[str, Path],
    notes: list[str],
    captions: dict[str, str] | None = None,
) -> Path:
    """Leaderboard, figures (``{title: png}``, each with its caption), importance,
    gradient summary and notes on one page."""
    captions = captions or {}
    figures = "".join(
        f'<h2>{esc(title)}</h2><img alt="{esc(title)}" src="{data_uri(path)}">'
        + (f'<p class="caption">{esc(captions[title])}</p>' if captions.get(title) else "")
        for title, path in images.items()
    )
    leaderboard = f"<h2>Leaderboard</h2>\n{_leaderboard_table(report)}"
    if report.grouped:
        leaderboard = f"{_config_table(report)}\n<h2>Jobs</h2>\n{_leaderboard_table(report)}"
    notes_html = "".join(f"<li>{esc(n)}</li>" for n in notes)
    optuna = ""
    if report.optuna:
        optuna = (
            f"<p>Optuna: best_value {esc(str(report.optuna.get('best_value')))}, "
            f"best_params {esc(str(report.optuna.get('best_params')))}</p>"
        )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>rnnlab sweep report</title>
<style>
{STYLE}
</style></head><body>
<h1>Sweep report</h1>
<p><code>{esc(str(report.sweep_dir))}</code>: {len(report.jobs)} jobs; ranked by
<code>{esc(report.metric)}</code> ({esc(report.mode)}, best first).</p>
<p><strong>{_summary(report)}</strong></p>{optuna}
{leaderboard}
{figures}
{_importance(report)}
{_gradient_table(report)}
{f"<h2>Notes</h2><ul>{notes_html}</ul>" if notes else ""}
</body></html>
"""
    path = out_dir / "report.html"
    atomic_write_text(path, page)
    return path
