"""Regression of a value per sequence (the adding problem): MSE loss and metric."""

from __future__ import annotations

import torch.nn.functional as F
from torchmetrics import MeanSquaredError

from rnnlab.tasks.base import RecurrentTask


class SequenceRegressionTask(RecurrentTask):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("monitor", "val/loss")
        kwargs.setdefault("mode", "min")
        super().__init__(*args, **kwargs)
        self.val_mse, self.test_mse = MeanSquaredError(), MeanSquaredError()
        self.val_mse_best = self.best_tracker("min")

    def loss_and_outputs(self, batch):
        preds = self(batch["inputs"], batch["lengths"])
        targets = batch["targets"].to(preds.dtype).reshape(preds.shape)
        return F.mse_loss(preds, targets), (preds, targets)

    def validation_step(self, batch, batch_idx):
        loss, (preds, targets) = self.loss_and_outputs(batch)
        self.val_mse.update(preds, targets)
        self.log(
            "val/loss",
            loss,
            on_epoch=True,
            prog_bar=True,
            batch_size=targets.shape[0],
            sync_dist=True,
        )

    def on_validation_epoch_end(self) -> None:
        mse = self.val_mse.compute()
        self.val_mse_best(mse)
        self.log("val/mse", mse, prog_bar=True, sync_dist=True)
        self.log("val/mse_best", self.val_mse_best.compute(), sync_dist=True)
        self.val_mse.reset()

    def test_step(self, batch, batch_idx):
        loss, (preds, targets) = self.loss_and_outputs(batch)
        self.test_mse.update(preds, targets)
        self.log("test/loss", loss, on_epoch=True, batch_size=targets.shape[0], sync_dist=True)

    def on_test_epoch_end(self) -> None:
        self.log("test/mse", self.test_mse.compute(), sync_dist=True)
        self.test_mse.reset()
