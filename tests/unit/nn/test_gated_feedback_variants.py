"""Cell variants and LSTM projection inside the gated-feedback connection.

Both paths, the variant kernel (nn/kernels/gated_feedback_variants*, on CPU) and the
variant loop (nn/connections/gated_feedback_variants.py, its definition), pass float64
gradcheck; test_gated_feedback_variant_kernel.py holds the kernel to the loop. The loop
equals the plain gated-feedback kernel with every option off; the default path (the
kernel) is checked against a hand-written Elman gated-feedback reference for the masks'
definition, for padding invariance, reproducible masks (training only), training on a
fixed batch, and the builder's checks.
"""

import pytest
import torch
from torch.nn import functional as F

from rnnlab.nn import build_stack
from rnnlab.nn.connections import gated_feedback as gated_feedback_module
from rnnlab.nn.connections.gated_feedback_variants import feedback_variant_direction
from tests.unit.nn.variant_helpers import check_overfits, check_padding_invariance

GF = {"name": "gated_feedback"}
F64 = torch.float64
# One config per option, on the cells it applies to (IndRNN has no gated feedback).
OPTIONS = {
    **{v: {"cell": "lstm", "lstm_variant": v} for v in ("cifg", "nig", "nfg", "nog", "niaf")},
    "noaf": {"cell": "lstm", "lstm_variant": "noaf"},
    "peephole": {"cell": "lstm", "peephole": True},
    **{f"layer_norm_{c}": {"cell": c, "layer_norm": True} for c in ("lstm", "gru", "rnn")},
    **{f"recurrent_dropout_{c}": {"cell": c, "recurrent_dropout": 0.3} for c in ("lstm", "gru")},
    **{f"zoneout_{c}": {"cell": c, "zoneout": 0.2} for c in ("lstm", "gru", "rnn")},
    "proj_size": {"cell": "lstm", "proj_size": 2},
    "all_lstm": {
        "cell": "lstm",
        "lstm_variant": "cifg",
        "peephole": True,
        "layer_norm": True,
        "recurrent_dropout": 0.3,
        "zoneout": 0.2,
        "proj_size": 2,
    },  # fmt: skip
}


def gf_stack(cfg, inp=3, hidden=3, layers=2, **kw):
    torch.manual_seed(0)
    spec = {"hidden_size": hidden, "num_layers": layers, "connection": GF, **cfg, **kw}
    return build_stack(inp, spec)


def flat(states):
    return [t for s in states for t in s]


@pytest.mark.parametrize("path", ["kernel", "loop"])
@pytest.mark.parametrize("option", list(OPTIONS))
def test_gradcheck_float64(option, path, monkeypatch):
    """Both paths' gradients: the variant kernel's hand-written backward and the loop's."""
    if path == "loop":
        monkeypatch.setattr(gated_feedback_module, "feedback_kernel_runs", lambda x: False)
    stack = gf_stack(OPTIONS[option], dropout=0.2).double().train()
    x = torch.randn(3, 4, 3, dtype=F64, requires_grad=True)
    lengths = torch.tensor([4, 1, 3])

    def f(x, *params):
        torch.manual_seed(7)  # the same masks at every evaluation
        out, states = stack(x, lengths)
        return out, *flat(states)

    params = list(stack.parameters())
    # fast_mode: the analytic against the numerical Jacobian along random directions
    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-6, fast_mode=True)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_all_off_loop_equals_the_plain_kernel(cell):
    """The loop with every option off computes the kernel's numbers and gradients."""
    stack = gf_stack({"cell": cell}, hidden=4, layers=3, dropout=0.3).double().train()
    direction = stack.directions[0]
    assert direction.runs_kernel
    x = torch.randn(3, 6, 3, dtype=F64, requires_grad=True)
    lengths = torch.tensor([6, 2, 4])
    masks = direction.drop_masks(x, stack.dropout)
    assert masks.numel()
    runs = [direction(x, lengths, stack.dropout, masks)]
    runs.append(feedback_variant_direction(direction, x, lengths, stack.dropout, masks))
    inputs = [x, *stack.parameters()]
    w = torch.randn(3, 6, 4, dtype=F64)
    grads = []
    for out, states in runs:
        loss = (out * w).sum() + sum((t * (k + 2)).sum() for k, t in enumerate(flat(states)))
        grads.append(torch.autograd.grad(loss, inputs))
    tight = {"atol": 1e-12, "rtol": 1e-10}
    torch.testing.assert_close(runs[1][0], runs[0][0], **tight)
    for a, b in zip(flat(runs[1][1]), flat(runs[0][1]), strict=True):
        torch.testing.assert_close(a, b, **tight)
    for a, b in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(a, b, **tight)


