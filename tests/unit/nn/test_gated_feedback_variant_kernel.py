"""The gated-feedback variant kernel (nn/kernels/gated_feedback_variants*) against the loop.

The per-step autograd loop (nn/connections/gated_feedback_variants.py) defines a
gated-feedback stack with cell variants; for every option (and all of them at once) the
kernel must give its outputs, final states and every gradient (float64, 1e-10) with
ragged lengths, three layers, dropout between them, both directions, training masks
(drawn the same under a seed) and eval, on one and on two row blocks, with one layer,
one step and empty sequences; float32 stays within float32 accuracy of float64; the path is
named in the repr, and RNNLAB_KERNEL=python runs the loop with the same numbers.
"""

import pytest
import torch

from rnnlab.nn import build_stack, kernels
from rnnlab.nn.connections import gated_feedback as gated_feedback_module
from rnnlab.nn.kernels.gated_feedback_variants import GatedFeedbackVariants
from tests.unit.nn.test_gated_feedback_variants import OPTIONS
from tests.unit.nn.variant_helpers import assert_no_further_from

CASES = {
    **OPTIONS,
    "all_gru": {"cell": "gru", "layer_norm": True, "recurrent_dropout": 0.3, "zoneout": 0.2},
    "all_rnn": {"cell": "rnn", "layer_norm": True, "recurrent_dropout": 0.3, "zoneout": 0.2},
    "peephole_zoneout_nig": {
        "cell": "lstm",
        "peephole": True,
        "zoneout": 0.3,
        "lstm_variant": "nig",
    },
}


def _stack(case, dtype=torch.float64, hidden=4, layers=3):
    torch.manual_seed(0)
    cfg = {**CASES[case], "hidden_size": hidden, "num_layers": layers}
    cfg |= {"connection": {"name": "gated_feedback"}, "bidirectional": True, "dropout": 0.2}
    return build_stack(3, cfg).to(dtype)


def _run(stack, x, lengths):
    torch.manual_seed(5)  # the same masks on both paths
    out, states = stack(x, lengths)
    final = [t for s in states for t in s]
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    loss = (out * weights).sum() + sum((s * s.cos()).sum() for s in final)
    grads = torch.autograd.grad(loss, [x, *stack.parameters()], materialize_grads=True)
    return out, final, grads


def _loop(monkeypatch):
    monkeypatch.setattr(gated_feedback_module, "feedback_kernel_runs", lambda x: False)


def _assert_same(got, want, **tol):
    torch.testing.assert_close(got[0], want[0], **tol)
    for part in (1, 2):
        assert len(got[part]) == len(want[part])
        for g, w in zip(got[part], want[part]):
            torch.testing.assert_close(g, w, **tol)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("case", list(CASES))
