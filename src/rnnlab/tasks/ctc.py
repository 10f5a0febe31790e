"""Sequence recognition with CTC: per-frame outputs, greedy decoding, CER and WER.

Class 0 of the model's output is the CTC blank; dataset label ``k`` is output ``k + 1``.
Labels are words or characters (``class_names``); decoded label sequences are spelled
out with spaces for WER and compared character by character for CER.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.text import CharErrorRate, WordErrorRate

from rnnlab.tasks.base import RecurrentTask

BLANK = 0


def greedy_decode(logits: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    """Best path: argmax per frame, merge repeats, drop blanks; label ids (0-based)."""
    best = logits.argmax(-1).cpu()
    out = []
    for seq, n in zip(best, lengths.cpu().tolist()):
        labels, prev = [], BLANK
        for s in seq[:n].tolist():
            if s != prev and s != BLANK:
                labels.append(s - 1)
            prev = s
        out.append(labels)
    return out


class CTCRecognitionTask(RecurrentTask):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("monitor", "val/wer")
        kwargs.setdefault("mode", "min")
        super().__init__(*args, **kwargs)
        if not self.class_names:
            raise ValueError("a CTC task needs class_names (the label symbols) from its dataset")
        self.val_cer, self.val_wer = CharErrorRate(), WordErrorRate()
        self.test_cer, self.test_wer = CharErrorRate(), WordErrorRate()
        self.val_wer_best = self.best_tracker("min")

    def spell(self, labels: list[int]) -> str:
        return " ".join(self.class_names[k] for k in labels)

    def loss_and_outputs(self, batch):
        logits = self(batch["inputs"], batch["lengths"])
        log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # (T, B, C)
        targets = batch["targets"] + 1  # shift past the blank
        loss = F.ctc_loss(
            log_probs,
            targets,
            batch["lengths"],
            batch["target_lengths"],
            blank=BLANK,
            zero_infinity=True,
        )
        return loss, logits

    def _eval_step(self, batch, cer, wer, stage: str) -> None:
        loss, logits = self.loss_and_outputs(batch)
        hyps = [self.spell(h) for h in greedy_decode(logits, batch["lengths"])]
        refs = [
            self.spell(t[:n].tolist())
            for t, n in zip(batch["targets"].cpu(), batch["target_lengths"].cpu().tolist())
        ]
        cer.update(hyps, refs)
        wer.update(hyps, refs)
        self.log(
            f"{stage}/loss",
            loss,
            on_epoch=True,
            prog_bar=True,
            batch_size=len(refs),
            sync_dist=True,
        )

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, self.val_cer, self.val_wer, "val")

    def on_validation_epoch_end(self) -> None:
        wer = self.val_wer.compute()
        self.val_wer_best(wer)
        self.log_dict(
            {
                "val/cer": self.val_cer.compute(),
                "val/wer": wer,
                "val/wer_best": self.val_wer_best.compute(),
            },
            prog_bar=True,
            sync_dist=True,
        )
        self.val_cer.reset()
        self.val_wer.reset()

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, self.test_cer, self.test_wer, "test")

    def on_test_epoch_end(self) -> None:
        self.log_dict(
            {"test/cer": self.test_cer.compute(), "test/wer": self.test_wer.compute()},
            sync_dist=True,
        )
        self.test_cer.reset()
        self.test_wer.reset()