def test_eval_recurrent_dropout_stack_on_copied_weights_equals_the_plain_kernel():
    plain = gf_stack({"cell": "gru"}, hidden=4, layers=3, bidirectional=True).eval()
    variant = gf_stack(
        {"cell": "gru", "recurrent_dropout": 0.5}, hidden=4, layers=3, bidirectional=True
    )
    variant.load_state_dict(plain.state_dict())
    variant.eval()
    assert not variant.directions[0].runs_kernel
    x, lengths = torch.randn(4, 5, 3), torch.tensor([5, 3, 1, 4])
    out, states = variant(x, lengths)
    ref, ref_states = plain(x, lengths)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)
    for a, b in zip(flat(states), flat(ref_states), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def elman_reference(direction, x, drop=None, z=0.0):
    """Elman gated feedback as docs/equations.md writes it: recurrent-dropout masks
    ``drop[i]`` on h^i_{t-1} in every recurrent product; zoneout's eval expectation."""
    layers = direction.layers
    w = [layer.weights(0) for layer in layers]
    num_layers, hidden = len(layers), direction.hidden
    hs = [x.new_zeros(x.shape[0], hidden) for _ in layers]
    outs = []
    for t in range(x.shape[1]):
        h_in = [h * drop[i] if drop is not None else h for i, h in enumerate(hs)]
        h_star = torch.cat(h_in, 1)
        u, new = x[:, t], []
        for j in range(num_layers):
            g = torch.sigmoid(direction.gate_u[j](u) + direction.gate_h[j](h_star))
            cross = list(direction.cross[j].split(hidden, 1))
            cross.insert(j, w[j][1])  # U^{j->j}: the layer's own weight_hh
            rec = sum(g[:, i : i + 1] * F.linear(h_in[i], cross[i]) for i in range(num_layers))
            h_new = torch.tanh(F.linear(u, w[j][0], w[j][2]) + rec + w[j][3])
            new.append(z * hs[j] + (1 - z) * h_new)
            u = new[j]
        hs = new
        outs.append(hs[-1])
    return torch.stack(outs, 1)


def test_recurrent_dropout_masks_per_layer_fixed_reproducible_and_off_in_eval():
    stack = gf_stack({"cell": "rnn", "recurrent_dropout": 0.5}, hidden=4, layers=3).train()
    x = torch.randn(5, 6, 3)
    torch.manual_seed(1)
    a = stack(x)[0]
    torch.manual_seed(1)
    b = stack(x)[0]
    torch.manual_seed(2)
    assert torch.equal(a, b) and not torch.equal(a, stack(x)[0])
    torch.manual_seed(1)  # the documented draws: one mask per layer, bottom up
    drop = [torch.empty(5, 4).bernoulli_(0.5).div_(0.5) for _ in range(3)]
    with torch.no_grad():
        torch.testing.assert_close(a, elman_reference(stack.directions[0], x, drop))
        stack.eval()
        state = torch.get_rng_state()
        ev = stack(x)[0]
        assert torch.equal(state, torch.get_rng_state()), "eval draws nothing"
        assert torch.equal(ev, stack(x)[0])
        torch.testing.assert_close(ev, elman_reference(stack.directions[0], x))


def test_zoneout_keeps_units_in_training_and_uses_its_expectation_in_eval():
    stack = gf_stack({"cell": "rnn", "zoneout": 0.3}, hidden=4, layers=2).train()
    x = torch.randn(5, 6, 3)
    torch.manual_seed(1)
    a, states = stack(x)
    torch.manual_seed(1)
    assert torch.equal(a, stack(x)[0])
    assert bool((a[:, 1:] == a[:, :-1]).any()), "some unit keeps h_{t-1} exactly"
    stack.eval()
    with torch.no_grad():
        ev = stack(x)[0]
        assert torch.equal(ev, stack(x)[0])
        torch.testing.assert_close(ev, elman_reference(stack.directions[0], x, z=0.3))


def test_zoneout_lstm_keeps_the_cell_state_too():
    stack = gf_stack({"cell": "lstm", "zoneout": 0.5}, hidden=6, layers=2).train()
    x = torch.randn(4, 1, 3)  # one step from zero: a kept unit stays exactly 0
    torch.manual_seed(3)
    _, states = stack(x)
    for h, c in states:
        assert bool((h == 0).any()) and bool((c == 0).any()) and bool((c != 0).any())


@pytest.mark.parametrize("option", list(OPTIONS))
def test_padding_invariance(option):
    check_padding_invariance({**OPTIONS[option], "bidirectional": True, "connection": GF})


@pytest.mark.parametrize(
    "option, layers",
    [(o, 3 if o in ("layer_norm_gru", "zoneout_lstm", "proj_size", "all_lstm") else 2)
     for o in OPTIONS],
)  # fmt: skip
def test_trains_in_a_gated_feedback_stack(option, layers):
    cfg = {**OPTIONS[option], "num_layers": layers, "connection": GF}
    if "proj_size" in cfg:
        cfg["proj_size"] = 8  # of hidden_size 16 (P = 2 of 3 suits the gradcheck shapes)
    # every regulariser at once trains slowest: at 80 steps it lands at 0.2504x the start
    # loss on one CPU type (0.699 -> 0.175), rounding-close to the bound either side
    check_overfits(cfg, steps=120 if option == "all_lstm" else 80)


def test_build_stack_runs_every_variant_and_names_the_path():
    for option, cfg in OPTIONS.items():
        stack = gf_stack(cfg, hidden=4, layers=2, bidirectional=True, dropout=0.1)
        width = cfg.get("proj_size") or 4
        assert stack.output_size == 2 * width, option
        out, states = stack(torch.randn(2, 3, 3), torch.tensor([3, 2]))
        assert out.shape == (2, 3, 2 * width) and states[0][0].shape == (2, 2, width)
        text = repr(stack)
        assert "path=gated_feedback variant kernel, backend=cpp" in text, option
        assert "gated_feedback kernel" not in text, option
    plain = gf_stack({"cell": "lstm"})
    assert "path=gated_feedback kernel, backend=" in repr(plain)
    proj = gf_stack({"cell": "lstm", "proj_size": 2}, hidden=5, layers=3).directions[0]
    assert proj.cross[0].shape == (5, 4) and proj.gate_h[0].in_features == 6
    assert proj.layers[1].weights(0)[0].shape == (20, 2)  # layer 2 reads h^1 of width P


@pytest.mark.parametrize(
    "cfg, match",
    [
        (
            {"cell": "indrnn", "layer_norm": True},
            r"model\.cell='indrnn' cannot run with connection\.name=gated_feedback.*"
            r"valid cells: rnn, lstm, gru",
        ),
        ({"cell": "gru", "peephole": True}, r"model\.peephole=True needs model\.cell=lstm"),
        (
            {"cell": "rnn", "lstm_variant": "nog"},
            r"model\.lstm_variant='nog' needs model\.cell=lstm \(got 'rnn'\); valid cells",
        ),
        ({"cell": "gru", "proj_size": 2}, r"model\.proj_size=2 needs model\.cell=lstm"),
        ({"proj_size": 4}, r"model\.proj_size=4 must be smaller than model\.hidden_size=4"),
        ({"zoneout": 1.0}, r"model\.zoneout=1\.0 must be a number in \[0, 1\)"),
        (
            {"lstm_variant": "cfg"},
            r"model\.lstm_variant='cfg' is not valid; valid: vanilla, cifg, nig, nfg",
        ),
    ],
)
def test_wrong_combinations_still_fail_naming_key_value_and_choices(cfg, match):
    with pytest.raises(ValueError, match=match):
        build_stack(3, {"hidden_size": 4, "connection": GF, **cfg})
