"""Parity checks of the Triton backend against the torch-ops backend (one copy).

Used by tests/unit/nn/kernels/test_triton_*.py (CPU tensors, ``TRITON_INTERPRET=1``) and
by ``make check-gpu`` (benchmarks/check_gpu.py, real CUDA tensors). Each check runs the
same inputs through the Triton backend (in ``dtype``) and through the torch-ops backend
in float64 (the reference), and returns ``(name, got, want)`` triples: forward
outputs, final states and the gradient of every input of a weighted loss.
``mismatches(triples, dtype)`` lists what differs beyond the dtype's tolerance.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from rnnlab.nn.cells import NUM_GATES
from rnnlab.nn.kernels import Recurrence, reset_backend

F64 = torch.float64
# Every cell x {tanh, relu, gelu} with sigmoid gates, plus a hard_sigmoid-gated case
# (and a cell activation other than the candidate's for LSTM).
ACTS = (
    ("tanh", "tanh", "sigmoid"),
    ("relu", "relu", "sigmoid"),
    ("gelu", "gelu", "sigmoid"),
    ("silu", "softsign", "hard_sigmoid"),
)
TOLERANCES = {
    torch.float32: {"atol": 2e-5, "rtol": 2e-4},
    torch.bfloat16: {"atol": 6e-2, "rtol": 6e-2},
    torch.float16: {"atol": 1e-2, "rtol": 1e-2},
}
Triple = tuple[str, torch.Tensor, torch.Tensor]


@contextmanager
def forced_backend(name: str) -> Iterator[None]:
    """Run the block with ``RNNLAB_KERNEL=name`` (restored, backend cache reset, after)."""
    before = os.environ.get("RNNLAB_KERNEL")
    os.environ["RNNLAB_KERNEL"] = name
    reset_backend()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("RNNLAB_KERNEL", None)
        else:
            os.environ["RNNLAB_KERNEL"] = before
        reset_backend()


def recurrence_inputs(cell, device, ragged=True, batch=3, steps=5, hidden=8, seed=0):
    """float64 leaves (gx, w_hh, b_ih, b_hh, h0, c0), lengths and the loss weights."""
    g = torch.Generator().manual_seed(seed)
    gates = NUM_GATES[cell] * hidden

    def rnd(*shape, scale=1.0):
        return (torch.rand(*shape, generator=g, dtype=F64) * 2 - 1) * scale

    w_scale = min(0.5, 1.5 / hidden**0.5)  # bounded dynamics at any H (gelu/relu grow)
    w_hh = rnd(gates, scale=0.9) if cell == "indrnn" else rnd(gates, hidden, scale=w_scale)
    state = (rnd(batch, hidden), rnd(batch, hidden)) if ragged else (None, None)
    h0, c0 = (torch.zeros(batch, hidden, dtype=F64) if s is None else s for s in state)
    leaves = [rnd(batch, steps, gates, scale=1.5), w_hh, rnd(gates), rnd(gates), h0, c0]
    ragged_lengths = torch.tensor([steps, 2, steps - 1, 1] * batch)[:batch].clamp(max=steps)
    lengths = ragged_lengths if ragged else torch.full((batch,), steps)
    weights = rnd(batch, steps, hidden), rnd(batch, hidden), rnd(batch, hidden)
    move = [t.to(device) for t in (*leaves, *weights)]
    return move[:6], lengths.to(device), move[6:]


def _run(cell, acts, leaves, lengths, weights, backend) -> list[torch.Tensor]:
    lstm = cell == "lstm"
    ins = [t.detach().requires_grad_(k < 5 or lstm) for k, t in enumerate(leaves)]
    c_in = ins[5] if lstm else ins[5].new_empty(0)
    out, h, c = Recurrence.apply(*ins[:5], c_in, lengths, cell, acts, backend)
    loss = (out.to(F64) * weights[0]).sum() + (h.to(F64) * weights[1]).sum()
    if lstm:
        loss = loss + (c.to(F64) * weights[2]).sum()
    grads = torch.autograd.grad(loss, ins[:6] if lstm else ins[:5])
    return [out, h, *([c] if lstm else []), *grads]


NAMES = ("out", "h_T", "c_T", "d_gx", "d_w_hh", "d_b_ih", "d_b_hh", "d_h0", "d_c0")


def recurrence_parity(cell, acts, device="cpu", dtype=torch.float32, ragged=True, **shape):
    """Triton (``dtype``) vs torch ops (float64) for one layer: (name, got, want) triples."""
    leaves, lengths, weights = recurrence_inputs(cell, device, ragged, **shape)
    low = [t.to(dtype) if k in (0, 4, 5) else t.float() for k, t in enumerate(leaves)]
    got = _run(cell, acts, low, lengths, weights, "triton")
    want = _run(cell, acts, leaves, lengths, weights, "python")
    names = [n for n in NAMES if cell == "lstm" or n not in ("c_T", "d_c0")]
    return list(zip(names, got, want, strict=True))


def mismatches(triples: list[Triple], dtype: torch.dtype = torch.float32) -> list[str]:
    """One line per tensor that differs from its reference beyond ``TOLERANCES[dtype]``."""
    bad = []
    for name, got, want in triples:
        try:
            torch.testing.assert_close(got.to(F64), want.to(F64), **TOLERANCES[dtype])
        except AssertionError as err:
            bad.append(f"{name}: {str(err).splitlines()[0]} {str(err).splitlines()[2:4]}")
    return bad


def feedback_parity(
    cell, activation="gelu", layers=2, device="cpu", dtype=torch.float32, dropout=0.0, **spec
):
    """Gated-feedback stack on Triton (``dtype``) vs its torch-ops path (float64):
    (name, got, want) for the output, every final state and every gradient. With
    ``dropout`` both run the same (L-1, T, B, H) masks (training mode)."""
    from rnnlab.nn import build_stack

    torch.manual_seed(1)
    cfg = {"cell": cell, "activation": activation, "hidden_size": 8, "num_layers": layers}
    cfg = {**cfg, "connection": {"name": "gated_feedback"}, "dropout": dropout, **spec}
    stack = build_stack(3, cfg).to(device, F64).train(dropout > 0)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 6, 3, generator=g, dtype=F64).to(device)
    lengths = torch.tensor([6, 2, 4], device=device)
    masks = None
    if dropout:
        keep = torch.rand(layers - 1, 6, 3, 8, generator=g) > dropout
        masks = (keep.to(F64) / (1 - dropout)).to(device)
    results = {}
    for backend, dt in (("python", F64), ("triton", dtype)):
        stack.to(dt)
        xx = x.to(dt).requires_grad_()
        with forced_backend(backend):
            if masks is None:
                out, states = stack(xx, lengths)
            else:
                direction = stack.directions[0]
                out, states = direction(xx, lengths, stack.dropout, masks.to(dt))
            flat = [t for s in states for t in s]
            w = torch.linspace(-1, 1, out.numel(), device=device, dtype=F64).view(out.shape)
            loss = (out.to(F64) * w).sum()
            loss = loss + sum((t.to(F64) * (k + 2) * 0.1).sum() for k, t in enumerate(flat))
            params = [p for p in stack.parameters()]
            grads = torch.autograd.grad(loss, [xx, *params], allow_unused=True)
        names = ["out", *(f"state{k}" for k in range(len(flat))), "d_x"]
        names += [f"d_{n}" for n, _ in stack.named_parameters()]
        results[backend] = [(n, t) for n, t in zip(names, [out, *flat, *grads]) if t is not None]
    stack.to(F64)
    return [(n, a, b) for (n, a), (_, b) in zip(results["triton"], results["python"], strict=True)]
