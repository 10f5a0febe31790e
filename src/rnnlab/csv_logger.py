"""A CSV metrics log that survives a resume: ``<run>/csv/metrics.csv`` keeps its history.

Lightning's ``CSVLogger`` deletes an existing ``metrics.csv`` when its writer starts, so
after ``ckpt_path=auto`` resumed a run at epoch N+1 the file (the DVC plot, the report's
learning curves, ``learning_curves.png``) held only the epochs after the crash. This
logger reads the old rows before the writer starts; when the run resumes from a
checkpoint of epoch N, :meth:`ResumableCSVLogger.keep_history` writes back the rows of
epochs ``0..N`` (rows of the epoch that was cut short are dropped, as it is trained
again), and Lightning then appends as usual. A fresh run starts an empty file, as before.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger

from rnnlab.io import atomic_write_text

log = logging.getLogger(__name__)


def _read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        return [], []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _epoch(row: dict[str, str]) -> float | None:
    try:
        return float(row.get("epoch") or "")
    except ValueError:
        return None


class ResumableCSVLogger(CSVLogger):
    """``lightning.pytorch.loggers.CSVLogger`` whose history outlives a resume."""

    _previous: tuple[list[str], list[dict[str, str]]] | None = None

    @property
    def experiment(self):  # noqa: ANN201 - Lightning's writer type
        if self._experiment is None:
            self._previous = _read_rows(Path(self.log_dir) / "metrics.csv")
        return super().experiment

    def keep_history(self, through_epoch: int) -> int:
        """Write back the rows of epochs ``<= through_epoch``; returns how many."""
        writer = self.experiment
        header, rows = self._previous or ([], [])
        kept = [r for r in rows if (e := _epoch(r)) is not None and e <= through_epoch]
        if not kept:
            return 0
        path = Path(writer.metrics_file_path)
        new_header, new_rows = _read_rows(path)  # anything logged since the writer started
        fields = sorted({*header, *new_header})
        buffer = io.StringIO()
        out = csv.DictWriter(buffer, fieldnames=fields)  # \r\n, as Lightning appends
        out.writeheader()
        out.writerows(kept + new_rows)
        atomic_write_text(path, buffer.getvalue())
        writer.metrics_keys = fields
        log.info(
            "%s: kept %d rows of epochs 0..%d from before the resume",
            path,
            len(kept),
            through_epoch,
        )
        return len(kept)
