"""``rnnlab.evaluate`` on a CTC task: one test pass gives greedy and beam CER/WER and
``hypotheses.csv``."""

import csv

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from rnnlab.evaluate import HYPOTHESES_COLUMNS, beam_settings, error_rates, run_test_pass
from rnnlab.tasks import TASKS

NAMES = ["zero", "one", "two"]
# (reference labels, frames the "model" emits: output c = label c-1, 0 the blank)
UTTERANCES = [
    ([0, 1], [1, 1, 0, 2]),  # "zero one": right
    ([2, 2], [3, 0, 3, 0]),  # "two two": right (blank between the repeats)
    ([1, 0, 2], [2, 2, 2, 3]),  # "one two": a deletion
]


class Data(L.LightningDataModule):
    class_names = NAMES

    def test_dataloader(self):
        items = []
        for ref, frames in UTTERANCES:
            items.append(
                {
                    "inputs": torch.tensor(frames, dtype=torch.float).unsqueeze(1),
                    "lengths": torch.tensor(len(frames)),
                    "targets": torch.tensor(ref + [0] * (3 - len(ref))),
                    "target_lengths": torch.tensor(len(ref)),
                }
            )
        return DataLoader(items, batch_size=2)


def test_hypotheses_csv_and_greedy_and_beam_metrics(tmp_path):
    io = {"input_kind": "features", "input_dim": 1, "output_dim": 4, "output_per": "step"}
    task = TASKS["ctc"](
        model={"cell": "gru", "hidden_size": 4},
        io=io,
        class_names=NAMES,
        decoder=beam_settings(None, {"beam_size": 4}),
    )
    # a "model" whose frames are fixed by the data: logits = 10 * one-hot(frame)
    task.forward = lambda inputs, lengths: (
        10 * torch.nn.functional.one_hot(inputs[..., 0].long(), 4).float()
    )
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    metrics = run_test_pass(trainer, task, Data(), tmp_path)
    with open(tmp_path / "hypotheses.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == HYPOTHESES_COLUMNS
    assert [r["reference"] for r in rows] == ["zero one", "two two", "one zero two"]
    assert [r["greedy"] for r in rows] == ["zero one", "two two", "one two"]
    assert [r["beam"] for r in rows] == [r["greedy"] for r in rows]
    assert [float(r["wer_greedy"]) for r in rows] == pytest.approx([0, 0, 1 / 3])
    assert float(rows[2]["cer_greedy"]) == pytest.approx(5 / 12)  # "zero " deleted
    # corpus rates: WER 1 error / 7 words, CER 5 / (8 + 7 + 12) characters
    assert metrics["test/wer"] == pytest.approx(1 / 7)
    assert metrics["test/cer"] == pytest.approx(5 / 27)
    assert metrics["test/wer_beam"] == pytest.approx(metrics["test/wer"])
    assert metrics["test/cer_beam"] == pytest.approx(metrics["test/cer"])
    assert metrics["test/ser"] == pytest.approx(1 / 3) == metrics["test/ser_beam"]


def test_evaluate_turns_the_beam_on_over_the_runs_decoder():
    run = OmegaConf.create({"beam_size": 8, "lm_weight": 0.5})
    merged = beam_settings(run, OmegaConf.create({"beam_size": 32, "lexicon": None}))
    assert merged == {"beam_size": 32, "lm_weight": 0.5, "test_beam": True}
    assert beam_settings(None, None) == {"test_beam": True}


def test_error_rates_of_one_utterance():
    assert error_rates("one two", "one two") == (0.0, 0.0)
    assert error_rates("one two", "one") == pytest.approx((4 / 7, 0.5))
    assert error_rates("", "") == (0.0, 0.0) and error_rates("", "x") == (1.0, 1.0)
