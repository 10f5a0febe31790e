"""Evaluation (no autograd) on CPU runs a layer's input products in time chunks when
they exceed ``INFERENCE_CHUNK_BYTES`` (recurrent.run_direction): the kernel runs once per
chunk with the state carried, and must give the outputs and final states of one call."""

import pytest
import torch

from rnnlab.nn import RecurrentLayer
from rnnlab.nn import recurrent as recurrent_module


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "indrnn"])
def test_chunked_evaluation_equals_one_call(cell, monkeypatch):
    torch.manual_seed(0)
    layer = RecurrentLayer(cell, 3, 5, bidirectional=True, fused=False).double().eval()
    x = torch.randn(4, 9, 3, dtype=torch.float64)
    lengths = torch.tensor([9, 4, 0, 7])  # one sequence ends inside a chunk, one is empty
    state = tuple(
        torch.randn(2, 4, 5, dtype=torch.float64) for _ in range(2 if cell == "lstm" else 1)
    )
    want = layer(x, lengths, state)  # grad mode: one kernel call per direction
    calls = []
    original = recurrent_module.recurrence
    monkeypatch.setattr(
        recurrent_module, "recurrence", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    step_bytes = 4 * 5 * (4 if cell == "lstm" else 3 if cell == "gru" else 1) * 8
    monkeypatch.setattr(recurrent_module, "INFERENCE_CHUNK_BYTES", 2 * step_bytes)  # 2 steps
    with torch.no_grad():
        got = layer(x, lengths, state)
    assert len(calls) == 2 * 5, "each direction in chunks of 2 steps: 5 calls"
    torch.testing.assert_close(got[0], want[0], atol=1e-12, rtol=0)
    for a, b in zip(got[1], want[1], strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    assert torch.all(got[0][2] == 0) and torch.all(got[0][1, 4:] == 0)


def test_small_evaluations_and_training_stay_one_call(monkeypatch):
    layer = RecurrentLayer("lstm", 3, 5, fused=False)
    calls = []
    original = recurrent_module.recurrence
    monkeypatch.setattr(
        recurrent_module, "recurrence", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    x = torch.randn(2, 50, 3)
    with torch.no_grad():
        layer(x)  # 50 steps x 2 x 20 floats: far below the chunk size
    layer(x)[0].sum().backward()  # grad mode (training): one call
    assert len(calls) == 2
