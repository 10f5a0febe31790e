"""The fast recurrent kernel (nn/kernels/__init__.py): gradients, every activation, lengths, fallback.

Every test runs on both backends: ``cpp`` (the compiled time loop) and ``python`` (the
torch-ops backend kernels/torch_ops.py, the CUDA and no-compiler path), forced through
RNNLAB_KERNEL.
"""

import pytest
import torch
from torch.nn import functional as F

from rnnlab.nn import kernels
from rnnlab.nn.activations import ACTIVATIONS, GATE_ACTIVATIONS
from rnnlab.nn.cells import NUM_GATES, CellActivations, cell_step
from rnnlab.nn.kernels import Recurrence, backend_for, recurrence


def autograd_oracle(cell, acts, x, lengths, w_ih, w_hh, b_ih, b_hh, h0, c0):
    """Test oracle: autograd through the cell math (cells.cell_step), masking padded steps.

    Its mask is written out here (not rnnlab.nn.masks) so the oracle stays independent."""
    gx = F.linear(x, w_ih, b_ih)
    state = (h0, c0) if cell == "lstm" else (h0,)
    outs = []
    for t, gx_t in enumerate(gx.unbind(1)):
        new = cell_step(cell, acts, gx_t, F.linear(state[0], w_hh, b_hh), state)
        m = (t < lengths).unsqueeze(1)
        state = tuple(torch.where(m, n, s) for n, s in zip(new, state))
        outs.append(new[0] * m)
    return torch.stack(outs, 1), state


def make_inputs(cell, batch=3, steps=5, inp=4, hidden=3, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    gates = NUM_GATES[cell] * hidden

    def rnd(*shape):
        return (torch.rand(*shape, generator=g, dtype=dtype) * 2 - 1).requires_grad_()

    x = rnd(batch, steps, inp)
    weights = [rnd(gates, inp), rnd(gates, hidden), rnd(gates), rnd(gates)]
    h0, c0 = rnd(batch, hidden), rnd(batch, hidden)
    return x, weights, h0, c0


def names(acts: CellActivations):
    return (acts.activation, acts.cell_activation or acts.activation, acts.gate_activation)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("activation", ["tanh", "relu", "gelu"])
def test_gradcheck_function_with_lengths_and_initial_state(backend, cell, activation):
    acts = names(CellActivations(activation))
    gx = torch.randn(3, 4, NUM_GATES[cell] * 2, dtype=torch.float64, requires_grad=True)
    w_hh = (torch.randn(NUM_GATES[cell] * 2, 2, dtype=torch.float64) * 0.5).requires_grad_()
    b_hh = torch.randn(NUM_GATES[cell] * 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(3, 2, dtype=torch.float64, requires_grad=cell == "lstm")
    b_ih = torch.randn(NUM_GATES[cell] * 2, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 2, 3])

    def f(gx, w_hh, b_ih, b_hh, h0, c0):
        out, h, c = Recurrence.apply(gx, w_hh, b_ih, b_hh, h0, c0, lengths, cell, acts, backend)
        return (out, h, c) if cell == "lstm" else (out, h)

    assert torch.autograd.gradcheck(f, (gx, w_hh, b_ih, b_hh, h0, c0), eps=1e-6, atol=1e-6)


ALL = sorted(ACTIVATIONS)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("activation", ALL)
def test_every_activation_matches_autograd_oracle(backend, cell, activation):
    # hard_sigmoid gates exercise the other gate activation on the gated cells.
    gate = "hard_sigmoid" if activation in ("elu", "softsign", "hardtanh") else "sigmoid"
    cell_act = "softsign" if activation == "silu" else None
    acts = CellActivations(activation, gate_activation=gate, cell_activation=cell_act)
    x, (w_ih, w_hh, b_ih, b_hh), h0, c0 = make_inputs(cell)
    lengths = torch.tensor([5, 2, 4])
    ref_out, ref_state = autograd_oracle(cell, acts, x, lengths, w_ih, w_hh, b_ih, b_hh, h0, c0)
    gx = F.linear(x, w_ih, b_ih)
    out, state = recurrence(cell, names(acts), gx, w_hh, b_hh, h0, c0, lengths)
    torch.testing.assert_close(out, ref_out)
    for a, b in zip(state, ref_state):
        torch.testing.assert_close(a, b)
    g = torch.randn_like(out)
    inputs = (x, w_ih, w_hh, b_ih, b_hh, h0) + ((c0,) if cell == "lstm" else ())

    def loss(o, s):
        return (o * g).sum() + sum((t * (k + 2)).sum() for k, t in enumerate(s))

    ref_grads = torch.autograd.grad(loss(ref_out, ref_state), inputs)
    grads = torch.autograd.grad(loss(out, state), inputs)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b)


