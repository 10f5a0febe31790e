"""Sequence recognition with CTC: per-frame outputs, greedy and beam decoding, CER and WER.

Class 0 of the model's output is the CTC blank; dataset label ``k`` is output ``k + 1``.
The model has ``ceil(T / model.time_reduction)`` output frames for ``T`` input frames
(:meth:`~rnnlab.nn.model.RecurrentModel.output_lengths`); the loss and the decoders use
those lengths. Decoded labels become text through the dataset's spelling
(:func:`~rnnlab.tasks.decoding.spell`: words joined by spaces, or characters/pieces with
the word-boundary label read as a space); CER compares texts character by character, WER
word by word.

Validation and test score greedy decoding (``val/cer``, ``val/wer``, ``test/cer``,
``test/wer``). With ``task.decoder.test_beam`` (``rnnlab.evaluate`` always sets it) the
test pass also runs the beam search of ``task.decoder`` (``test/cer_beam``,
``test/wer_beam``). After ``trainer.test`` the task holds ``test_hypotheses``: one
``(reference, greedy, beam or None)`` text triple per test utterance, in the test
loader's order (this rank's share), for ``hypotheses.csv``.

Early stopping and checkpointing watch ``val/loss`` by default: CER/WER sit at 1.0 for
the first epochs while a CTC model emits only blanks, the loss keeps falling.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.text import CharErrorRate, WordErrorRate

from rnnlab.tasks.base import RecurrentTask
from rnnlab.tasks.decoding import (
    BLANK,
    WORD_SPELLING,
    BeamConfig,
    BeamSearchDecoder,
    greedy_decode,
    spell,
)

__all__ = ["CTCRecognitionTask", "greedy_decode"]


class CTCRecognitionTask(RecurrentTask):
    """CTC loss over per-frame outputs; greedy CER/WER; optional beam search at test."""

    per_step_outputs_follow_time_reduction = True

    def __init__(
        self,
        *args,
        decoder: Mapping[str, Any] | None = None,
        spelling: Mapping[str, Any] | None = None,
        **kwargs,
    ) -> None:
        kwargs.setdefault("monitor", "val/loss")
        kwargs.setdefault("mode", "min")
        super().__init__(*args, **kwargs)
        if not self.class_names:
            raise ValueError("a CTC task needs class_names (the label symbols) from its dataset")
        if self.io.output_per != "step" or self.io.output_dim != len(self.class_names) + 1:
            raise ValueError(
                f"a CTC task needs one output per step over blank + {len(self.class_names)} "
                f"labels; the data gives {self.io.output_dim} outputs per {self.io.output_per}"
            )
        self.beam_config = BeamConfig.from_mapping(decoder)
        self.spelling = dict(spelling or WORD_SPELLING)
        self._beam: BeamSearchDecoder | None = None
        self.val_cer, self.val_wer = CharErrorRate(), WordErrorRate()
        self.test_cer, self.test_wer = CharErrorRate(), WordErrorRate()
        self.test_cer_beam, self.test_wer_beam = CharErrorRate(), WordErrorRate()
        self.val_loss_mean = MeanMetric()
        self.val_loss_best = self.best_tracker("min")
        self.val_cer_best = self.best_tracker("min")
        self.val_wer_best = self.best_tracker("min")
        self.test_hypotheses: list[tuple[str, str, str | None]] | None = None
        self._test_rows: list[tuple[str, str, str | None]] = []

    def spell(self, labels: list[int]) -> str:
        return spell(self.class_names, labels, self.spelling)

    @property
    def beam_decoder(self) -> BeamSearchDecoder:
        """The beam search of ``task.decoder`` (built at first use: it reads the files)."""
        if self._beam is None:
            self._beam = BeamSearchDecoder(self.class_names, self.beam_config, self.spelling)
        return self._beam

    def loss_and_outputs(self, batch):
        logits = self(batch["inputs"], batch["lengths"])
        frames = self.net.output_lengths(batch["lengths"])
        log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # (T', B, C)
        targets = batch["targets"] + 1  # shift past the blank
        loss = F.ctc_loss(
            log_probs,
            targets,
            frames,
            batch["target_lengths"],
            blank=BLANK,
            zero_infinity=True,
        )
        return loss, logits

    def _eval_step(self, batch, cer, wer, stage: str):
        loss, logits = self.loss_and_outputs(batch)
        frames = self.net.output_lengths(batch["lengths"])
        hyps = [self.spell(h) for h in greedy_decode(logits, frames)]
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
        return loss, (refs, hyps, logits, frames)

    def validation_step(self, batch, batch_idx):
        loss, _ = self._eval_step(batch, self.val_cer, self.val_wer, "val")
        self.val_loss_mean.update(loss, weight=batch["targets"].shape[0])

    def on_validation_epoch_end(self) -> None:
        cer, wer = self.val_cer.compute(), self.val_wer.compute()
        self.val_loss_best(self.val_loss_mean.compute())
        self.val_cer_best(cer)
        self.val_wer_best(wer)
        self.log_dict(
            {
                "val/cer": cer,
                "val/wer": wer,
                "val/loss_best": self.val_loss_best.compute(),
                "val/cer_best": self.val_cer_best.compute(),
                "val/wer_best": self.val_wer_best.compute(),
            },
            prog_bar=True,
            sync_dist=True,
        )
        for metric in (self.val_cer, self.val_wer, self.val_loss_mean):
            metric.reset()

    def on_test_epoch_start(self) -> None:
        self._test_rows = []

    def test_step(self, batch, batch_idx):
        _, (refs, hyps, logits, frames) = self._eval_step(
            batch, self.test_cer, self.test_wer, "test"
        )
        beams: list[str | None] = [None] * len(refs)
        if self.beam_config.test_beam:
            beams = self.beam_decoder.transcribe(logits, frames)
            self.test_cer_beam.update(beams, refs)
            self.test_wer_beam.update(beams, refs)
        self._test_rows.extend(zip(refs, hyps, beams))

    def on_test_epoch_end(self) -> None:
        values = {"test/cer": self.test_cer.compute(), "test/wer": self.test_wer.compute()}
        if self.beam_config.test_beam:
            values["test/cer_beam"] = self.test_cer_beam.compute()
            values["test/wer_beam"] = self.test_wer_beam.compute()
        self.log_dict(values, sync_dist=True)
        for metric in (self.test_cer, self.test_wer, self.test_cer_beam, self.test_wer_beam):
            metric.reset()
        self.test_hypotheses, self._test_rows = self._test_rows, []
