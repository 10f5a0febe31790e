"""``rnnlab.evaluate``: one pass over the test set gives metrics and every report file."""

import csv
import json

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from rnnlab.evaluate import run_test_pass
from rnnlab.tasks import TASKS
from tests.unit.test_metrics import CONFUSION, EXPECTED

NAMES = ["a", "b", "c", "d"]
# (true, predicted) per test sequence; they make the confusion matrix CONFUSION
PAIRS = [(0, 0), (0, 0), (0, 1), (0, 1), (1, 1), (1, 2), (2, 2), (2, 0)]


class CountingLoader(DataLoader):
    """A DataLoader that counts how often it is iterated and how many batches it yields."""

    iterations = 0
    batches = 0

    def __iter__(self):
        type(self).iterations += 1
        for batch in super().__iter__():
            type(self).batches += 1
            yield batch


class Data(L.LightningDataModule):
    """8 test sequences; the first feature of step 0 is the class the model will predict."""

    class_names = NAMES

    def test_dataloader(self):
        items = []
        for target, predicted in PAIRS:
            x = torch.zeros(5, 3)
            x[0, 0] = predicted
            items.append({"inputs": x, "lengths": torch.tensor(5), "targets": torch.tensor(target)})
        return CountingLoader(items, batch_size=3)


def test_test_set_is_run_once_and_per_class_json_is_hand_computed(tmp_path, monkeypatch):
    monkeypatch.setattr(CountingLoader, "iterations", 0)
    monkeypatch.setattr(CountingLoader, "batches", 0)
    io = {"input_kind": "features", "input_dim": 3, "output_dim": 4, "output_per": "sequence"}
    task = TASKS["classification"](
        model={"cell": "gru", "hidden_size": 4}, io=io, class_names=NAMES
    )
    # a "model" whose prediction is fixed by the data: logits = one-hot(inputs[:, 0, 0])
    task.forward = lambda inputs, lengths: torch.nn.functional.one_hot(
        inputs[:, 0, 0].long(), 4
    ).float()
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    metrics = run_test_pass(trainer, task, Data(), tmp_path)

    assert (CountingLoader.iterations, CountingLoader.batches) == (1, 3)
    assert metrics["test/acc"] == pytest.approx(4 / 8)
    assert metrics["test/acc_from_confusion"] == pytest.approx(4 / 8)
    record = json.loads((tmp_path / "per_class.json").read_text())
    assert record["confusion_matrix"] == CONFUSION and record["labels"] == NAMES
    assert list(record["per_class"]) == NAMES
    for name, expected in zip(NAMES, EXPECTED.values()):
        assert record["per_class"][name] == pytest.approx(expected, abs=1e-12)
    with open(tmp_path / "predictions.csv", newline="") as f:
        rows = [(r["actual"], r["predicted"]) for r in csv.DictReader(f)]
    assert rows == [(NAMES[t], NAMES[p]) for t, p in PAIRS]  # test order
    assert (tmp_path / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files


def test_wandb_per_class_table_has_the_numbers_of_per_class_json():
    from rnnlab.loggers import log_classification_report

    logged = {}

    class Experiment:
        def log(self, values):
            logged.update(values)

    class Logger:
        experiment = Experiment()

    log_classification_report(Logger(), torch.tensor(CONFUSION), NAMES)
    table = logged["test/per_class"]
    assert table.columns == ["class", "precision", "recall", "f1", "support"]
    expected = [
        [n, e["precision"], e["recall"], e["f1"], e["support"]]
        for n, e in zip(NAMES, EXPECTED.values())
    ]
    assert [row[0] for row in table.data] == NAMES
    for row, want in zip(table.data, expected):
        assert row[1:] == pytest.approx(want[1:], abs=1e-12)
    assert "test/confusion_matrix" in logged