def test_kernel_matches_the_variant_loop(case, training, monkeypatch):
    stack = _stack(case).train(training)
    calls = []
    original = GatedFeedbackVariants.apply
    monkeypatch.setattr(GatedFeedbackVariants, "apply", lambda *a: calls.append(1) or original(*a))
    x = torch.randn(4, 6, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([6, 2, 5, 1])
    got = _run(stack, x, lengths)
    assert len(calls) == 2, "both directions run the kernel"
    _loop(monkeypatch)
    want = _run(stack, x, lengths)
    assert len(calls) == 2, "the loop ran"
    _assert_same(got, want, atol=1e-10, rtol=1e-8)
    assert torch.all(got[0][1, 2:] == 0), "outputs at padded steps must be zero"


@pytest.mark.parametrize("case", ["all_lstm", "all_gru", "layer_norm_rnn", "peephole_zoneout_nig"])
def test_kernel_in_float32_is_as_close_to_float64_as_the_loop(case, monkeypatch):
    stack = _stack(case, torch.float32, hidden=16, layers=2).train()
    x = torch.randn(5, 12, 3, requires_grad=True)
    lengths = torch.tensor([12, 7, 1, 9, 12])
    kernel = _run(stack, x, lengths)
    ref = _run(stack.double(), x.detach().double().requires_grad_(), lengths)
    _loop(monkeypatch)
    loop = _run(stack.float(), x, lengths)

    assert_no_further_from(ref, kernel, loop)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", ["all_lstm", "all_gru", "all_rnn"])
def test_row_blocks_on_two_threads_match_the_loop(case, dtype, monkeypatch):
    """B=21 on 2 threads: the kernel runs two row blocks (10 + 11 rows) without barriers,
    float32 through the packed GEMM, float64 through at::mm; ragged lengths, dropout."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        stack = _stack(case, dtype, hidden=8).train()
        g = torch.Generator().manual_seed(7)
        x = torch.randn(21, 9, 3, generator=g, dtype=dtype).requires_grad_()
        lengths = torch.randint(1, 10, (21,), generator=g)
        got = _run(stack, x, lengths)
        if dtype == torch.float32:
            ref = _run(stack.double(), x.detach().double().requires_grad_(), lengths)
            stack.float()
        _loop(monkeypatch)
        want = _run(stack, x, lengths)
    finally:
        torch.set_num_threads(threads)
    if dtype == torch.float64:
        _assert_same(got, want, atol=1e-10, rtol=1e-8)
    else:
        assert_no_further_from(ref, got, want)


@pytest.mark.parametrize(
    "layers, steps, lengths",
    [(1, 5, [5, 3, 0]), (2, 1, [1, 1, 0]), (3, 4, [0, 0, 0])],
    ids=["one_layer", "one_step", "all_empty"],
)
def test_edge_shapes_match_the_loop(layers, steps, lengths, monkeypatch):
    """One layer (no layer-input weights), one step, zero-length sequences (the state
    stays zero, the outputs are zero)."""
    stack = _stack("all_lstm", layers=layers).train()
    x = torch.randn(3, steps, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor(lengths)
    got = _run(stack, x, lengths)
    _loop(monkeypatch)
    _assert_same(got, _run(stack, x, lengths), atol=1e-10, rtol=1e-8)
    empty = lengths == 0
    assert torch.all(got[0][empty] == 0)
    for state in got[1]:
        assert torch.all(state[:, empty] == 0)


def test_accumulated_grads_are_independent_tensors():
    """Two backward passes accumulate to twice one pass's .grad for every parameter: a
    gradient the kernel returned as a view of another (a bias and its LN beta share a
    formula) would be kept by autograd as both .grad tensors and counted twice."""
    stack = _stack("all_gru", layers=2).train()
    x = torch.randn(3, 4, 3, dtype=torch.float64)

    def backward():
        torch.manual_seed(5)
        stack(x)[0].square().sum().backward()

    backward()
    once = [p.grad.clone() for p in stack.parameters()]
    backward()
    for (name, p), g in zip(stack.named_parameters(), once, strict=True):
        torch.testing.assert_close(p.grad, 2 * g, msg=name)
    pointers = [p.grad.data_ptr() for p in stack.parameters()]
    assert len(set(pointers)) == len(pointers), "every .grad owns its memory"


def test_inference_under_no_grad_matches_the_training_forward():
    """Under no_grad the kernel saves nothing for a backward (packs every step weight
    instead, so float32 rounding may differ slightly)."""
    stack = _stack("all_lstm", torch.float32).eval()
    x = torch.randn(3, 5, 3)
    with torch.no_grad():
        a = stack(x)[0]
    b = stack(x.requires_grad_())[0]
    assert not a.requires_grad and b.requires_grad
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_paths_and_the_fallback(monkeypatch):
    stack = _stack("zoneout_lstm", torch.float32)
    assert "path=gated_feedback variant kernel, backend=cpp" in repr(stack)
    stack.train()
    torch.manual_seed(3)
    want = stack(torch.ones(2, 3, 3))[0]
    monkeypatch.setenv("RNNLAB_KERNEL", "python")
    kernels.reset_backend()
    try:
        assert "path=gated_feedback variant loop (per-step autograd)" in repr(stack)
        torch.manual_seed(3)  # the same zoneout masks
        torch.testing.assert_close(stack(torch.ones(2, 3, 3))[0], want, atol=1e-6, rtol=1e-5)
    finally:
        monkeypatch.delenv("RNNLAB_KERNEL")
        kernels.reset_backend()
