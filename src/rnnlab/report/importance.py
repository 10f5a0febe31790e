"""Which hyper-parameters matter: fANOVA importance and marginal means over a sweep.

The hyper-parameters are the design axes (cell, activation, connection, dataset) and
the swept keys that take more than one value across the finished jobs; ``seed`` is not
one (it is what the repeats of a configuration differ in). Every finished job (status
``ok``) is one observation ``(x, y)``: its hyper-parameter values and the ranked metric.

* **fANOVA** (Hutter et al. 2014; Greff et al. 2017 used it for LSTM variants): a random
  forest fits ``y ≈ f(x)``; ``f`` is decomposed into main effects, and the importance
  of key ``k`` is the fraction of the variance of ``f`` explained by ``k`` alone
  (``Var_k[E[f | x_k]] / Var[f]``), normalised over the keys to sum to 1. Computed by
  ``optuna.importance.get_param_importances`` with ``FanovaImportanceEvaluator(seed=0)``
  on a study built from the table (one ``create_trial`` per job), so it works for a grid
  as well as an Optuna study. Run for three or more varied keys, or any Optuna study
  with two or more. Seed noise lands in the residual, not in any key.
* **Marginal means**, for two or more varied keys: for each key and value, the ranked
  metric over every finished job with that value (pooled over the other keys and the
  seeds): n, mean ± std (:func:`rnnlab.stats.summarize`).
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from rnnlab.report.jobs import AXES, Job, Report
from rnnlab.stats import Summary, summarize

log = logging.getLogger(__name__)

MIN_KEYS_FANOVA = 3


@dataclass
class Importance:
    """``keys``: the varied hyper-parameters; ``scores``: fANOVA importance per key
    (empty when not computed, ``note`` says why); ``marginals``: per key, ``(value,
    summary)`` best value first."""

    keys: list[str]
    scores: dict[str, float] = field(default_factory=dict)
    marginals: dict[str, list[tuple[str, Summary]]] = field(default_factory=dict)
    note: str = ""


def job_params(report: Report, job: Job) -> dict[str, str]:
    """A job's hyper-parameter values: the varying axes and the swept keys but seed."""
    params = {a: job.axes.get(a, "?") for a in AXES}
    params |= {k: job.overrides.get(k, "-") for k in report.config_keys}
    return params


def varied_keys(report: Report, jobs: list[Job]) -> list[str]:
    """Axes and swept keys (never seed) with two or more values among ``jobs``."""
    keys = [*AXES, *report.config_keys]
    return [k for k in keys if len({job_params(report, j)[k] for j in jobs}) > 1]


def _as_number(value: str) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _distributions(keys: list[str], rows: list[dict[str, str]]) -> dict:
    """Numeric keys with three or more values: a (log-)uniform range; others categorical."""
    from optuna.distributions import (
        CategoricalDistribution,
        LogUniformDistribution,
        UniformDistribution,
    )

    out = {}
    for key in keys:
        values = sorted({r[key] for r in rows})
        numbers = [_as_number(v) for v in values]
        if len(values) >= 3 and all(n is not None for n in numbers):
            low, high = min(numbers), max(numbers)
            if low > 0 and high / low >= 100:
                out[key] = LogUniformDistribution(low, high)
            else:
                out[key] = UniformDistribution(low, high)
        else:
            out[key] = CategoricalDistribution(values)
    return out


def _fanova_numpy2_shim() -> None:
    """optuna 2.10's fANOVA tree reads a leaf's value as ``tree_.value[i]``, an array of
    shape (1, 1), and stores it into a float row, which numpy >= 2 refuses ("setting an
    array element with a sequence"). Make that one accessor return the float it meant;
    nothing else in optuna changes. Idempotent; a no-op where the module moved."""
    try:
        from optuna.importance._fanova import _tree
    except ImportError:
        return
    tree = getattr(_tree, "_FanovaTree", None)
    original = getattr(tree, "_get_node_value", None)
    if original is None or getattr(original, "_rnnlab_float", False):
        return

    def node_value(self, node_index: int) -> float:
        return float(np.asarray(original(self, node_index)).reshape(-1)[0])

    node_value._rnnlab_float = True
    tree._get_node_value = node_value


def fanova(rows: list[dict[str, str]], values: list[float], keys: list[str]) -> dict[str, float]:
    """fANOVA importance of ``keys`` for ``values`` (one row of key -> value per
    observation), sorted most important first; seed 0, so the ranking is reproducible."""
    import optuna
    from optuna.distributions import CategoricalDistribution

    _fanova_numpy2_shim()
    distributions = _distributions(keys, rows)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created"
    try:
        with warnings.catch_warnings():  # create_trial/add_trial are "experimental" in 2.x
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = optuna.create_study(direction="maximize")
            for row, value in zip(rows, values):
                params = {
                    k: row[k] if isinstance(d, CategoricalDistribution) else float(row[k])
                    for k, d in distributions.items()
                }
                trial = optuna.trial.create_trial(
                    params=params, distributions=distributions, value=value
                )
                study.add_trial(trial)
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
            scores = optuna.importance.get_param_importances(study, evaluator=evaluator)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return {k: float(v) for k, v in sorted(scores.items(), key=lambda kv: -kv[1])}


def marginal_means(
    rows: list[dict[str, str]], values: list[float], keys: list[str], mode: str
) -> dict[str, list[tuple[str, Summary]]]:
    """Per key and value, the summary of ``values`` over the rows with that value."""
    out = {}
    sign = -1.0 if mode == "max" else 1.0
    for key in keys:
        by_value: dict[str, list[float]] = {}
        for row, value in zip(rows, values):
            by_value.setdefault(row[key], []).append(value)
        summaries = [(v, summarize(xs)) for v, xs in by_value.items()]
        out[key] = sorted(summaries, key=lambda vs: sign * vs[1].mean)
    return out


def importance(report: Report) -> Importance | None:
    """Marginal means for two or more varied keys, fANOVA for three or more (or for an
    Optuna study with two or more); None when fewer than two keys vary."""
    jobs = [j for j in report.ranked if j.value is not None and math.isfinite(j.value)]
    keys = varied_keys(report, jobs)
    if len(keys) < 2:
        return None
    rows = [job_params(report, j) for j in jobs]
    values = [float(j.value) for j in jobs]
    result = Importance(keys, marginals=marginal_means(rows, values, keys, report.mode))
    if len(keys) < MIN_KEYS_FANOVA and not report.optuna:
        result.note = (
            f"fANOVA importance needs {MIN_KEYS_FANOVA} or more varied keys (or an Optuna "
            f"study); this sweep varies {len(keys)}: see the marginal means"
        )
    elif len(jobs) < 4:
        result.note = f"fANOVA importance skipped: only {len(jobs)} finished jobs"
    else:
        try:
            result.scores = fanova(rows, values, keys)
        except (ImportError, ValueError, RuntimeError) as err:
            result.note = f"fANOVA importance failed: {err}"
            log.warning("%s", result.note)
    return result