def test_gate_activation_registry_is_covered():
    assert set(GATE_ACTIVATIONS) <= set(kernels.KERNEL_CODES)
    assert set(ACTIVATIONS) <= set(kernels.KERNEL_CODES)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_float32_padding_leaves_valid_steps_unchanged(backend, cell):
    x, (w_ih, w_hh, b_ih, b_hh), h0, c0 = make_inputs(cell, dtype=torch.float32, steps=6)
    acts = ("relu", "relu", "sigmoid")
    lengths = torch.tensor([6, 3, 1])
    xs = x.detach().clone()
    for b, n in enumerate(lengths.tolist()):
        xs[b, n:] = 1e4  # garbage in the padding must not leak
    gx = F.linear(xs, w_ih, b_ih)
    out, state = recurrence(cell, acts, gx, w_hh, b_hh, h0, c0, lengths)
    for b, n in enumerate(lengths.tolist()):
        alone, alone_state = recurrence(
            cell,
            acts,
            gx[b : b + 1, :n],
            w_hh,
            b_hh,
            h0[b : b + 1],
            c0[b : b + 1],
            lengths[b : b + 1],
        )
        torch.testing.assert_close(out[b, :n], alone[0])
        assert torch.all(out[b, n:] == 0)
        for s, sa in zip(state, alone_state):
            torch.testing.assert_close(s[b], sa[0])


def test_no_grad_forward_saves_nothing_and_matches(backend):
    x, (w_ih, w_hh, b_ih, b_hh), h0, c0 = make_inputs("gru", dtype=torch.float32)
    lengths = torch.tensor([5, 5, 5])
    gx = F.linear(x, w_ih, b_ih)
    out, _ = recurrence("gru", ("gelu", "gelu", "sigmoid"), gx, w_hh, b_hh, h0, c0, lengths)
    with torch.no_grad():
        out_ng, _ = recurrence("gru", ("gelu", "gelu", "sigmoid"), gx, w_hh, b_hh, h0, c0, lengths)
    assert out.grad_fn is not None and out_ng.grad_fn is None
    torch.testing.assert_close(out_ng, out.detach())


@pytest.mark.parametrize("variant", [False, True])
def test_no_grad_forward_of_a_layer_with_parameters_saves_no_backward_buffers(variant, monkeypatch):
    # needs_input_grad reads requires_grad, not grad mode: a layer's parameters under
    # no_grad (validation, evaluate) must not make the kernel save pre-activations.
    from rnnlab.nn import RecurrentLayer
    from rnnlab.nn.variants import Variant

    layer = RecurrentLayer("lstm", 3, 4, fused=False, variant=Variant(peephole=variant))
    assert "backend=cpp" in layer.path()
    x = torch.randn(2, 5, 3)
    layer(x)  # builds and loads the kernel
    ops = torch.ops.rnnlab_variant_kernels if variant else torch.ops.rnnlab_kernels
    name = "var_forward" if variant else "rec_forward"
    real, saves = getattr(ops, name), []

    def spy(*args):
        saves.append(args[-1])  # the save flag
        return real(*args)

    monkeypatch.setattr(ops, name, spy)
    with torch.no_grad():
        layer(x)
    layer(x)[0].sum().backward()
    assert saves == [False, True]


def test_failed_build_falls_back_with_one_line_notice(monkeypatch, capsys):
    from rnnlab.nn.kernels import build

    def broken():
        raise RuntimeError("Error building extension 'x': c++: not found\nmore lines")

    monkeypatch.setattr(build, "load_extension", broken)
    monkeypatch.setenv("RNNLAB_KERNEL", "auto")
    kernels.reset_backend()
    try:
        assert backend_for(torch.zeros(1)) == "python"
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "portable kernel" in err and "c++: not found" in err
        monkeypatch.setenv("RNNLAB_KERNEL", "cpp")
        kernels.reset_backend()
        with pytest.raises(RuntimeError, match="not found"):
            backend_for(torch.zeros(1))
    finally:
        kernels.reset_backend()


