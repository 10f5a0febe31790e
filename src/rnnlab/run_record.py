"""What a run leaves behind for people and tools: ``metrics.json`` and the W&B summary.

``metrics.json`` (a DVC metric) records ``status`` (``completed``, or ``diverged``
when a non-finite loss stopped training), the final ``metrics`` (train, validation and
test, floats), ``best_checkpoint`` (the file that was tested), ``epoch`` and
``global_step``. Paths inside the working directory are written relative to it, so the
committed ``results/`` are identical across checkouts.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L

from rnnlab.checkpoints import best_checkpoint, last_checkpoint
from rnnlab.io import atomic_write_json

RUN_STATUSES = ("completed", "diverged")


def write_metrics(
    path: Path, metrics: dict[str, float], trainer: L.Trainer, status: str = "completed"
) -> None:
    """Write ``metrics.json`` atomically (see the module docstring for its keys)."""
    if status not in RUN_STATUSES:
        raise ValueError(f"run status {status!r}; valid: {', '.join(RUN_STATUSES)}")
    record = {
        "status": status,
        "metrics": metrics,
        "best_checkpoint": portable(best_checkpoint(trainer)),
        "epoch": trainer.current_epoch,
        "global_step": trainer.global_step,
    }
    atomic_write_json(path, record)


def run_summary(trainer: L.Trainer, status: str, output_dir: str) -> dict[str, str | None]:
    """The keys the W&B run summary records when the job ends."""
    return {
        "status": status,
        "best_checkpoint": portable(best_checkpoint(trainer)),
        "last_checkpoint": portable(last_checkpoint(trainer)),
        "output_dir": portable(output_dir),
    }


def portable(path: str | None) -> str | None:
    """A path inside the working directory, relative to it; any other path, absolute."""
    if not path:
        return path
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path
