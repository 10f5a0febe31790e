"""Our own kernel (fused path off) against PyTorch's nn.RNN/LSTM/GRU with copied weights.

The kernel tests run on both backends of nn/kernels: the compiled C++ loop and its
portable torch twin (the CUDA / no-compiler fallback), forced through RNNLAB_KERNEL.
"""

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnlab.nn import build_stack, kernels
from rnnlab.nn.kernels.backend import kernel_preferred

TORCH = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
B, T, I, H = 4, 7, 5, 6  # noqa: E741 (batch, time, input, hidden as in the docs)


@pytest.fixture(params=["cpp", "python"])
def backend(request, monkeypatch):
    monkeypatch.setenv("RNNLAB_KERNEL", request.param)
    kernels.reset_backend()
    assert kernels.backend_for(torch.zeros(1)) == request.param
    yield request.param
    kernels.reset_backend()


def make_pair(cell, num_layers, bidirectional, fused):
    ref = TORCH[cell](I, H, num_layers=num_layers, batch_first=True, bidirectional=bidirectional)
    ours = build_stack(
        I,
        {
            "cell": cell,
            "hidden_size": H,
            "num_layers": num_layers,
            "bidirectional": bidirectional,
            "fused": fused,
        },
    )
    with torch.no_grad():
        for li, layer in enumerate(ours.layers):
            for d in range(2 if bidirectional else 1):
                sfx = "_reverse" if d else ""
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(layer.rnn, f"{name}_l0{sfx}").copy_(getattr(ref, f"{name}_l{li}{sfx}"))
    return ref, ours


def ref_run(ref, x, lengths):
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, final = ref(packed)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return out, final if isinstance(final, tuple) else (final,)


def ours_final(states):
    # per-layer (D, B, H) tuples -> PyTorch's (L*D, B, H)
    return tuple(torch.cat(parts, 0) for parts in zip(*states))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("ragged", [False, True])
def test_loop_matches_torch(backend, cell, num_layers, bidirectional, ragged):
    ref, ours = make_pair(cell, num_layers, bidirectional, fused=False)
    assert not any(layer.uses_fused for layer in ours.layers)
    x = torch.randn(B, T, I)
    lengths = torch.tensor([T, 5, 2, 6]) if ragged else torch.full((B,), T)
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()

    out_ref, fin_ref = ref_run(ref, x_ref, lengths)
    out, states = ours(x_ours, lengths)
    fin = ours_final(states)
    torch.testing.assert_close(out, out_ref, atol=1e-5, rtol=0)
    for a, b in zip(fin, fin_ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)

    g_out = torch.randn_like(out)
    g_fin = [torch.randn_like(f) for f in fin]
    loss_ref = (out_ref * g_out).sum() + sum((f * g).sum() for f, g in zip(fin_ref, g_fin))
    loss = (out * g_out).sum() + sum((f * g).sum() for f, g in zip(fin, g_fin))
    loss_ref.backward()
    loss.backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad, atol=1e-4, rtol=0)
    for li, layer in enumerate(ours.layers):
        for d in range(2 if bidirectional else 1):
            sfx = "_reverse" if d else ""
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                mine = getattr(layer.rnn, f"{name}_l0{sfx}").grad
                theirs = getattr(ref, f"{name}_l{li}{sfx}").grad
                torch.testing.assert_close(
                    mine, theirs, atol=1e-4, rtol=0, msg=f"{name} l{li}{sfx}"
                )


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_auto_runs_the_faster_path_for_default_activations(cell, monkeypatch):
    # CPU: the C++ kernel beats nn.* (benchmarks/fused_auto.py), so auto runs it, and its
    # numbers are nn.*'s (test_loop_matches_torch); fused=true still runs nn.*.
    ref, ours = make_pair(cell, 2, True, fused="auto")
    assert not any(layer.uses_fused for layer in ours.layers)
    assert all("path=kernel, backend=cpp" in repr(layer) for layer in ours.layers)
    x, lengths = torch.randn(B, T, I), torch.tensor([T, 5, 2, 6])
    torch.testing.assert_close(ours(x, lengths)[0], ref_run(ref, x, lengths)[0], atol=1e-5, rtol=0)
    _, forced = make_pair(cell, 2, True, fused=True)
    assert all(layer.uses_fused for layer in forced.layers)
    gelu = build_stack(I, {"cell": cell, "hidden_size": H, "activation": "gelu"})
    assert not gelu.layers[0].uses_fused
    # Where only the torch-ops backend could run the kernel, nn.* is the faster path.
    monkeypatch.setenv("RNNLAB_KERNEL", "python")
    kernels.reset_backend()
    try:
        assert all(layer.uses_fused for layer in ours.layers)
        torch.testing.assert_close(
            ours(x, lengths)[0], ref_run(ref, x, lengths)[0], atol=1e-5, rtol=0
        )
    finally:
        kernels.reset_backend()


def test_auto_rule_picks_the_fused_module_off_the_cpp_backend():
    assert kernel_preferred(torch.zeros(1))
    assert kernel_preferred(torch.zeros(1, dtype=torch.float64))
    # CUDA (cuDNN), other devices and dtypes the C++ kernel does not run: nn.*
    assert not kernel_preferred(torch.zeros(1, device="meta"))
    assert not kernel_preferred(torch.zeros(1, dtype=torch.bfloat16))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # trainer.precision=bf16-mixed
        assert not kernel_preferred(torch.zeros(1))


def test_fused_true_refuses_custom_activation():
    with pytest.raises(ValueError, match="fused=true.*gelu"):
        build_stack(I, {"cell": "lstm", "activation": "gelu", "fused": True})


def test_relu_elman_runs_fused_and_matches_loop():
    ref = nn.RNN(I, H, nonlinearity="relu", batch_first=True)
    ours = build_stack(I, {"cell": "rnn", "activation": "relu", "hidden_size": H, "fused": False})
    ours.layers[0].rnn.load_state_dict(ref.state_dict())
    x = torch.randn(B, T, I)
    torch.testing.assert_close(ours(x)[0], ref(x)[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("activation", ["tanh", "relu", "gelu"])
def test_gradcheck_float64(backend, cell, activation):
    stack = build_stack(
        3,
        {
            "cell": cell,
            "activation": activation,
            "hidden_size": 3,
            "bidirectional": True,
            "fused": False,
        },
    ).double()
    x = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 2])
    params = [p for p in stack.parameters()]

    def f(x, *ps):
        named = dict(zip([n for n, _ in stack.named_parameters()], ps))
        out, states = torch.func.functional_call(stack, named, (x, lengths))
        return (out, *states[0])

    inputs = (x, *[p.detach().clone().requires_grad_() for p in params])
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5)
