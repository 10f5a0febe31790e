"""IndRNN (cell=indrnn): kernel vs the per-step cell, gradcheck, bound, init, padding, training."""

import pytest
import torch
from torch.nn import functional as F

from rnnlab.nn import RecurrentCell, RecurrentLayer, build_stack
from rnnlab.nn.activations import ACTIVATIONS
from rnnlab.nn.cells import CellActivations, cell_step, recurrent_term
from rnnlab.nn.kernels import Recurrence, recurrence
from tests.unit.nn.variant_helpers import CONNECTIONS, check_overfits, check_padding_invariance


def oracle(acts, x, lengths, w_ih, u, b_ih, b_hh, h0):
    """Autograd through the per-step cell math (cells.cell_step), masking padded steps."""
    acts = CellActivations(acts)
    outs, h = [], h0
    for t in range(x.shape[1]):
        gx = F.linear(x[:, t], w_ih, b_ih)
        (new,) = cell_step("indrnn", acts, gx, recurrent_term("indrnn", h, u, b_hh), (h,))
        m = (t < lengths).unsqueeze(1)
        h = torch.where(m, new, h)
        outs.append(new * m)
    return torch.stack(outs, 1), h


def test_single_step_cell_is_one_layer_step():
    layer = RecurrentLayer("indrnn", 3, 4, max_weight=0.6)
    cell = RecurrentCell("indrnn", 3, 4, max_weight=0.6)
    with torch.no_grad():
        for p, q in zip(cell.parameters(), layer.parameters()):
            p.copy_(q)
        cell.weight_hh[0] = 2.0  # clamped to 0.6 by both
        layer.rnn.weight_hh_l0[0] = 2.0
    x = torch.randn(2, 2, 3)
    (h1,) = cell(x[:, 0])
    (h2,) = cell(x[:, 1], (h1,))
    torch.testing.assert_close(layer(x)[0], torch.stack([h1, h2], 1))


def rnd(g, *shape, dtype=torch.float64):
    return (torch.rand(*shape, generator=g, dtype=dtype) * 2 - 1).requires_grad_()


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_kernel_matches_per_step_oracle(backend, activation):
    g = torch.Generator().manual_seed(0)
    x, w_ih, u = rnd(g, 3, 5, 4), rnd(g, 3, 4), rnd(g, 3)
    b_ih, b_hh, h0 = rnd(g, 3), rnd(g, 3), rnd(g, 3, 3)
    lengths = torch.tensor([5, 2, 4])
    ref_out, ref_h = oracle(activation, x, lengths, w_ih, u, b_ih, b_hh, h0)
    acts = (activation, activation, "sigmoid")
    out, (h,) = recurrence("indrnn", acts, F.linear(x, w_ih), u, b_hh, h0, None, lengths, b_ih)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(h, ref_h)
    w = torch.randn_like(out)
    inputs = (x, w_ih, u, b_ih, b_hh, h0)
    ref = torch.autograd.grad((ref_out * w).sum() + 2 * ref_h.sum(), inputs)
    got = torch.autograd.grad((out * w).sum() + 2 * h.sum(), inputs)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("activation", ["tanh", "relu", "gelu", "softsign"])
def test_gradcheck(backend, activation):
    g = torch.Generator().manual_seed(1)
    gx, u, b_ih, b_hh, h0 = rnd(g, 3, 4, 2), rnd(g, 2), rnd(g, 2), rnd(g, 2), rnd(g, 3, 2)
    lengths = torch.tensor([4, 2, 3])
    acts = (activation, activation, "sigmoid")
    c0 = h0.new_empty(0)

    def f(gx, u, b_ih, b_hh, h0):
        out, h, _ = Recurrence.apply(gx, u, b_ih, b_hh, h0, c0, lengths, "indrnn", acts, backend)
        return out, h

    assert torch.autograd.gradcheck(f, (gx, u, b_ih, b_hh, h0), eps=1e-6, atol=1e-6)


def test_layer_gradcheck_through_the_bound():
    layer = RecurrentLayer("indrnn", 3, 2, bidirectional=True, max_weight=0.5).double()
    with torch.no_grad():
        layer.rnn.weight_hh_l0.copy_(torch.tensor([0.2, 0.9]))  # the 0.9 is clamped
    x = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 2])
    assert torch.autograd.gradcheck(lambda x: layer(x, lengths)[0], (x,), eps=1e-6, atol=1e-6)
    layer(x, lengths)[0].sum().backward()
    assert layer.rnn.weight_hh_l0.grad[1] == 0, "no gradient beyond the bound"
    assert layer.rnn.weight_hh_l0.grad[0] != 0


def test_bound_is_applied_in_forward_and_init_is_in_range():
    layer = RecurrentLayer("indrnn", 3, 64, max_weight=0.7)
    u = layer.weights(0)[1]
    assert u.shape == (64,) and bool((u >= 0).all() and (u <= 0.7).all())
    with torch.no_grad():
        u.fill_(5.0)
    ref = RecurrentLayer("indrnn", 3, 64, max_weight=0.7)
    ref.load_state_dict(layer.state_dict())
    with torch.no_grad():
        ref.rnn.weight_hh_l0.fill_(0.7)
    x = torch.randn(2, 5, 3)
    torch.testing.assert_close(layer(x)[0], ref(x)[0])
    ident = RecurrentLayer("indrnn", 3, 4, init="identity", max_weight=0.5)
    assert torch.all(ident.weights(0)[1] == 0.5) and torch.all(ident.weights(0)[2] == 0)
    unbounded = RecurrentLayer("indrnn", 3, 4, max_weight=None)
    assert unbounded.max_weight is None and "max_weight=None" in repr(unbounded)


