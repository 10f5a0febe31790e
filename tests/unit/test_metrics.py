"""``rnnlab.metrics``: per-class scores from a confusion matrix, the CSV log reader."""

import pytest
import torch

from rnnlab.metrics import class_labels, per_class, read_metrics_csv

# rows: true class, columns: predicted. Class 3 has no sample and is never predicted.
CONFUSION = [
    [2, 2, 0, 0],
    [0, 1, 1, 0],
    [1, 0, 1, 0],
    [0, 0, 0, 0],
]
# by hand: precision = C[k,k] / column sum, recall = C[k,k] / row sum, F1 = 2PR / (P + R)
EXPECTED = {
    "a": {"precision": 2 / 3, "recall": 2 / 4, "f1": 4 / 7, "support": 4},
    "b": {"precision": 1 / 3, "recall": 1 / 2, "f1": 2 / 5, "support": 2},
    "c": {"precision": 1 / 2, "recall": 1 / 2, "f1": 1 / 2, "support": 2},
    "d": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0},
}


@pytest.mark.parametrize("kind", ["list", "tensor"])
def test_per_class_equals_hand_computed_values(kind):
    confusion = torch.tensor(CONFUSION) if kind == "tensor" else CONFUSION
    scores = per_class(confusion, ["a", "b", "c", "d"])
    assert list(scores) == ["a", "b", "c", "d"]  # class order, not sorted
    for name, expected in EXPECTED.items():
        assert scores[name] == pytest.approx(expected, abs=1e-12)
        assert isinstance(scores[name]["support"], int)


def test_class_names_fall_back_to_indices():
    assert class_labels(3, None) == ["0", "1", "2"]
    assert class_labels(3, ["x", "y"]) == ["0", "1", "2"]  # wrong number of names
    assert list(per_class(CONFUSION)) == ["0", "1", "2", "3"]


def test_non_square_confusion_is_refused():
    with pytest.raises(ValueError, match=r"must be square .* lengths \[2, 1\]"):
        per_class([[1, 2], [3]])


def test_read_metrics_csv_keeps_epoch_rows(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(
        "epoch,step,train/loss_step,train/loss_epoch,val/acc\n"
        "0,3,0.9,,0.5\n0,3,,0.8,\n,4,0.7,,\n1,7,,0.6,0.75\n"
    )
    assert read_metrics_csv(path) == {
        "val/acc": [(0, 0.5), (1, 0.75)],
        "train/loss_epoch": [(0, 0.8), (1, 0.6)],
    }