def test_unknown_backend_name_is_refused(monkeypatch):
    monkeypatch.setenv("RNNLAB_KERNEL", "cudnn")
    with pytest.raises(ValueError, match="RNNLAB_KERNEL='cudnn'.*auto, cpp, triton, python"):
        kernels.requested_backend()


def test_build_waits_for_another_builder_holding_the_lock():
    """A second process (xdist worker, DDP rank) blocks on the lock instead of racing."""
    import fcntl
    import threading

    from rnnlab.nn.kernels import build

    build.load_extension()  # cached after the first build: loading is instant
    lock_path = build.cache_root() / build.build_name() / "rnnlab.lock"
    done = threading.Event()
    with open(lock_path, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        worker = threading.Thread(target=lambda: (build.load_extension(), done.set()))
        worker.start()
        assert not done.wait(0.5), "load_extension ignored a held build lock"
        fcntl.flock(held, fcntl.LOCK_UN)
    assert done.wait(30)
    worker.join()


@pytest.fixture
def two_threads():
    """The kernel splits a batch into per-thread row blocks when there are >= 2 threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_row_blocks_and_packed_matmul_match_autograd_oracle(backend, two_threads, cell, dtype):
    """A batch big enough to be split across threads (float32: MKL's packed GEMM where
    torch exports it), ragged lengths, every input's gradient, against autograd."""
    acts = CellActivations("gelu")
    x, (w_ih, w_hh, b_ih, b_hh), h0, c0 = make_inputs(
        cell, batch=37, steps=9, inp=5, hidden=6, dtype=dtype, seed=3
    )
    lengths = torch.randint(1, 10, (37,), generator=torch.Generator().manual_seed(1))
    lengths[0] = 9
    inputs = (x, w_ih, w_hh, b_ih, b_hh, h0) + ((c0,) if cell == "lstm" else ())
    ref_out, ref_state = autograd_oracle(cell, acts, x, lengths, w_ih, w_hh, b_ih, b_hh, h0, c0)
    gx = x @ w_ih.t()
    out, state = recurrence(cell, names(acts), gx, w_hh, b_hh, h0, c0, lengths, b_ih)
    tol = {"atol": 1e-5, "rtol": 1e-4} if dtype == torch.float32 else {}
    torch.testing.assert_close(out, ref_out, **tol)
    for a, b in zip(state, ref_state):
        torch.testing.assert_close(a, b, **tol)
    g = torch.randn_like(out)
    grads = torch.autograd.grad((out * g).sum() + state[-1].sum(), inputs)
    ref_grads = torch.autograd.grad((ref_out * g).sum() + ref_state[-1].sum(), inputs)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, **tol)


@pytest.mark.parametrize("activation", ALL)
def test_float32_fast_math_matches_float64(activation):
    """float32 runs inline polynomial exp/tanh/erf: checked against float64 libm over
    pre-activations up to |20|, where saturation and the polynomial switch-over live."""
    acts = names(CellActivations(activation, cell_activation="tanh"))
    x, (w_ih, w_hh, b_ih, b_hh), h0, c0 = make_inputs("lstm", batch=4, steps=6, inp=8, seed=5)
    x = (x * 10).detach().requires_grad_()
    results = {}
    for dtype in (torch.float32, torch.float64):
        leaves = [t.detach().to(dtype).requires_grad_() for t in (x, w_ih, w_hh, b_hh, h0, c0)]
        xx, wi, wh, bh, hh, cc = leaves
        out, state = recurrence(
            "lstm", acts, xx @ wi.t(), wh, bh, hh, cc, torch.full((4,), 6), b_ih.to(dtype)
        )
        grads = torch.autograd.grad(out.sum() + state[1].sum(), leaves)
        results[dtype] = [out, *state, *grads]
    for a, b in zip(results[torch.float32], results[torch.float64]):
        torch.testing.assert_close(a.double(), b, atol=2e-5, rtol=1e-4)
