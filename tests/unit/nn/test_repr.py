"""Every module prints the truth: cell, sizes, activations, what runs it, connection options."""

import pytest
import torch

from rnnlab.nn import build_stack, kernels
from rnnlab.nn.cells import CellActivations
from rnnlab.nn.connections import CONNECTIONS
from rnnlab.nn.recurrent import RecurrentLayer


def test_gelu_elman_layer_prints_gelu_and_the_kernel_not_nn_rnn_tanh():
    layer = RecurrentLayer("rnn", 3, 4, activations=CellActivations("gelu"))
    text = repr(layer)
    assert "activation=gelu" in text and "cell=rnn" in text
    assert "input_size=3" in text and "hidden_size=4" in text
    assert "path=kernel" in text
    assert "nonlinearity" not in text and "tanh" not in text and "RNN(" not in text
    # Elman has no gates and no cell state: no slot it does not use is printed
    assert "gate_activation" not in text and "cell_activation" not in text


def test_fused_layer_names_the_fused_module_and_every_lstm_slot():
    text = repr(RecurrentLayer("lstm", 3, 4, bidirectional=True, fused=True))
    assert "path=fused nn.LSTM" in text and "bidirectional=True" in text
    assert "activation=tanh" in text and "gate_activation=sigmoid" in text
    assert "cell_activation=tanh" in text
    forced = RecurrentLayer("gru", 3, 4, fused=False)
    assert "path=kernel" in repr(forced) and "gate_activation=sigmoid" in repr(forced)


def test_kernel_backend_is_named_without_building(monkeypatch):
    monkeypatch.setenv("RNNLAB_KERNEL", "python")
    kernels.reset_backend()
    try:
        layer = RecurrentLayer("rnn", 3, 4, activations=CellActivations("gelu"))
        assert "backend=python" in repr(layer)
        assert "cpp" not in kernels._state  # the repr decided nothing, built nothing
    finally:
        kernels.reset_backend()


def test_lstm_cell_activation_prints_resolved():
    acts = CellActivations("relu", cell_activation="softsign")
    text = repr(RecurrentLayer("lstm", 3, 4, activations=acts))
    assert "activation=relu" in text and "cell_activation=softsign" in text
    assert "path=kernel" in text


def connection_cfg(name):
    if name == "parallel":
        return {
            "name": "parallel",
            "branches": [{"cell": "gru"}, {"connection": {"name": "dense"}}],
        }
    return {"name": name}


@pytest.mark.parametrize("name", list(CONNECTIONS))
def test_each_connection_repr_names_it_and_its_sizes(name):
    stack = build_stack(3, {"hidden_size": 4, "num_layers": 2, "connection": connection_cfg(name)})
    first = repr(stack).splitlines()[0:2]
    assert first[0] == f"{type(stack).__name__}("
    assert f"name={name}," in first[1]
    assert "input_size=3" in first[1] and f"output_size={stack.output_size}" in first[1]
    if name != "parallel":
        assert "num_layers=2" in first[1]
    else:
        assert "branches=2" in first[1] and "name=stack" in repr(stack)


@pytest.mark.parametrize(
    "connection, shown",
    [
        ({"name": "residual", "start_layer": 1}, "start_layer=1, project=True"),
        ({"name": "highway", "gate_bias": -2.0, "project": True}, "gate_bias=-2.0, project=True"),
        ({"name": "dense", "concat_output": True}, "concat_output=True"),
        ({"name": "gated_feedback"}, "bidirectional=False"),
    ],
)
def test_connection_options_are_printed(connection, shown):
    stack = build_stack(3, {"hidden_size": 4, "num_layers": 2, "connection": connection})
    assert shown in repr(stack).splitlines()[1]


def test_gated_feedback_layers_say_they_only_hold_weights():
    stack = build_stack(
        3,
        {
            "cell": "lstm",
            "hidden_size": 4,
            "num_layers": 2,
            "connection": {"name": "gated_feedback"},
        },
    )
    text = repr(stack)
    assert "path=gated_feedback kernel, backend=" in text  # the direction
    assert text.count("gated_feedback kernel (this layer holds weights only)") == 2
    assert "fused" not in text


def test_model_summary_of_a_gelu_elman_model_has_no_tanh():
    stack = build_stack(5, {"cell": "rnn", "activation": "gelu", "hidden_size": 8, "num_layers": 3})
    text = repr(stack)
    assert "tanh" not in text and "activation=gelu" in text and "nonlinearity" not in text
    assert torch.nn.RNN in {type(m) for m in stack.modules()}  # still nn.RNN's weights
