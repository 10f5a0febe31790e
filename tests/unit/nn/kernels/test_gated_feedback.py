"""The gated-feedback fast path (nn/kernels/gated_feedback*) against the autograd oracle.

``_FeedbackDirection._autograd_oracle`` is the plain per-step autograd loop that
defines the connection; the kernel (C++ and its torch-ops twin, both forced through
RNNLAB_KERNEL) must give the same outputs, final states and gradients of every
parameter and of the input, in float64 to rounding error.
"""

from contextlib import contextmanager

import pytest
import torch

from rnnlab.nn import build_stack, kernels
from rnnlab.nn.kernels import GatedFeedback
from rnnlab.nn.kernels.gated_feedback import layout

F64 = torch.float64
TIGHT = {"atol": 1e-12, "rtol": 1e-10}


def make_stack(cell, activation="tanh", layers=2, bidirectional=False, hidden=4, inp=3, **kw):
    torch.manual_seed(1)
    spec = {
        "cell": cell,
        "activation": activation,
        "hidden_size": hidden,
        "num_layers": layers,
        "bidirectional": bidirectional,
        "connection": {"name": "gated_feedback"},
        **kw,
    }
    return build_stack(inp, spec).to(F64)


@contextmanager
def autograd_oracle_loop(stack):
    """Run every direction through the old autograd loop instead of the kernel."""
    for d in stack.directions:
        d.forward = d._autograd_oracle
    try:
        yield
    finally:
        for d in stack.directions:
            del d.forward


def flat(states):
    return [t for s in states for t in s]


def loss_of(out, states, weights):
    total = (out * weights).sum()
    for k, t in enumerate(flat(states)):
        total = total + (t * (k + 2) * 0.1).sum()
    return total


def compare(stack, x, lengths, tol=TIGHT):
    """Outputs, final states and all gradients of the kernel vs the autograd oracle."""
    inputs = [x, *stack.parameters()]
    out, states = stack(x, lengths)
    with autograd_oracle_loop(stack):
        ref_out, ref_states = stack(x, lengths)
    torch.testing.assert_close(out, ref_out, **tol)
    for a, b in zip(flat(states), flat(ref_states), strict=True):
        torch.testing.assert_close(a, b, **tol)
    w = torch.randn_like(out)
    grads = torch.autograd.grad(loss_of(out, states, w), inputs, allow_unused=True)
    ref = torch.autograd.grad(loss_of(ref_out, ref_states, w), inputs, allow_unused=True)
    for (name, _), a, b in zip([("x", x), *stack.named_parameters()], grads, ref, strict=True):
        assert (a is None) == (b is None), name
        if a is not None:
            torch.testing.assert_close(a, b, **tol, msg=lambda m, n=name: f"{n}: {m}")


