"""``python -m rnnlab.report <multirun dir>``: an offline report of a Hydra sweep.

Reads every job of ``outputs/multiruns/<time>_<pid>/`` (``.hydra/``, ``metrics.json``,
``csv/metrics.csv``, optional ``gradient_flow/gradient_flow.json``) and writes, to
``<multirun dir>/report/`` by default: ``leaderboard.md``, ``leaderboard.csv``,
``learning_curves.png``, ``heatmap.png``, ``gradient_flow.png`` and ``report.html``, one
self-contained page (images as data URIs, no JavaScript, CSS or fonts from a network), so
a sweep can be compared on a machine without W&B or internet.

Modules, in the order the data flows (each imports only those above it):

============== ===============================================================
``jobs``        ``Job`` (one job directory), ``Config`` (jobs differing only in
                seed), ``Report`` (the ranked sweep), ``ReportError``
``rank``        default metric, direction (max/min), leaderboard order (status first)
``configs``     grouping jobs into configurations: mean/std/CI, Welch vs the best
``collect``     reading the sweep directory into ``Job``\\ s; ``collect()``
``dvc``         reading ``dvc exp show --json`` into ``Job``\\ s; ``collect_dvc()``
``importance``  fANOVA importance and marginal means of the varied keys
``leaderboard`` leaderboard rows, ``leaderboard.{csv,md}``, ``configs.csv``,
                ``importance.md``, gradient summary
``plots``       the PNG figures
``page``        ``report.html``
``wandb_table`` ``--wandb``: the tables, once, as W&B tables
``cli``         ``build_report()`` (everything above) and ``main()`` (the CLI)
============== ===============================================================

Every file is written atomically through :mod:`rnnlab.io`.
"""

from rnnlab.report.cli import build_report, main
from rnnlab.report.collect import collect
from rnnlab.report.jobs import Job, Report, ReportError
from rnnlab.report.leaderboard import gradient_summary

__all__ = ["Job", "Report", "ReportError", "build_report", "collect", "gradient_summary", "main"]
