"""One log line per epoch when no progress bar is drawn (``dvc repro``, batch jobs).

The DVC train stages turn the progress bar off (``callbacks.progress_bar.refresh_rate=0``)
so their logs are not flooded with carriage returns; without this callback they then
print nothing for minutes. :class:`EpochLog` writes, after each validation, e.g.::

    epoch 3/15: train/loss=0.412 val/loss=0.387 val/acc=0.871 (12.3 s)

It stays silent while a progress bar with a positive refresh rate shows the same numbers.
"""

from __future__ import annotations

import logging
import math
import time

import lightning as L

log = logging.getLogger(__name__)


def _bar_visible(trainer: L.Trainer) -> bool:
    bar = trainer.progress_bar_callback
    return bar is not None and getattr(bar, "refresh_rate", 1) > 0 and bar.is_enabled


class EpochLog(L.Callback):
    """Log the epoch's losses and validation metrics (``keys`` prefixes) once per epoch."""

    def __init__(self, keys: tuple[str, ...] = ("train/loss", "val/"), always: bool = False):
        self.keys, self.always = tuple(keys), always
        self._start = time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        if _bar_visible(trainer) and not self.always:
            return
        values = {}
        for key, value in sorted(trainer.callback_metrics.items()):
            if key.startswith(self.keys) and not key.endswith("_step"):
                number = float(value)
                if math.isfinite(number):
                    values[key.removesuffix("_epoch")] = number
        shown = " ".join(f"{k}={v:.4g}" for k, v in values.items())
        epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else "?"
        log.info(
            "epoch %d/%s: %s (%.1f s)",
            trainer.current_epoch,
            epochs,
            shown,
            time.perf_counter() - self._start,
        )
