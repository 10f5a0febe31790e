"""Activation registry, the single-step cell module and initialisation options."""

import pytest
import torch
from torch import nn

from rnnlab.nn import ACTIVATIONS, GATE_ACTIVATIONS, RecurrentCell, build_stack
from rnnlab.nn.activations import get_activation, hard_sigmoid
from rnnlab.nn.cells import CellActivations


def test_registry_has_the_documented_names():
    assert set(ACTIVATIONS) == {
        "tanh",
        "relu",
        "leaky_relu",
        "elu",
        "gelu",
        "silu",
        "softsign",
        "hardtanh",
        "sigmoid",
    }
    assert set(GATE_ACTIVATIONS) == {"sigmoid", "hard_sigmoid"}


def test_unknown_activation_lists_valid_names():
    with pytest.raises(ValueError) as err:
        get_activation("relux")
    for name in ACTIVATIONS:
        assert name in str(err.value)


def test_hard_sigmoid_matches_keras_definition():
    x = torch.tensor([-3.0, -2.5, 0.0, 1.0, 2.5, 4.0])
    assert torch.allclose(hard_sigmoid(x), torch.tensor([0.0, 0.0, 0.5, 0.7, 1.0, 1.0]))


@pytest.mark.parametrize(
    "cell, ref_cls", [("rnn", nn.RNNCell), ("lstm", nn.LSTMCell), ("gru", nn.GRUCell)]
)
def test_cell_module_matches_torch_cell(cell, ref_cls):
    ref = ref_cls(5, 4)
    ours = RecurrentCell(cell, 5, 4)
    ours.load_state_dict(ref.state_dict())
    x, h = torch.randn(3, 5), torch.randn(3, 4)
    if cell == "lstm":
        c = torch.randn(3, 4)
        rh, rc = ref(x, (h, c))
        oh, oc = ours(x, (h, c))
        torch.testing.assert_close(oc, rc)
    else:
        rh, (oh,) = ref(x, h), ours(x, (h,))
    torch.testing.assert_close(oh, rh)


def test_lstm_cell_activation_defaults_to_activation_and_can_differ():
    acts = CellActivations("relu")
    assert acts.phi_c is torch.relu
    acts = CellActivations("relu", cell_activation="tanh")
    assert acts.phi is torch.relu and acts.phi_c is torch.tanh
    assert not acts.is_fused_default("lstm")


def test_irnn_identity_init_and_forget_bias():
    irnn = build_stack(
        4, {"cell": "rnn", "activation": "relu", "hidden_size": 4, "init": "identity"}
    )
    w_ih, w_hh, b_ih, b_hh = irnn.layers[0].weights(0)
    assert torch.equal(w_hh, torch.eye(4)) and torch.all(b_ih == 0) and torch.all(b_hh == 0)

    lstm = build_stack(
        4, {"cell": "lstm", "hidden_size": 3, "forget_bias": 1.0, "bidirectional": True}
    )
    for d in (0, 1):
        _, _, b_ih, b_hh = lstm.layers[0].weights(d)
        assert torch.all(b_ih[3:6] + b_hh[3:6] == 1.0)

    ortho = build_stack(4, {"cell": "gru", "hidden_size": 5, "init": "orthogonal"})
    w_hh = ortho.layers[0].weights(0)[1]
    for k in range(3):
        block = w_hh[k * 5 : (k + 1) * 5]
        torch.testing.assert_close(block @ block.T, torch.eye(5), atol=1e-5, rtol=0)
