"""The CUDA-graph bookkeeping of the Triton backend (nn/kernels/triton_graphs.py), on CPU.

A real capture needs CUDA; here the capture is replaced by re-running the recorded
launches on the same static buffers, which is what a replay does. What must hold:
a second call of the same shape with other inputs gets its own results (inputs are
copied in, outputs cloned out), the tensors a first forward saved for its backward
are not overwritten by a second forward, and evicting graphs changes nothing.
"""

import os

os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

from rnnlab.nn.kernels import Recurrence, triton_graphs  # noqa: E402
from rnnlab.nn.kernels.triton_parity import (  # noqa: E402
    ACTS,
    feedback_parity,
    mismatches,
    recurrence_inputs,
)
from rnnlab.nn.kernels.triton_parity import _run as run_layer  # noqa: E402


@pytest.fixture
def fake_graphs(monkeypatch):
    recorded = []

    def record(fn):
        recorded.append(fn)
        return fn  # "replay" = run the same launches on the same static buffers

    monkeypatch.setattr(triton_graphs, "graphs_enabled", lambda device: True)
    monkeypatch.setattr(triton_graphs, "_warmup", lambda fn: fn())
    monkeypatch.setattr(triton_graphs, "_record", record)
    triton_graphs._graphs.clear()
    yield recorded
    triton_graphs._graphs.clear()


def _apply(cell, seed, backend):
    leaves, lengths, weights = recurrence_inputs(cell, "cpu", seed=seed)
    if backend == "triton":
        leaves = [t.float() for t in leaves]
    return run_layer(cell, ACTS[2], leaves, lengths, weights, backend)


@pytest.mark.parametrize("max_graphs", [16, 1])
def test_two_calls_of_one_shape_keep_their_own_results(fake_graphs, monkeypatch, max_graphs):
    monkeypatch.setattr(triton_graphs, "MAX_GRAPHS", max_graphs)
    cell = "lstm"
    first = _apply(cell, 0, "triton")
    second = _apply(cell, 1, "triton")
    assert len(fake_graphs) == (2 if max_graphs > 1 else 4)  # fwd + bwd, or re-captured
    assert len(triton_graphs._graphs) == min(2, max_graphs)
    for got, seed in ((first, 0), (second, 1)):
        want = _apply(cell, seed, "python")
        names = [str(k) for k in range(len(want))]
        assert mismatches(list(zip(names, got, want, strict=True))) == []
    assert not torch.equal(first[0], second[0])


def test_saved_tensors_survive_a_second_forward(fake_graphs):
    """forward A, forward B (same shape: same graph), then backward A: A's gradients."""
    cell = "gru"
    results = {}
    pending = []
    for seed in (0, 1):
        leaves, lengths, weights = recurrence_inputs(cell, "cpu", seed=seed)
        ins = [t.float().requires_grad_(k < 5) for k, t in enumerate(leaves)]
        out, h, _ = Recurrence.apply(
            *ins[:5], ins[5].new_empty(0), lengths, cell, ACTS[2], "triton"
        )
        loss = (out.double() * weights[0]).sum() + (h.double() * weights[1]).sum()
        pending.append((seed, loss, ins[:5], out, h))
    for seed, loss, ins, out, h in pending:
        results[seed] = [out, h, *torch.autograd.grad(loss, ins)]
    for seed in (0, 1):
        want = _apply(cell, seed, "python")
        names = [str(k) for k in range(len(want))]
        assert mismatches(list(zip(names, results[seed], want, strict=True))) == []


def test_gated_feedback_through_the_graph_path(fake_graphs):
    assert mismatches(feedback_parity("lstm", "gelu", 2)) == []
    assert mismatches(feedback_parity("lstm", "gelu", 2)) == []  # replayed
    assert any(k[0] == "gf_bwd" for k in triton_graphs._graphs)
