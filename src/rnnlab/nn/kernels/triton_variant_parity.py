"""Parity of the Triton variant kernel against the variant loop (one copy).

Used by tests/unit/nn/kernels/test_triton_variants.py (CPU tensors, ``TRITON_INTERPRET=1``)
and by ``make check-gpu`` (benchmarks/check_gpu.py, CUDA tensors). ``variant_parity``
runs one direction of a layer with a variant (and/or an LSTM projection) through
``variant_kernel_direction`` on the Triton backend and through
``variant_cells.variant_direction`` (the per-step autograd loop, the reference) on the
same leaves, masks drawn under the same seed, and returns ``(name, got, want)`` for the
output, the final states and the gradient of every leaf (x, h0, c0, W_ih, W_hh, the
biases, peepholes, layer-norm gains and biases, W_hr) of a weighted loss. With random
masks (training with recurrent dropout or zoneout) the reference runs in the kernel's
dtype (the masks are drawn in it); otherwise in float64.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from rnnlab.nn.cells import CellActivations
from rnnlab.nn.kernels.triton_parity import forced_backend
from rnnlab.nn.kernels.variant_recurrence import variant_kernel_direction
from rnnlab.nn.recurrent import RecurrentLayer
from rnnlab.nn.variant_cells import variant_direction
from rnnlab.nn.variants import Variant

F64 = torch.float64
# name -> (cell, Variant options, proj_size): every option, alone and combined.
CASES = {
    **{v: ("lstm", {"lstm_variant": v}, 0) for v in ("cifg", "nig", "nfg", "nog", "niaf")},
    "noaf_peephole": ("lstm", {"lstm_variant": "noaf", "peephole": True}, 0),
    "cifg_peephole_zoneout": (
        "lstm",
        {"lstm_variant": "cifg", "peephole": True, "zoneout": 0.3},
        0,
    ),
    "projection_dropout": ("lstm", {"recurrent_dropout": 0.3}, 3),
    "dropout_zoneout_gru": ("gru", {"recurrent_dropout": 0.3, "zoneout": 0.3}, 0),
    "dropout_zoneout_rnn": ("rnn", {"recurrent_dropout": 0.3, "zoneout": 0.3}, 0),
    "dropout_zoneout_indrnn": ("indrnn", {"recurrent_dropout": 0.3, "zoneout": 0.3}, 0),
    "layer_norm_all_lstm": (
        "lstm",
        {"layer_norm": True, "peephole": True, "zoneout": 0.3, "recurrent_dropout": 0.3},
        3,
    ),
    "layer_norm_gru": ("gru", {"layer_norm": True, "zoneout": 0.2}, 0),
    "layer_norm_rnn": ("rnn", {"layer_norm": True}, 0),
    "layer_norm_indrnn": ("indrnn", {"layer_norm": True, "recurrent_dropout": 0.2}, 0),
}


def _leaves(layer: RecurrentLayer) -> dict[str, torch.Tensor]:
    """Direction 0's tensors the step reads, by name (IndRNN's vector already bounded)."""
    names = ("w_ih", "w_hh", "b_ih", "b_hh")
    leaves = dict(zip(names, (t.detach() for t in layer.step_weights(0))))
    if layer.variant_params is not None:
        leaves.update({n: p.detach() for n, p in layer.variant_params[0].named_parameters()})
    if layer.proj_size:
        leaves["w_hr"] = layer.projection(0).detach()
    return leaves


def _run(fn, layer, backend, dtype, x, lengths, state, leaves, weights, training):
    ins = {n: t.to(dtype).requires_grad_() for n, t in {"x": x, **state, **leaves}.items()}
    extra = {"peephole": None, **{n: ins[n] for n in leaves if n.startswith(("p", "ln"))}}
    extra = SimpleNamespace(**extra)
    weights4 = tuple(ins[n] for n in ("w_ih", "w_hh", "b_ih", "b_hh"))
    st = tuple(ins[n] for n in state)
    with forced_backend(backend):
        torch.manual_seed(5)  # the same masks on both paths
        out, final = fn(
            layer.cell, layer.acts, layer.variant, ins["x"], lengths, weights4, extra,
            ins.get("w_hr"), st, training,
        )  # fmt: skip
    loss = (out.to(F64) * weights[0]).sum()
    loss = loss + sum((s.to(F64) * w).sum() for s, w in zip(final, weights[1:]))
    grads = torch.autograd.grad(loss, list(ins.values()))
    names = ["out", *(f"{n}_T" for n in state), *(f"d_{n}" for n in ins)]
    return list(zip(names, [out, *final, *grads], strict=True))


def variant_layer(case, input_size=5, hidden=8, activation="tanh") -> RecurrentLayer:
    """A one-direction float32 layer with ``CASES[case]`` (seeded)."""
    cell, opts, proj = CASES[case]
    torch.manual_seed(0)
    acts = CellActivations(activation, cell_activation="softsign" if cell == "lstm" else None)
    return RecurrentLayer(
        cell, input_size, hidden, proj_size=proj, variant=Variant(**opts), activations=acts
    )


def variant_parity(case, device="cpu", dtype=torch.float32, training=True, batch=3, steps=4,
                   input_size=5, hidden=8, activation="tanh"):  # fmt: skip
    """Triton (``dtype``) vs the variant loop for ``CASES[case]``: (name, got, want)."""
    cell, opts, proj = CASES[case]
    layer = variant_layer(case, input_size, hidden, activation).to(device, F64)
    g = torch.Generator().manual_seed(1)
    width = proj or hidden

    def rnd(*shape):
        return torch.randn(*shape, generator=g, dtype=F64).to(device)

    x = rnd(batch, steps, input_size)
    lengths = torch.tensor([steps, 2, steps - 1, 1] * batch)[:batch].to(device)
    state = {"h0": rnd(batch, width)}
    if cell == "lstm":
        state["c0"] = rnd(batch, hidden)
    weights = [rnd(batch, steps, width), *(rnd(*s.shape) for s in state.values())]
    leaves = _leaves(layer)
    random = training and (opts.get("recurrent_dropout") or opts.get("zoneout"))
    ref_dtype = dtype if random else F64
    args = (x, lengths, state, leaves, weights, training)
    got = _run(variant_kernel_direction, layer, "triton", dtype, *args)
    want = _run(variant_direction, layer, "python", ref_dtype, *args)
    return [(n, a, b) for (n, a), (_, b) in zip(got, want, strict=True)]


# Gated-feedback stacks with variants: name -> build_stack config (every option, the
# three cells, alone and combined); each runs 2 layers in both directions, dropout between.
FEEDBACK_CASES = {
    "cifg_peephole": {"cell": "lstm", "lstm_variant": "cifg", "peephole": True},
    "nig_zoneout": {"cell": "lstm", "lstm_variant": "nig", "zoneout": 0.3},
    "nfg": {"cell": "lstm", "lstm_variant": "nfg"},
    "nog": {"cell": "lstm", "lstm_variant": "nog"},
    "niaf": {"cell": "lstm", "lstm_variant": "niaf"},
    "noaf_dropout": {"cell": "lstm", "lstm_variant": "noaf", "recurrent_dropout": 0.3},
    "all_lstm": {
        "cell": "lstm",
        "lstm_variant": "cifg",
        "peephole": True,
        "layer_norm": True,
        "recurrent_dropout": 0.3,
        "zoneout": 0.2,
        "proj_size": 3,
    },  # fmt: skip
    "projection": {"cell": "lstm", "proj_size": 3},
    "all_gru": {"cell": "gru", "layer_norm": True, "recurrent_dropout": 0.3, "zoneout": 0.2},
    "all_rnn": {"cell": "rnn", "layer_norm": True, "recurrent_dropout": 0.3, "zoneout": 0.2},
}


def feedback_variant_parity(case, device="cpu", dtype=torch.float32, training=True, layers=2,
                            batch=3, steps=5, hidden=8, activation="tanh",
                            backend="triton"):  # fmt: skip
    """A gated-feedback stack with ``FEEDBACK_CASES[case]`` on the Triton variant kernel
    (``dtype``; ``backend="python"``: the loop itself in ``dtype``, to measure that
    dtype's own rounding) vs the variant loop (nn/connections/gated_feedback_variants.py):
    (name, got, want) for the output, every final state and the gradient of x and of
    every parameter. Masks under the same seed; the loop runs in float64 (on CPU torch
    draws the same dropout and zoneout masks in float32 and float64), on CUDA in
    ``dtype`` when training draws random masks (they are drawn in it)."""
    from rnnlab.nn import build_stack
    from rnnlab.nn.connections import gated_feedback as gf

    cfg = {**FEEDBACK_CASES[case], "hidden_size": hidden, "num_layers": layers}
    cfg |= {"activation": activation, "connection": {"name": "gated_feedback"}}
    torch.manual_seed(0)
    stack = build_stack(3, {**cfg, "bidirectional": True, "dropout": 0.2}).to(device)
    stack.train(training)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, steps, 3, generator=g, dtype=F64).to(device)
    lengths = torch.tensor([steps, 2, steps - 1, 1] * batch)[:batch].clamp(1, steps).to(device)
    random = training and (cfg.get("recurrent_dropout") or cfg.get("zoneout") or layers > 1)
    ref = dtype if random and torch.device(device).type != "cpu" else F64
    runs = {}
    for run, (name, dt) in enumerate(((backend, dtype), ("python", ref))):
        stack.to(dt)
        xx = x.to(dt).requires_grad_()
        with forced_backend(name):
            assert gf.feedback_kernel_runs(xx) == (name == "triton")
            torch.manual_seed(5)  # the same masks on both paths
            out, states = stack(xx, lengths)
        flat = [t for s in states for t in s]
        w = torch.linspace(-1, 1, out.numel(), device=device, dtype=F64).view(out.shape)
        loss = (out.to(F64) * w).sum() + sum((t.to(F64) * t.to(F64).cos()).sum() for t in flat)
        grads = torch.autograd.grad(loss, [xx, *stack.parameters()], materialize_grads=True)
        names = ["out", *(f"state{k}" for k in range(len(flat))), "d_x"]
        names += [f"d_{n}" for n, _ in stack.named_parameters()]
        runs[run] = list(zip(names, [out, *flat, *grads], strict=True))
    return [(n, a, b) for (n, a), (_, b) in zip(runs[0], runs[1], strict=True)]


def scaled_error(triples) -> float:
    """The largest max|got - want| / (1 + max|want|) over the triples: rounding error
    relative to each tensor's scale (elementwise tolerances flag near-zero entries of
    long float32 reductions that layer norm amplifies)."""
    return max(
        ((a.to(F64) - b.to(F64)).abs().max() / (1 + b.to(F64).abs().max())).item()
        for _, a, b in triples
        if b.numel()
    )
