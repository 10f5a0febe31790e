"""Padding never changes outputs at valid steps or final states: every cell, direction, connection."""

import pytest
import torch

from rnnlab.nn import build_stack, kernels

CONNECTIONS = {
    "stack": {"name": "stack"},
    "residual": {"name": "residual", "start_layer": 1},
    "highway": {"name": "highway"},
    "dense": {"name": "dense", "concat_output": True},
    "gated_feedback": {"name": "gated_feedback"},
    "parallel": {
        "name": "parallel",
        "branches": [
            {"cell": "lstm", "num_layers": 2, "connection": {"name": "residual"}},
            {"cell": "gru", "activation": "relu"},
        ],
    },
}


def flat_states(states):
    if isinstance(states, torch.Tensor):
        return [states]
    return [t for s in states for t in flat_states(s)]


@pytest.mark.parametrize("connection", list(CONNECTIONS))
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("activation", ["tanh", "gelu"])
def test_padded_batch_equals_each_sequence_alone(connection, cell, bidirectional, activation):
    stack = build_stack(
        3,
        {
            "cell": cell,
            "activation": activation,
            "hidden_size": 4,
            "num_layers": 2,
            "bidirectional": bidirectional,
            "connection": CONNECTIONS[connection],
        },
    ).eval()
    lengths = torch.tensor([6, 3, 1, 5])
    x = torch.randn(4, 6, 3)
    for b, n in enumerate(lengths.tolist()):
        x[b, n:] = 100.0  # garbage in the padding must not leak anywhere
    out, states = stack(x, lengths)
    batch_states = flat_states(states)
    for b, n in enumerate(lengths.tolist()):
        alone, alone_states = stack(x[b : b + 1, :n], torch.tensor([n]))
        torch.testing.assert_close(out[b, :n], alone[0], atol=1e-5, rtol=1e-5)
        assert torch.all(out[b, n:] == 0), "outputs at padded steps must be zero"
        for sb, sa in zip(batch_states, flat_states(alone_states)):
            # states are (D, B, H): compare this sequence's column
            torch.testing.assert_close(sb[:, b], sa[:, 0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_on_portable_kernel(monkeypatch, cell, bidirectional):
    """The same guarantee on the torch twin of the C++ kernel (the CUDA / fallback path)."""
    monkeypatch.setenv("RNNLAB_KERNEL", "python")
    kernels.reset_backend()
    try:
        test_padded_batch_equals_each_sequence_alone("stack", cell, bidirectional, "gelu")
    finally:
        kernels.reset_backend()
