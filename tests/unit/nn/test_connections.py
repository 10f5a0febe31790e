"""Every connection builds for 1, 2, 4 layers, every cell, both directions, and can learn."""

import pytest
import torch

from rnnlab.nn import ModelIO, build_model, build_stack
from rnnlab.nn.connections import CONNECTIONS

CELLS = ["rnn", "lstm", "gru"]


def connection_cfg(name):
    if name == "parallel":
        return {
            "name": "parallel",
            "branches": [{"cell": "lstm"}, {"connection": {"name": "highway"}}],
        }
    return {"name": name}


@pytest.mark.parametrize("name", list(CONNECTIONS))
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("num_layers", [1, 2, 4])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_connection_builds_and_overfits(name, cell, num_layers, bidirectional):
    torch.manual_seed(0)
    model = build_model(
        {
            "cell": cell,
            "hidden_size": 16,
            "num_layers": num_layers,
            "bidirectional": bidirectional,
            "connection": connection_cfg(name),
        },
        ModelIO("features", 3, 2, "sequence"),
    )
    x = torch.randn(8, 6, 3)
    lengths = torch.tensor([6, 5, 4, 3, 6, 2, 6, 1])
    y = torch.tensor([0, 1, 0, 1, 1, 0, 1, 0])
    logits = model(x, lengths)
    assert logits.shape == (8, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    start = loss_fn(logits, y).item()
    for _ in range(80):
        opt.zero_grad()
        loss = loss_fn(model(x, lengths), y)
        loss.backward()
        opt.step()
    final = loss_fn(model(x, lengths), y).item()
    assert final < 0.25 * start, f"loss {start:.3f} -> {final:.3f}"


def test_output_sizes():
    assert (
        build_stack(
            3,
            {
                "hidden_size": 5,
                "num_layers": 3,
                "connection": {"name": "dense", "concat_output": True},
            },
        ).output_size
        == 15
    )
    assert build_stack(3, {"hidden_size": 5, "bidirectional": True}).output_size == 10
    par = build_stack(
        3,
        {
            "hidden_size": 5,
            "connection": {
                "name": "parallel",
                "branches": [{}, {"hidden_size": 7, "bidirectional": True}],
            },
        },
    )
    assert par.output_size == 5 + 14
    assert par.segments == [(5, False), (14, True)]


def test_residual_refuses_unjoinable_widths_without_projection():
    with pytest.raises(ValueError, match="cannot join width 3 to width 8.*project"):
        build_stack(
            3,
            {
                "hidden_size": 8,
                "num_layers": 2,
                "connection": {"name": "residual", "start_layer": 1, "project": False},
            },
        )
    # with projection (the default) the same widths are joined by a learned P
    stack = build_stack(
        3, {"hidden_size": 8, "num_layers": 2, "connection": {"name": "residual", "start_layer": 1}}
    )
    assert isinstance(stack.skips[0], torch.nn.Linear) and stack.skips[0].weight.shape == (8, 3)
    assert isinstance(stack.skips[1], torch.nn.Identity)


def test_highway_starts_close_to_carrying_input():
    stack = build_stack(4, {"hidden_size": 4, "connection": {"name": "highway", "gate_bias": -2.0}})
    assert torch.all(stack.gates[0].bias == -2.0)


def test_gated_feedback_uses_cross_layer_recurrence():
    """Changing layer 2's cross weights changes layer 1's output: feedback flows down."""
    torch.manual_seed(0)
    stack = build_stack(
        3,
        {
            "cell": "gru",
            "hidden_size": 4,
            "num_layers": 2,
            "connection": {"name": "gated_feedback"},
        },
    )
    x = torch.randn(2, 5, 3)
    _, states = stack(x)
    before = states[0][0].clone()
    with torch.no_grad():
        stack.directions[0].cross[0].add_(1.0)  # U^{2->1}
    _, states = stack(x)
    assert not torch.allclose(before, states[0][0])


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"num_layers": 0}, "num_layers=0"),
        ({"hidden_size": -1}, "hidden_size=-1"),
        ({"cell": "lstmx"}, "valid: rnn, lstm, gru"),
        ({"activation": "relux"}, "valid: .*gelu"),
        ({"gate_activation": "tanh"}, "valid: hard_sigmoid, sigmoid"),
        ({"connection": {"name": "skip"}}, "valid: stack, residual"),
        (
            {"connection": {"name": "stack", "start_layer": 2}},
            r"unknown key\(s\) \['start_layer'\]",
        ),
        ({"dropout": 1.5}, "dropout=1.5"),
        ({"hiden_size": 4}, r"unknown key\(s\) \['hiden_size'\]"),
        ({"init": "xavier"}, "valid: default, orthogonal, identity"),
    ],
)
def test_bad_config_is_refused_with_key_and_valid_values(bad, match):
    with pytest.raises(ValueError, match=match):
        build_stack(3, bad)
