"""Metric records read and derived outside training (no torch, no Lightning).

* :func:`per_class` — precision, recall, F1 and support per class from a confusion
  matrix; ``rnnlab.evaluate`` writes it to ``per_class.json`` and the W&B logger logs
  it as the ``test/per_class`` table, so both show the same numbers.
* :func:`read_metrics_csv` — Lightning's ``CSVLogger`` file as per-epoch series, read
  by the learning-curve plots and the sweep report.

With ``C`` the confusion matrix (``C[i, j]``: sequences of true class ``i`` predicted
as ``j``), for class ``k``::

    support_k   = sum_j C[k, j]                (how many are truly k)
    precision_k = C[k, k] / sum_i C[i, k]      (0 when nothing was predicted as k)
    recall_k    = C[k, k] / support_k          (0 when the class has no sample)
    f1_k        = 2 p r / (p + r)              (0 when p + r = 0)
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def class_labels(n: int, class_names: Sequence[str] | None) -> list[str]:
    """The ``n`` class names, or ``"0" .. "n-1"`` when none (or a wrong number) are known."""
    if class_names and len(class_names) == n:
        return [str(name) for name in class_names]
    return [str(i) for i in range(n)]


def _counts(confusion: Any) -> list[list[int]]:
    """A square confusion matrix (tensor, array or nested lists) as lists of ints."""
    rows = confusion.tolist() if hasattr(confusion, "tolist") else [list(r) for r in confusion]
    n = len(rows)
    if any(len(row) != n for row in rows):
        shape = [len(row) for row in rows]
        raise ValueError(f"confusion matrix must be square (n x n); got rows of lengths {shape}")
    return [[int(v) for v in row] for row in rows]


def per_class(
    confusion: Any, class_names: Sequence[str] | None = None
) -> dict[str, dict[str, float | int]]:
    """``{class: {"precision", "recall", "f1", "support"}}`` in class order.

    ``confusion`` is ``(n, n)``, rows the true class, columns the predicted one (the
    layout of torchmetrics' ``MulticlassConfusionMatrix``). Names as :func:`class_labels`.
    """
    counts = _counts(confusion)
    names = class_labels(len(counts), class_names)
    out: dict[str, dict[str, float | int]] = {}
    for k, name in enumerate(names):
        tp = counts[k][k]
        support = sum(counts[k])
        predicted = sum(row[k] for row in counts)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[name] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    return out


def read_metrics_csv(path: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Lightning CSVLogger file -> ``{metric: [(epoch, value), ...]}`` (epoch-level rows;
    ``*_step`` columns and rows without an epoch are left out)."""
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            epoch = row.get("epoch")
            if epoch in (None, ""):
                continue
            for key, value in row.items():
                if key in ("epoch", "step") or value in (None, "") or key.endswith("_step"):
                    continue
                series[key].append((int(float(epoch)), float(value)))
    return dict(series)