def ragged_input(batch=3, steps=6, inp=3, garbage=0.0):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(batch, steps, inp, generator=g, dtype=F64)
    lengths = torch.tensor([steps, 2, 4, 1, 5][:batch])
    if garbage:
        for b, n in enumerate(lengths.tolist()):
            x[b, n:] = garbage
    return x.requires_grad_(), lengths


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("activation", ["tanh", "relu", "gelu"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_matches_autograd_oracle_ragged(backend, cell, activation, layers):
    x, lengths = ragged_input()
    compare(make_stack(cell, activation, layers), x, lengths)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_bidirectional_matches_autograd_oracle(backend, cell):
    x, lengths = ragged_input(batch=4, garbage=50.0)
    compare(make_stack(cell, "gelu", 2, bidirectional=True), x, lengths)


def test_other_gate_and_cell_activations(backend):
    x, lengths = ragged_input()
    stack = make_stack(
        "lstm", "silu", 2, gate_activation="hard_sigmoid", cell_activation="softsign"
    )
    compare(stack, x, lengths)
    compare(make_stack("gru", "elu", 3, gate_activation="hard_sigmoid"), x, lengths)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_dropout_masks_match_autograd_oracle(backend, cell):
    """Training-mode dropout: the kernel and the loop given the same (L-1, T, B, H) masks."""
    layers, hidden = 3, 4
    stack = make_stack(cell, "gelu", layers, hidden=hidden, dropout=0.4).train()
    direction = stack.directions[0]
    x, lengths = ragged_input()
    g = torch.Generator().manual_seed(3)
    keep = torch.rand(layers - 1, x.shape[1], x.shape[0], hidden, generator=g) > 0.4
    masks = keep.to(F64) / 0.6
    inputs = [x, *direction.parameters()]
    out, states = direction(x, lengths, stack.dropout, masks)
    ref_out, ref_states = direction._autograd_oracle(x, lengths, stack.dropout, masks)
    torch.testing.assert_close(out, ref_out, **TIGHT)
    w = torch.randn_like(out)
    grads = torch.autograd.grad(loss_of(out, states, w), inputs)
    ref = torch.autograd.grad(loss_of(ref_out, ref_states, w), inputs)
    for a, b in zip(grads, ref, strict=True):
        torch.testing.assert_close(a, b, **TIGHT)


def test_dropout_is_sampled_in_training_only(backend):
    stack = make_stack("gru", "relu", 3, dropout=0.5)
    x, lengths = ragged_input()
    direction = stack.directions[0]
    masks = direction.drop_masks(x, stack.dropout)
    assert masks.shape == (2, x.shape[1], x.shape[0], 4)
    assert set(masks.unique().tolist()) <= {0.0, 2.0}  # inverted dropout, 1/(1-p)
    stack.eval()
    assert direction.drop_masks(x, stack.dropout).numel() == 0
    eval_out, _ = stack(x, lengths)
    ones = torch.ones_like(masks)
    same, _ = direction(x, lengths, stack.dropout, ones)
    torch.testing.assert_close(same, eval_out, **TIGHT)
    stack.train()
    torch.manual_seed(5)
    a, _ = stack(x, lengths)
    torch.manual_seed(5)
    b, _ = stack(x, lengths)
    torch.testing.assert_close(a, b)  # seeded: reproducible
    assert not torch.allclose(a, eval_out)


def kernel_inputs(cell, layers=2, hidden=2, steps=3, batch=3, dropout=True):
    d = layout(cell, hidden, layers)
    g = torch.Generator().manual_seed(4)

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=F64) * scale).requires_grad_()

    gx0 = rnd(steps, batch, d["GW"])
    w_in = rnd(layers - 1, d["GW"], hidden, scale=0.5)
    b_in = rnd(layers - 1, d["GW"])
    w_rec = rnd(layers, d["N"], hidden, scale=0.5)
    b_rec = rnd(layers, d["GH"])
    drop = torch.empty(0, dtype=F64)
    if dropout and layers > 1:
        drop = (torch.rand(layers - 1, steps, batch, hidden, generator=g) > 0.3).to(F64) / 0.7
    return (gx0, w_in, b_in, w_rec, b_rec), drop


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_gradcheck_function(backend, cell):
    """Every input of the Function (gx0, w_in, b_in, w_rec, b_rec) with lengths and dropout."""
    diff, drop = kernel_inputs(cell)
    lengths = torch.tensor([3, 1, 2])
    acts = ("gelu", "tanh", "sigmoid")

    def f(*args):
        out, h, c = GatedFeedback.apply(*args, drop, lengths, cell, acts, backend)
        return (out, h, c) if cell == "lstm" else (out, h)

    assert torch.autograd.gradcheck(f, diff, eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_float32_and_no_grad_agree(backend, cell):
    stack = make_stack(cell, "gelu", 3)
    x, lengths = ragged_input()
    ref, _ = stack(x, lengths)
    stack32 = stack.float()
    x32 = x.detach().float()
    out, _ = stack32(x32, lengths)
    torch.testing.assert_close(out, ref.detach().float(), atol=1e-5, rtol=1e-4)
    with torch.no_grad():
        out_ng, _ = stack32(x32, lengths)
    assert out_ng.grad_fn is None
    torch.testing.assert_close(out_ng, out.detach())


def test_backends_agree_float32_larger(monkeypatch):
    """The C++ kernel and the torch-ops twin on a less tiny shape (B=5, T=7, H=16, L=3)."""
    stack = make_stack("lstm", "relu", 3, hidden=16, inp=8).float()
    g = torch.Generator().manual_seed(6)
    x = torch.randn(5, 7, 8, generator=g).requires_grad_()
    lengths = torch.tensor([7, 3, 5, 1, 6])
    results = []
    try:
        for mode in ("cpp", "python"):
            monkeypatch.setenv("RNNLAB_KERNEL", mode)
            kernels.reset_backend()
            out, states = stack(x, lengths)
            loss = out.sum() + flat(states)[0].sum()
            results.append((out, torch.autograd.grad(loss, [x, *stack.parameters()])))
    finally:
        kernels.reset_backend()
    (a, ga), (b, gb) = results
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    for u, v in zip(ga, gb, strict=True):
        torch.testing.assert_close(u, v, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_row_blocks_on_two_threads_match_autograd_oracle(monkeypatch, cell, dtype):
    """B=21 on 2 threads: the C++ loop runs two row blocks (10 + 11 rows) without barriers,
    float32 through the packed GEMM, float64 through at::mm; ragged lengths, dropout."""
    monkeypatch.setenv("RNNLAB_KERNEL", "cpp")
    kernels.reset_backend()
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        stack = make_stack(cell, "gelu", 3, hidden=8, inp=5, dropout=0.3).to(dtype).train()
        direction = stack.directions[0]
        g = torch.Generator().manual_seed(7)
        x = torch.randn(21, 9, 5, generator=g, dtype=dtype).requires_grad_()
        lengths = torch.randint(1, 10, (21,), generator=g)
        masks = direction.drop_masks(x, stack.dropout)
        out, states = direction(x, lengths, stack.dropout, masks)
        ref_out, ref_states = direction._autograd_oracle(x, lengths, stack.dropout, masks)
        tol = TIGHT if dtype == F64 else {"atol": 2e-5, "rtol": 1e-4}
        torch.testing.assert_close(out, ref_out, **tol)
        inputs = [x, *direction.parameters()]
        w = torch.randn_like(out)
        grads = torch.autograd.grad(loss_of(out, states, w), inputs)
        ref = torch.autograd.grad(loss_of(ref_out, ref_states, w), inputs)
        for a, b in zip(grads, ref, strict=True):
            torch.testing.assert_close(a, b, **tol)
    finally:
        torch.set_num_threads(threads)
        kernels.reset_backend()
