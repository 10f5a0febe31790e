"""Gradient-flow diagnostics: do gradients vanish or explode, and where?

Three views, each answering a question the seed articles raise:

* **per-layer gradient norms** during training (``grad_norm/<layer>``, before
  clipping): which layer's gradients explode, and does clipping fire?
* **‖∂L/∂h_t‖ over time** for a fixed probe batch, per layer: how far back in time does
  the loss reach? A tanh Elman RNN's profile decays geometrically toward early steps; an
  LSTM's stays flat. The probe batch is the validation batch with the longest sequence
  (length bucketing makes the first one the shortest), chosen once and kept for every
  epoch; the probe runs in float64 where the device has it, so norms far below float32's
  floor (1e-45) are measured instead of underflowing to 0.
* **saturated and dead units** per layer on the probe batch: tanh/sigmoid outputs within
  ``saturation_eps`` of their bounds pass almost no gradient; relu units that never fire
  pass none.

This module is the Lightning callback: when to probe, warnings, records on disk and in
the loggers. The probe itself (the step-by-step replay that exposes ∂L/∂h_t) is
:mod:`rnnlab.callbacks.gradient_probe`, the unit counts
:mod:`rnnlab.callbacks.gradient_saturation`, the figure
:mod:`rnnlab.callbacks.gradient_plot`.

Records go to ``<dirpath>/gradient_flow.json`` (schema in the README) with a plot
``gradient_flow.png`` (both written atomically through :mod:`rnnlab.io`), to every
logger as scalars, and to W&B as images.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn

from rnnlab.callbacks.gradient_probe import layer_name, measure, named_layers
from rnnlab.io import atomic_write_text

log = logging.getLogger(__name__)


class GradientFlow(Callback):
    """Log per-layer gradient norms; probe ‖∂L/∂h_t‖ and unit saturation each epoch.

    Args:
        dirpath: where ``gradient_flow.json`` and ``gradient_flow.png`` go (rank 0 only).
        every_n_epochs: probe after every n-th training epoch (and once before training).
        log_every_n_steps: per-layer gradient norms every n optimizer steps (None: the
            trainer's ``log_every_n_steps``).
        explode_threshold: warn when the total gradient norm (before clipping) exceeds it.
        vanish_threshold: warn when ‖∂L/∂h_0‖ / max_t ‖∂L/∂h_t‖ of a layer falls below it.
        saturation_eps: a tanh/sigmoid value within eps of its bound counts as saturated.
        max_probe_steps: probe only the first this many time steps of long sequences
            (None: all). Keeps the probe cheap on long speech inputs.
        plot_every_s: re-render ``gradient_flow.png`` (and log it as an image) after a
            probe only when the last rendering is at least this many seconds old; it is
            always rendered after the first probe and when training ends or fails, from
            every record. The JSON is written after every probe. Rendering costs about half
            a second, a real share of short epochs; 0 renders after every probe.
        probe_dtype: ``float64`` (default: the probe replays a float64 copy of the
            network, so ‖∂L/∂h_t‖ does not underflow; the trained weights are untouched)
            or ``float32``. Falls back to float32 where float64 fails (e.g. MPS).
    """

    def __init__(
        self,
        dirpath: str | os.PathLike,
        every_n_epochs: int = 1,
        log_every_n_steps: int | None = None,
        explode_threshold: float = 1e3,
        vanish_threshold: float = 1e-6,
        saturation_eps: float = 0.01,
        max_probe_steps: int | None = None,
        plot_every_s: float = 30.0,
        probe_dtype: str = "float64",
    ) -> None:
        super().__init__()
        for key, value in (
            ("every_n_epochs", every_n_epochs),
            ("max_probe_steps", max_probe_steps),
        ):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"callbacks.gradient_flow.{key}={value!r} must be an integer >= 1")
        if not 0 < saturation_eps < 0.5:
            raise ValueError(
                f"callbacks.gradient_flow.saturation_eps={saturation_eps!r}; valid: 0 < eps < 0.5"
            )
        if not float(plot_every_s) >= 0:
            raise ValueError(
                f"callbacks.gradient_flow.plot_every_s={plot_every_s!r} must be a number >= 0"
            )
        if probe_dtype not in PROBE_DTYPES:
            raise ValueError(
                f"callbacks.gradient_flow.probe_dtype={probe_dtype!r}; valid: "
                + ", ".join(PROBE_DTYPES)
            )
        self.probe_dtype = PROBE_DTYPES[probe_dtype]
        self.dirpath = Path(dirpath)
        self.every_n_epochs = every_n_epochs
        self.log_every_n_steps = log_every_n_steps
        self.explode_threshold = float(explode_threshold)
        self.vanish_threshold = float(vanish_threshold)
        self.saturation_eps = float(saturation_eps)
        self.max_probe_steps = max_probe_steps
        self.plot_every_s = float(plot_every_s)
        self._plotted_at: float | None = None  # time.monotonic() of the last rendering
        self._plotted_records = 0  # how many records that rendering showed
        self.records: list[dict[str, Any]] = []
        self._probe_batch: dict[str, torch.Tensor] | None = None
        self._warned_explode_epoch = -1

    # --- training-time gradient norms ------------------------------------------------
    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        # The total norm is checked every step (one foreach reduction, as clipping does);
        # the per-layer norms are logged every n steps.
        grads = [p.grad.detach() for p in pl_module.parameters() if p.grad is not None]
        if not grads:
            return
        total = float(torch.nn.utils.get_total_norm(grads))
        exploded = not math.isfinite(total) or total > self.explode_threshold
        if exploded and self._warned_explode_epoch != trainer.current_epoch:
            self._warned_explode_epoch = trainer.current_epoch
            rank_zero_warn_log(
                f"exploding gradients: total gradient norm {total:.3g} > "
                f"{self.explode_threshold:g} at global step {trainer.global_step} "
                f"(epoch {trainer.current_epoch}); clip gradients "
                "(trainer.gradient_clip_val) or lower optim.optimizer.lr"
            )
        every = self.log_every_n_steps or trainer.log_every_n_steps
        if trainer.global_step % max(every, 1) or not trainer.is_global_zero:
            return
        norms = {"grad_norm/total": total}
        for path, layer in named_layers(pl_module):
            layer_grads = [p.grad.detach().norm() for p in layer.parameters() if p.grad is not None]
            if layer_grads:
                norms[f"grad_norm/{layer_name(path)}"] = float(
                    torch.linalg.vector_norm(torch.stack(layer_grads))
                )
        for logger in trainer.loggers:  # straight to the loggers: not a metric to monitor
            logger.log_metrics(norms, step=trainer.global_step)

    # --- the probe -----------------------------------------------------------------
    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            self._load_records(trainer.global_step)
        if trainer.global_step == 0:
            self._probe(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._probe(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self._plot_if_stale(trainer)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        try:  # a diverged or interrupted run keeps a plot of every record it made
            self._plot_if_stale(trainer)
        except Exception as err:  # never hide the exception that stopped training
            log.warning("could not plot the gradient-flow records: %s", err)

    def _probe(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or getattr(trainer, "sanity_checking", False):
            return
        batch = self._get_probe_batch(trainer, pl_module)
        if batch is None:
            return
        record = self.measure(pl_module, batch)
        record.update(epoch=trainer.current_epoch, global_step=trainer.global_step)
        self.records.append(record)
        self._warn_vanishing(record, pl_module)
        self._write(trainer)
        self._log(trainer, record)

    def measure(self, pl_module: L.LightningModule, batch: dict[str, torch.Tensor]) -> dict:
        """One probe: per-layer ‖∂L/∂h_t‖ profiles, saturation, weight-gradient norms."""
        if self.probe_dtype == torch.float64:
            try:
                return measure(
                    pl_module, batch, self.saturation_eps, self.max_probe_steps, torch.float64
                )
            except (RuntimeError, TypeError) as err:  # no float64 on this device (MPS)
                log.warning("gradient flow: float64 probe failed (%s); probing in float32", err)
                self.probe_dtype = torch.float32
        return measure(pl_module, batch, self.saturation_eps, self.max_probe_steps)

    def _get_probe_batch(self, trainer, pl_module) -> dict[str, torch.Tensor] | None:
        if self._probe_batch is None:
            loaders = trainer.val_dataloaders or trainer.train_dataloader
            if isinstance(loaders, Sequence) and not isinstance(
                loaders, torch.utils.data.DataLoader
            ):
                loaders = loaders[0] if loaders else None
            if loaders is None:
                rank_zero_warn("gradient flow: no dataloader to take a probe batch from; skipped")
                return None
            batch = longest_batch(loaders)
            if batch is None:
                rank_zero_warn("gradient flow: the probe's dataloader is empty; skipped")
                return None
            self._probe_batch = {
                k: v.to(pl_module.device) if isinstance(v, torch.Tensor) else v
                for k, v in batch.items()
            }
        return self._probe_batch

    def _warn_vanishing(self, record: dict, pl_module=None) -> None:
        cells = {}
        if pl_module is not None:
            cells = {layer_name(p): m.cell for p, m in named_layers(pl_module)}
        for name, layer in record["layers"].items():
            profile = [v for v in layer["dh_norm"] if v is not None]
            peak = max(profile, default=0.0)
            if peak > 0 and profile[0] / peak < self.vanish_threshold:
                rank_zero_warn_log(
                    f"vanishing gradients in {name} (epoch {record['epoch']}): "
                    f"‖∂L/∂h_0‖ is {profile[0] / peak:.1e} of the largest ‖∂L/∂h_t‖ "
                    f"(threshold {self.vanish_threshold:g}); "
                    + vanishing_advice(cells.get(name), record.get("probe") or {})
                )

    def _load_records(self, global_step: int) -> None:
        path = self.dirpath / "gradient_flow.json"
        if path.is_file() and global_step > 0:  # resumed: keep the earlier records
            try:
                old = json.loads(path.read_text()).get("records", [])
            except (OSError, ValueError):
                old = []
            self.records = [r for r in old if r.get("global_step", 0) <= global_step]

    def _write(self, trainer) -> None:
        latest = self.records[-1]
        doc = {"probe": latest["probe"], "records": self.records}
        atomic_write_text(self.dirpath / "gradient_flow.json", json.dumps(doc, indent=1))
        if self._plotted_at is None or time.monotonic() - self._plotted_at >= self.plot_every_s:
            self._plot(trainer)

    def _plot_if_stale(self, trainer) -> None:
        if trainer.is_global_zero and self.records and self._plotted_records != len(self.records):
            self._plot(trainer)

    def _plot(self, trainer) -> None:
        """Render every record so far to ``gradient_flow.png``; log it to image loggers."""
        from rnnlab.callbacks.gradient_plot import plot_gradient_flow

        png = plot_gradient_flow(self.records, self.dirpath / "gradient_flow.png")
        self._plotted_at, self._plotted_records = time.monotonic(), len(self.records)
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):
                try:
                    logger.log_image(
                        key="gradient_flow/profile", images=[str(png)], step=trainer.global_step
                    )
                except Exception as err:  # an image upload must never stop training
                    log.warning("could not log the gradient-flow image to %s: %s", logger, err)

    def _log(self, trainer, record: dict) -> None:
        scalars: dict[str, float] = {}
        for name, layer in record["layers"].items():
            profile = layer["dh_norm"]
            peak = max(profile) if profile else 0.0
            if peak > 0:
                scalars[f"gradflow/{name}/first_to_peak"] = profile[0] / peak
            for key in ("saturated_frac", "gate_saturated_frac", "dead_frac"):
                if layer.get(key) is not None:
                    scalars[f"gradflow/{name}/{key}"] = layer[key]
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=trainer.global_step)


PROBE_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def batch_length(batch: dict[str, Any]) -> int:
    """The longest sequence of a batch: ``max(lengths)``, else the padded time axis."""
    lengths = batch.get("lengths")
    if isinstance(lengths, torch.Tensor) and lengths.numel():
        return int(lengths.max())
    inputs = batch.get("inputs")
    return int(inputs.shape[1]) if isinstance(inputs, torch.Tensor) and inputs.dim() > 1 else 0


def longest_batch(loader) -> dict[str, Any] | None:
    """The batch with the longest sequence (the first of equals) in one pass over
    ``loader``: with length bucketing the first batch is the shortest, which would probe
    only a few steps of the recurrence. One pass, once per run; the batch is then kept."""
    best, best_len = None, -1
    for batch in loader:
        length = batch_length(batch)
        if length > best_len:
            best, best_len = batch, length
    return best


def vanishing_advice(cell: str | None, probe: dict[str, Any]) -> str:
    """What helps against vanishing gradients in a layer of this cell type."""
    steps = probe.get("time_steps")
    shorter = f"shorter sequences than the {steps} probed steps" if steps else "shorter sequences"
    if cell in ("lstm", "gru"):
        bias = (
            "a positive forget-gate bias (model.forget_bias=1.0)"
            if cell == "lstm"
            else "checking the update gate for saturation (gate_saturated_frac)"
        )
        return (
            f"the cell is already gated ({cell}): try {bias}, residual/highway connections "
            f"(model/connection=residual), {shorter}, or gradient clipping with a higher lr"
        )
    if cell == "indrnn":
        return (
            "IndRNN carries a gradient over t steps as u^t: start the recurrent weights at 1 "
            "(model.init=identity) with relu, keep |u| bounded (model.indrnn_max_weight), "
            f"use residual connections (model/connection=residual) or {shorter}"
        )
    return (
        "gated cells (model/cell=lstm or gru), residual/highway connections "
        "or orthogonal/identity init (model.init) help"
    )


@rank_zero_only
def rank_zero_warn_log(message: str) -> None:
    """A diagnostic warning in the job's log (train.log, console), once, from rank 0."""
    log.warning(message)