def test_state_dict_uses_rnn_names_with_a_vector_recurrent_weight():
    sd = RecurrentLayer("indrnn", 3, 4, bidirectional=True).state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == {
        f"rnn.{n}{s}": shape
        for s in ("_l0", "_l0_reverse")
        for n, shape in (
            ("weight_ih", (4, 3)),
            ("weight_hh", (4,)),
            ("bias_ih", (4,)),
            ("bias_hh", (4,)),
        )
    }


def test_repr_names_the_kernel_path():
    text = repr(RecurrentLayer("indrnn", 3, 4, activations=CellActivations("tanh")))
    assert "cell=indrnn" in text and "path=kernel" in text and "gate_activation" not in text


@pytest.mark.parametrize("connection", [c for c in CONNECTIONS if c != "gated_feedback"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_invariance(connection, bidirectional):
    check_padding_invariance(
        {"cell": "indrnn", "activation": "relu", "bidirectional": bidirectional,
         "connection": CONNECTIONS[connection]}
    )  # fmt: skip


def test_padding_invariance_on_torch_ops(monkeypatch):
    from rnnlab.nn import kernels

    monkeypatch.setenv("RNNLAB_KERNEL", "python")
    kernels.reset_backend()
    try:
        check_padding_invariance({"cell": "indrnn", "activation": "gelu", "bidirectional": True})
    finally:
        kernels.reset_backend()


@pytest.mark.parametrize("connection", [c for c in CONNECTIONS if c != "gated_feedback"])
def test_trains_in_every_connection(connection):
    check_overfits({"cell": "indrnn", "activation": "relu", "connection": CONNECTIONS[connection]})


def test_wrong_combinations_fail_at_build_naming_the_key():
    with pytest.raises(
        ValueError,
        match=r"model\.cell='indrnn' cannot run with connection\.name=gated_feedback.*valid cells: rnn, lstm, gru",
    ):
        build_stack(3, {"cell": "indrnn", "connection": {"name": "gated_feedback"}})
    with pytest.raises(ValueError, match=r"model\.indrnn_max_weight=-1.*> 0 or null"):
        build_stack(3, {"cell": "indrnn", "indrnn_max_weight": -1})
    with pytest.raises(ValueError, match=r"model\.cell='ind'.*indrnn"):
        build_stack(3, {"cell": "ind"})


@pytest.mark.parametrize("bidirectional", [False, True])
def test_li_init_draws_small_inputs_and_long_memory_units(bidirectional):
    top = 2 ** (1 / 500)  # Li et al.'s bound 2^{1/T} at T=500
    layer = RecurrentLayer(
        "indrnn", 400, 64, init="indrnn", max_weight=top, bidirectional=bidirectional
    )
    for d in range(layer.num_directions):
        w_ih, u, b_ih, b_hh = layer.weights(d)
        assert abs(w_ih.mean().item()) < 5e-5 and abs(w_ih.std().item() - 1e-3) < 5e-5
        assert torch.all(b_ih == 0) and torch.all(b_hh == 0)
        short, long = u[:-8], u[-8:]  # 64 // 8 long-memory units, last
        assert bool((short >= 0).all() and (short <= top).all()) and short.max() > 0.5
        assert short.min() < 1 / top  # not all long: spread over U(0, top)
        assert bool((long >= 1 / top).all() and (long <= top).all())
    # The long units survive T=500 steps within a factor 2 either way; the rest forget.
    assert bool(((u[-8:] ** 500 > 0.5) & (u[-8:] ** 500 < 2)).all())
    assert (u[:-8] ** 500 > 0.5).float().mean() < 0.2


def test_li_init_keeps_one_long_unit_and_honours_bounds_at_or_below_one():
    small = RecurrentLayer("indrnn", 2, 3, init="indrnn", max_weight=1.5)
    u = small.weights(0)[1]
    assert bool((u[-1] >= 1 / 1.5) and (u[-1] <= 1.5)) and bool((u[:-1] <= 1.5).all())
    capped = RecurrentLayer("indrnn", 2, 16, init="indrnn", max_weight=0.9)
    assert torch.all(capped.weights(0)[1][-2:] == 0.9)  # the range collapses to the bound
    unbounded = RecurrentLayer("indrnn", 2, 16, init="indrnn", max_weight=None)
    assert torch.all(unbounded.weights(0)[1][-2:] == 1.0)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_li_init_is_refused_for_other_cells(cell):
    valid = "default, orthogonal, identity"
    with pytest.raises(
        ValueError, match=rf"init='indrnn'.*needs cell=indrnn.*valid for {cell}: {valid}$"
    ):
        RecurrentLayer(cell, 3, 4, init="indrnn")
    with pytest.raises(
        ValueError, match=rf"model\.init='indrnn'.*needs model\.cell=indrnn.*{cell}: {valid}$"
    ):
        build_stack(3, {"cell": cell, "init": "indrnn"})


def test_li_init_is_a_valid_model_init():
    stack = build_stack(
        2,
        {"cell": "indrnn", "activation": "relu", "init": "indrnn", "num_layers": 2,
         "indrnn_max_weight": 2 ** (1 / 100), "connection": {"name": "residual"}},
    )  # fmt: skip
    for layer in stack.layers:
        assert torch.all(layer.weights(0)[2] == 0)
        assert bool((layer.weights(0)[1][-16:] >= 2 ** (-1 / 100)).all())
