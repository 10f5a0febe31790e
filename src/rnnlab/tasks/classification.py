"""Classification of whole sequences or of every step (per-step targets, -100 ignored).

After ``trainer.test`` the task holds what the test pass saw, so reports need no second
pass over the test set: ``test_confusion`` (``(C, C)`` counts, rows the true class,
reduced across ranks) and, for whole-sequence tasks, ``test_predictions`` (``(N, 2)``:
true and predicted class of each test sequence, in the test loader's order, this rank's).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
)

from rnnlab.nn.heads import IGNORE_INDEX
from rnnlab.tasks.base import RecurrentTask


class SequenceClassificationTask(RecurrentTask):
    """Cross-entropy over classes; accuracy (micro) and macro-F1; ``val/acc_best``."""

    def __init__(
        self,
        *args,
        class_weights: Sequence[float] | None = None,
        label_smoothing: float = 0.0,
        **kwargs,
    ) -> None:
        kwargs.setdefault("monitor", "val/acc")
        kwargs.setdefault("mode", "max")
        super().__init__(*args, **kwargs)
        n = self.io.output_dim
        if class_weights is not None and len(class_weights) != n:
            raise ValueError(f"task.class_weights has {len(class_weights)} entries; need {n}")
        self.register_buffer(
            "class_weights",
            torch.tensor(class_weights, dtype=torch.float) if class_weights is not None else None,
        )
        self.label_smoothing = float(label_smoothing)
        metrics = MetricCollection(
            {
                "acc": MulticlassAccuracy(n, average="micro", ignore_index=IGNORE_INDEX),
                "f1_macro": MulticlassF1Score(n, average="macro", ignore_index=IGNORE_INDEX),
            }
        )
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.val_acc_best = self.best_tracker("max")
        # Test-set confusion counts (reduced across ranks), for loggers' per-class reports.
        self.test_confmat = MulticlassConfusionMatrix(n, ignore_index=IGNORE_INDEX)
        self.test_confusion: torch.Tensor | None = None
        self.test_predictions: torch.Tensor | None = None
        self._test_pairs: list[torch.Tensor] = []

    def loss_and_outputs(self, batch):
        logits = self(batch["inputs"], batch["lengths"])
        targets = batch["targets"]
        flat_logits = logits.reshape(-1, logits.shape[-1])
        flat_targets = targets.reshape(-1)
        loss = F.cross_entropy(
            flat_logits,
            flat_targets,
            weight=self.class_weights,
            ignore_index=IGNORE_INDEX,
            label_smoothing=self.label_smoothing,
        )
        return loss, (flat_logits, flat_targets)

    def _eval_step(self, batch, metrics, stage: str):
        loss, (logits, targets) = self.loss_and_outputs(batch)
        metrics.update(logits, targets)
        self.log(
            f"{stage}/loss",
            loss,
            on_epoch=True,
            prog_bar=True,
            batch_size=batch["targets"].shape[0],
            sync_dist=True,
        )
        return logits, targets

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, self.val_metrics, "val")

    def on_validation_epoch_end(self) -> None:
        values = self.val_metrics.compute()
        self.log_dict(values, prog_bar=True, sync_dist=True)
        self.val_acc_best(values["val/acc"])
        self.log("val/acc_best", self.val_acc_best.compute(), sync_dist=True)
        self.val_metrics.reset()

    def on_test_epoch_start(self) -> None:
        self._test_pairs = []

    def test_step(self, batch, batch_idx):
        logits, targets = self._eval_step(batch, self.test_metrics, "test")
        self.test_confmat.update(logits, targets)
        if self.io.output_per == "sequence":  # one (true, predicted) pair per sequence
            kept = targets != IGNORE_INDEX
            self._test_pairs.append(torch.stack([targets[kept], logits[kept].argmax(-1)], 1))

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.test_metrics.compute(), sync_dist=True)
        self.test_metrics.reset()
        self.test_confusion = self.test_confmat.compute().cpu()
        self.test_confmat.reset()
        pairs, self._test_pairs = self._test_pairs, []
        self.test_predictions = torch.cat(pairs).cpu() if pairs else None
