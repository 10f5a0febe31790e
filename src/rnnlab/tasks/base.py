"""What every rnnlab LightningModule shares: the model, the training strategy, logging.

Hyperparameters are stored as plain containers (model keys, data I/O, optimizer and
scheduler configs with ``_target_``), so checkpoints load with ``weights_only=True``
and a checkpoint alone is enough to rebuild the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from torchmetrics import MaxMetric, MinMetric

from rnnlab.nn.model import ModelIO, build_model
from rnnlab.safety import check_targets

DEFAULT_OPTIM: dict[str, Any] = {
    "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3},
    "scheduler": None,
    "scheduler_interval": "epoch",
    "l1": 0.0,
    "l2": 0.0,
}


class TrainingDiverged(FloatingPointError):
    """The training loss became NaN/Inf; the run stops, the last good checkpoint stays."""

    def __init__(self, loss: float, global_step: int, epoch: int) -> None:
        self.loss, self.global_step, self.epoch = loss, global_step, epoch
        super().__init__(
            f"training diverged: non-finite loss ({loss}) at global step {global_step}, "
            f"epoch {epoch}; clip gradients (trainer.gradient_clip_val=1.0) or lower the "
            "learning rate (optim.optimizer.lr)"
        )


class RecurrentTask(L.LightningModule):
    # Whether per-step outputs may be fewer than the input steps (model.time_reduction):
    # a CTC loss aligns them itself; per-step targets need one output per input step.
    per_step_outputs_follow_time_reduction = False

    def __init__(
        self,
        model: Mapping[str, Any],
        io: Mapping[str, Any] | ModelIO,
        optim: Mapping[str, Any] | None = None,
        monitor: str = "val/loss",
        mode: str = "min",
        run_config: Mapping[str, Any] | None = None,
        class_names: list[str] | None = None,
    ) -> None:
        super().__init__()
        io_dict = asdict(io) if isinstance(io, ModelIO) else dict(io)
        optim_cfg = {**DEFAULT_OPTIM, **(optim or {})}
        for key in ("l1", "l2"):
            if float(optim_cfg[key]) < 0:
                raise ValueError(f"optim.{key}={optim_cfg[key]!r} must be >= 0")
        if mode not in ("min", "max"):
            raise ValueError(f"task.mode={mode!r}; valid: min, max")
        self.save_hyperparameters(
            {
                "model": dict(model),
                "io": io_dict,
                "optim": optim_cfg,
                "monitor": monitor,
                "mode": mode,
                "run_config": dict(run_config or {}),
                "class_names": list(class_names) if class_names else None,
            }
        )
        self.class_names = list(class_names) if class_names else None
        self.io = ModelIO(**io_dict)
        reduction = dict(model).get("time_reduction", 1)
        if (
            reduction != 1
            and self.io.output_per == "step"
            and not self.per_step_outputs_follow_time_reduction
        ):
            raise ValueError(
                f"model.time_reduction={reduction!r} gives one output per {reduction} input "
                f"steps, but {type(self).__name__} scores one target per input step; use "
                "model.time_reduction=1 here (time reduction works with CTC and with "
                "whole-sequence outputs)"
            )
        self.net = build_model(model, self.io)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.net(inputs, lengths)

    # --- best-so-far validation metrics --------------------------------------------
    @staticmethod
    def best_tracker(kind: str) -> MaxMetric | MinMetric:
        """A val/*_best tracker whose state is saved in checkpoints, so it survives resume."""
        metric = MaxMetric() if kind == "max" else MinMetric()
        metric.persistent(True)
        return metric

    def on_train_start(self) -> None:
        # Sanity-check batches must not count as the best; a resumed run keeps its best.
        if self.trainer.global_step == 0:
            for module in self.modules():
                if isinstance(module, (MaxMetric, MinMetric)):
                    module.reset()

    # --- training strategy -------------------------------------------------------
    def penalty(self) -> torch.Tensor:
        """L1/L2 penalties on weight matrices (biases and norms are left alone)."""
        l1, l2 = float(self.hparams.optim["l1"]), float(self.hparams.optim["l2"])
        total = torch.zeros((), device=self.device)
        if l1 == 0 and l2 == 0:
            return total
        for p in self.net.parameters():
            if p.dim() > 1:
                if l1:
                    total = total + l1 * p.abs().sum()
                if l2:
                    total = total + l2 * p.pow(2).sum()
        return total

    def configure_optimizers(self):
        cfg = self.hparams.optim
        check_targets(cfg["optimizer"], "optim.optimizer")
        optimizer = instantiate(cfg["optimizer"])(params=self.parameters())
        if not cfg.get("scheduler"):
            return optimizer
        check_targets(cfg["scheduler"], "optim.scheduler")
        scheduler = instantiate(cfg["scheduler"])(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "interval": cfg.get("scheduler_interval", "epoch"),
                "monitor": self.hparams.monitor,
            },
        }

    # --- steps ---------------------------------------------------------------------
    def loss_and_outputs(self, batch: dict[str, torch.Tensor]):
        raise NotImplementedError

    def training_step(self, batch, batch_idx):
        loss, _ = self.loss_and_outputs(batch)
        total = loss + self.penalty()
        finite = bool(torch.isfinite(total))
        if self.trainer.world_size > 1:  # every rank stops together, none waits in all-reduce
            finite = self.trainer.strategy.reduce_boolean_decision(finite, all=True)
        if not finite:
            # Raised before backward: no NaN reaches the weights, and Lightning saves no
            # checkpoint on an exception, so the last good one stays as it was.
            raise TrainingDiverged(total.item(), self.global_step, self.current_epoch)
        self.log(
            "train/loss",
            loss,
            on_step=True,
            on_epoch=True,
            prog_bar=True,
            batch_size=batch["targets"].shape[0],
        )
        return total
