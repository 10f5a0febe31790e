"""LSTM projection (proj_size, LSTMP): parity with nn.LSTM(proj_size=...), loop, padding, training."""

import pytest
import torch
from torch import nn

from rnnlab.nn import RecurrentLayer, build_stack
from rnnlab.nn.cells import CellActivations
from tests.unit.nn.variant_helpers import CONNECTIONS, check_overfits, check_padding_invariance


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("fused", ["auto", True, False])
def test_matches_nn_lstm_with_copied_weights(bidirectional, fused):
    torch.manual_seed(0)
    ref = nn.LSTM(5, 6, proj_size=3, batch_first=True, bidirectional=bidirectional)
    ours = RecurrentLayer("lstm", 5, 6, proj_size=3, bidirectional=bidirectional, fused=fused)
    ours.rnn.load_state_dict(ref.state_dict())
    # auto on CPU: the variant kernel, the faster path (benchmarks/fused_auto.py)
    assert ours.uses_fused == (fused is True)
    x = torch.randn(4, 7, 5, requires_grad=True)
    out, (h, c) = ours(x)
    rout, (rh, rc) = ref(x)
    assert out.shape == (4, 7, 3 * ours.num_directions) and c.shape[-1] == 6
    torch.testing.assert_close(out, rout, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h, rh, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(c, rc, atol=1e-5, rtol=1e-5)
    w = torch.randn_like(out)
    params = list(ours.rnn.parameters())
    ref_params = list(ref.parameters())
    g = torch.autograd.grad((out * w).sum() + h.sum() + 2 * c.sum(), [x, *params])
    rg = torch.autograd.grad((rout * w).sum() + rh.sum() + 2 * rc.sum(), [x, *ref_params])
    for a, b in zip(g, rg):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_state_dicts_load_both_ways():
    ours = RecurrentLayer("lstm", 4, 8, proj_size=2, bidirectional=True)
    ref = nn.LSTM(4, 8, proj_size=2, batch_first=True, bidirectional=True)
    ref.load_state_dict(ours.rnn.state_dict())  # ours -> nn.LSTM
    back = RecurrentLayer("lstm", 4, 8, proj_size=2, bidirectional=True)
    back.rnn.load_state_dict(ref.state_dict())  # nn.LSTM -> ours
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(back(x)[0], ours(x)[0])


def test_gradcheck_of_the_variant_kernel_with_lengths_and_other_activations():
    acts = CellActivations("gelu", gate_activation="hard_sigmoid", cell_activation="softsign")
    layer = RecurrentLayer("lstm", 3, 4, proj_size=2, activations=acts, bidirectional=True)
    layer = layer.double()
    assert not layer.uses_fused and "variant kernel, backend=cpp" in repr(layer)
    x = torch.randn(3, 4, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 1, 3])
    params = tuple(layer.parameters())

    assert torch.autograd.gradcheck(lambda x: layer(x, lengths)[0], (x,), eps=1e-6, atol=1e-6)
    out = layer(x, lengths)[0]
    (out * torch.randn_like(out)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params)


def test_init_options_shape_the_projection():
    ortho = RecurrentLayer("lstm", 3, 6, proj_size=2, init="orthogonal")
    w_hr = ortho.projection(0)
    torch.testing.assert_close(w_hr @ w_hr.T, torch.eye(2), atol=1e-5, rtol=0)
    ident = RecurrentLayer("lstm", 3, 6, proj_size=2, init="identity")
    assert torch.equal(ident.projection(0), torch.eye(2, 6))
    assert torch.equal(ident.weights(0)[1][:6], torch.eye(6, 2))


@pytest.mark.parametrize("connection", list(CONNECTIONS))
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_padding_invariance(connection, activation):
    check_padding_invariance(
        {"cell": "lstm", "proj_size": 3, "activation": activation, "bidirectional": True,
         "connection": CONNECTIONS[connection]}
    )  # fmt: skip


@pytest.mark.parametrize("connection", list(CONNECTIONS))
def test_trains_in_every_connection(connection):
    check_overfits(
        {
            "cell": "lstm",
            "proj_size": 8,
            "activation": "gelu",
            "connection": CONNECTIONS[connection],
        }
    )


def test_output_size_and_wrong_combinations():
    stack = build_stack(
        3, {"cell": "lstm", "hidden_size": 8, "proj_size": 3, "bidirectional": True}
    )
    assert stack.output_size == 6
    for cell in ("gru", "rnn", "indrnn"):
        with pytest.raises(
            ValueError,
            match=rf"model\.proj_size=4 needs model\.cell=lstm \(got '{cell}'\); valid cells for proj_size: lstm",
        ):
            build_stack(3, {"cell": cell, "proj_size": 4})
    with pytest.raises(
        ValueError, match=r"model\.proj_size=8 must be smaller than model\.hidden_size=8"
    ):
        build_stack(3, {"cell": "lstm", "hidden_size": 8, "proj_size": 8})
    with pytest.raises(ValueError, match=r"model\.proj_size=-1 must be an integer >= 0"):
        build_stack(3, {"cell": "lstm", "proj_size": -1})
    # gated feedback feeds back the projected states (width P): it composes too
    feedback = build_stack(
        3, {"cell": "lstm", "hidden_size": 8, "proj_size": 3, "num_layers": 2,
            "connection": {"name": "gated_feedback"}}
    )  # fmt: skip
    assert feedback.output_size == 3 and feedback(torch.randn(2, 4, 3))[0].shape == (2, 4, 3)
