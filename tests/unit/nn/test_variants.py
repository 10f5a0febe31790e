"""Greff LSTM variants, peepholes, layer norm, recurrent dropout and zoneout (nn/variants.py).

Each is checked against its equation on one step, by float64 gradcheck, for padding
invariance, for training in every connection, for reproducible masks (training only),
and for wrong combinations failing at build time with the key named.
"""

import pytest
import torch

from rnnlab.nn import RecurrentLayer, build_stack
from rnnlab.nn.cells import CellActivations
from rnnlab.nn.variant_cells import block_norm, lstm_step
from rnnlab.nn.variants import LSTM_VARIANTS, Variant, VariantParams
from tests.unit.nn.variant_helpers import CONNECTIONS, check_overfits, check_padding_invariance

GREFF = [v for v in LSTM_VARIANTS if v != "vanilla"]
# One config per option, on the cells it applies to.
OPTIONS = {
    **{v: {"cell": "lstm", "lstm_variant": v} for v in GREFF},
    "peephole": {"cell": "lstm", "peephole": True},
    "cifg_peephole": {"cell": "lstm", "lstm_variant": "cifg", "peephole": True},
    **{
        f"layer_norm_{c}": {"cell": c, "layer_norm": True} for c in ("lstm", "gru", "rnn", "indrnn")
    },
    **{f"recurrent_dropout_{c}": {"cell": c, "recurrent_dropout": 0.3} for c in ("lstm", "gru")},
    **{f"zoneout_{c}": {"cell": c, "zoneout": 0.2} for c in ("lstm", "rnn")},
}
# gated_feedback runs the variants on its own loop: tests/unit/nn/test_gated_feedback_variants.py
NOT_FEEDBACK = [c for c in CONNECTIONS if c != "gated_feedback"]


def test_each_lstm_variant_follows_its_equation():
    torch.manual_seed(0)
    acts = CellActivations("tanh")
    a, c_prev = torch.randn(2, 12), torch.randn(2, 3)
    a_i, a_f, a_g, a_o = a.chunk(4, 1)
    sig = torch.sigmoid
    extra = VariantParams("lstm", 3, Variant(peephole=True))
    p_i, p_f, p_o = extra.peephole.detach()
    for name in LSTM_VARIANTS:
        for peep in (False, True):
            pi, pf = (p_i * c_prev, p_f * c_prev) if peep else (0, 0)
            f = 1.0 if name == "nfg" else sig(a_f + pf)
            i = {"cifg": 1.0 - f, "nig": 1.0}.get(name, sig(a_i + pi))
            g = a_g if name == "niaf" else torch.tanh(a_g)
            c = f * c_prev + i * g
            o = 1.0 if name == "nog" else sig(a_o + (p_o * c if peep else 0))
            h = o * (c if name == "noaf" else torch.tanh(c))
            got_h, got_c = lstm_step(
                acts, Variant(lstm_variant=name, peephole=peep), a, c_prev, extra if peep else None
            )
            torch.testing.assert_close(got_c, c)
            torch.testing.assert_close(got_h, h)


def test_block_norm_normalises_each_gate_block():
    a = torch.randn(5, 3 * 8) * 4 + 2
    gain, bias = torch.rand(3, 8) + 0.5, torch.randn(3, 8)
    y = block_norm(a, gain, bias).view(5, 3, 8)
    z = (y - bias) / gain
    torch.testing.assert_close(z.mean(-1), torch.zeros(5, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.var(-1, unbiased=False), torch.ones(5, 3), atol=1e-3, rtol=0)


@pytest.mark.parametrize("option", list(OPTIONS))
def test_gradcheck_float64(option):
    cfg = OPTIONS[option]
    variant = Variant(**{k: v for k, v in cfg.items() if k != "cell"})
    layer = RecurrentLayer(cfg["cell"], 3, 2, variant=variant).double()
    layer.train()
    x = torch.randn(3, 4, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 1, 3])

    def f(x, *params):
        torch.manual_seed(7)  # the same dropout / zoneout masks at every evaluation
        return layer(x, lengths)[0]

    params = [p for p in layer.parameters()]
    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("option", list(OPTIONS))
def test_padding_invariance(option):
    check_padding_invariance({**OPTIONS[option], "activation": "relu", "bidirectional": True})


@pytest.mark.parametrize("connection", list(CONNECTIONS))
@pytest.mark.parametrize("option", ["cifg", "peephole", "layer_norm_gru", "zoneout_lstm"])
def test_padding_invariance_in_every_connection(option, connection):
    check_padding_invariance({**OPTIONS[option], "connection": CONNECTIONS[connection]})


@pytest.mark.parametrize("connection", NOT_FEEDBACK)
@pytest.mark.parametrize("option", list(OPTIONS))
def test_trains_in_every_connection(option, connection):
    check_overfits({**OPTIONS[option], "connection": CONNECTIONS[connection]})


def _layer(cell, **variant):
    torch.manual_seed(0)
    return RecurrentLayer(cell, 3, 5, variant=Variant(**variant))


def test_recurrent_dropout_one_mask_per_sequence_reproducible_and_off_in_eval():
    layer, plain = _layer("gru", recurrent_dropout=0.5), _layer("gru")
    x = torch.randn(4, 6, 3)
    torch.manual_seed(1)
    a = layer(x)[0]
    torch.manual_seed(1)
    b = layer(x)[0]
    torch.manual_seed(2)
    c = layer(x)[0]
    assert torch.equal(a, b) and not torch.equal(a, c)
    # the definition: one inverted mask on h_{t-1} per sequence, drawn once, all steps
    w_ih, w_hh, b_ih, b_hh = plain.weights(0)
    torch.manual_seed(1)
    mask = torch.empty(4, 5).bernoulli_(0.5).div_(0.5)
    h, outs = torch.zeros(4, 5), []
    cell = torch.nn.GRUCell(3, 5)
    cell.load_state_dict({"weight_ih": w_ih, "weight_hh": w_hh, "bias_ih": b_ih, "bias_hh": b_hh})
    for t in range(6):
        xr, xz, xn = torch.nn.functional.linear(x[:, t], w_ih, b_ih).chunk(3, 1)
        hr, hz, hn = torch.nn.functional.linear(h * mask, w_hh, b_hh).chunk(3, 1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        h = (1 - z) * torch.tanh(xn + r * hn) + z * h
        outs.append(h)
    torch.testing.assert_close(a, torch.stack(outs, 1))
    layer.eval()
    torch.testing.assert_close(layer(x)[0], plain(x)[0])


def test_zoneout_masks_per_step_reproducible_and_expectation_in_eval():
    layer = _layer("lstm", zoneout=0.3)
    x = torch.randn(4, 6, 3)
    torch.manual_seed(1)
    a = layer(x)[0]
    torch.manual_seed(1)
    assert torch.equal(a, layer(x)[0])
    # some units keep their previous value at some step (h_t == h_{t-1} exactly)
    assert bool((a[:, 1:] == a[:, :-1]).any())
    layer.eval()
    plain = _layer("lstm").eval()
    w = plain.weights(0)
    state, outs = (torch.zeros(4, 5), torch.zeros(4, 5)), []
    for t in range(6):
        plain_step = lstm_step(
            CellActivations(),
            Variant(),
            torch.nn.functional.linear(x[:, t], w[0], w[2])
            + torch.nn.functional.linear(state[0], w[1], w[3]),
            state[1],
            None,
        )
        state = tuple(0.3 * s + 0.7 * n for s, n in zip(state, plain_step))
        outs.append(state[0])
    torch.testing.assert_close(layer(x)[0], torch.stack(outs, 1))


def test_layer_norm_and_peephole_parameters_are_outside_the_torch_container():
    layer = RecurrentLayer(
        "lstm", 3, 4, bidirectional=True, variant=Variant(peephole=True, layer_norm=True)
    )
    names = {k for k, _ in layer.named_parameters()}
    assert "variant_params.1.peephole" in names and "variant_params.0.ln_c_gain" in names
    ref = torch.nn.LSTM(3, 4, batch_first=True, bidirectional=True)
    ref.load_state_dict(layer.rnn.state_dict())
    assert "variant kernel, backend=cpp" in repr(layer) and "peephole=True" in repr(layer)


def test_wrong_combinations_fail_at_build_naming_the_key():
    cases = [
        (
            {"cell": "gru", "peephole": True},
            r"model\.peephole=True needs model\.cell=lstm \(got 'gru'\)",
        ),
        (
            {"cell": "rnn", "lstm_variant": "cifg"},
            r"model\.lstm_variant='cifg' needs model\.cell=lstm",
        ),
        (
            {"lstm_variant": "coupled"},
            r"model\.lstm_variant='coupled' is not valid; valid: vanilla, cifg, nig, nfg, nog, niaf, noaf",
        ),
        ({"recurrent_dropout": 1.0}, r"model\.recurrent_dropout=1\.0 must be a number in \[0, 1\)"),
        ({"zoneout": -0.1}, r"model\.zoneout=-0\.1 must be a number in \[0, 1\)"),
        ({"layer_norm": "yes"}, r"model\.layer_norm='yes' must be true or false"),
        (
            {"cell": "indrnn", "zoneout": 0.1, "connection": {"name": "gated_feedback"}},
            r"model\.cell='indrnn' cannot run with connection\.name=gated_feedback.*valid cells",
        ),
        ({"peephole": True, "fused": True}, r"fused=true but PyTorch's lstm has no peephole=True"),
    ]
    for cfg, match in cases:
        with pytest.raises(ValueError, match=match):
            build_stack(3, {"hidden_size": 4, **cfg})
