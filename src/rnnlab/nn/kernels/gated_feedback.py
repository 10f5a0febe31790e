"""Fast path of the gated-feedback connection: the whole L-layer lockstep loop.

The gated-feedback stack (docs/equations.md) cannot run layer by layer: at every
step each layer's candidate reads every layer's previous state through scalar reset
gates. ``GatedFeedback`` runs one direction of it with a hand-written backward:

- layer 0's input projection (with its reset-gate input weights) for all steps is one
  matmul before the loop (autograd's linear backward gives dW_ih_0 and dx);
- per step: one product per source layer with ``w_rec`` (own-layer gate recurrence,
  feedback to every layer, every reset gate's h* term at once) and one per layer
  j >= 1 with ``w_in`` = [W_ih_j; gate_u_j]; fused elementwise gate math;
- the backward saves only states, pre-activations, reset gates (and LSTM cells / GRU
  candidates); every weight gradient is one large matmul over (T*B) rows after the loop.

Inter-layer dropout takes masks sampled for all steps up front (inverted dropout,
scale 1/(1-p)): the same distribution as ``nn.Dropout`` per step, but NOT the same
random stream as the old per-step loop, so a seeded run's dropout pattern differs.

Backends as for ``recurrence``: the C++ kernel (gated_feedback.cpp, CPU float32/64),
the Triton path (triton_feedback.py: CUDA, float32/bf16/fp16) or the torch-ops twin
(gated_feedback_torch_ops.py, any device and dtype), chosen by ``backend_for`` and
``RNNLAB_KERNEL``.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from rnnlab.nn.activations import KERNEL_CODES
from rnnlab.nn.kernels import gated_feedback_torch_ops as torch_ops
from rnnlab.nn.kernels.backend import CELL_CODES, backend_for, for_autograd

layout = torch_ops.layout


def _triton():
    """The Triton backend module, imported on first use (Triton reads TRITON_INTERPRET then)."""
    from rnnlab.nn.kernels import triton_feedback

    return triton_feedback


class GatedFeedback(torch.autograd.Function):
    """(gx0, w_in, b_in, w_rec, b_rec) -> (out, h_T, c_T), time-major; see gated_feedback.cpp."""

    @staticmethod
    def forward(ctx, gx0, w_in, b_in, w_rec, b_rec, drop, lengths, cell, acts, backend):
        save = any(ctx.needs_input_grad[:5])
        lstm = cell == "lstm"
        if backend == "cpp":
            codes = [KERNEL_CODES[a] for a in acts]
            out, hs, cs, pre, cand, g = torch.ops.rnnlab_kernels.gf_forward(
                gx0.contiguous(), w_in.contiguous(), b_in.contiguous(), w_rec.contiguous(),
                b_rec.contiguous(), drop.contiguous(), lengths, CELL_CODES[cell], *codes, save,
            )  # fmt: skip
        elif backend == "triton":
            out, hs, cs, pre, cand, g = _triton().forward(
                cell, acts, gx0, w_in, b_in, w_rec, b_rec, drop, lengths, save
            )
        else:
            out, hs, cs, pre, cand, g = torch_ops.forward(
                cell, acts, gx0, w_in, b_in, w_rec, b_rec, drop, lengths, save
            )
        if save:
            ctx.save_for_backward(w_in, w_rec, drop, hs, cs, pre, cand, g, lengths)
        ctx.cell, ctx.acts, ctx.backend = cell, acts, backend
        ctx.dtypes = [t.dtype for t in (gx0, w_in, b_in, w_rec, b_rec)]
        h_last = hs[:, -1].clone()
        c_last = cs[:, -1].clone() if lstm else gx0.new_empty(0)
        if not lstm:
            ctx.mark_non_differentiable(c_last)
        return out, h_last, c_last

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_h, grad_c):
        w_in, w_rec, drop, hs, cs, pre, cand, g, lengths = ctx.saved_tensors
        cell, acts = ctx.cell, ctx.acts
        if cell != "lstm":
            grad_c = hs.new_empty(0)
        if ctx.backend == "cpp":
            codes = [KERNEL_CODES[a] for a in acts]
            grads = torch.ops.rnnlab_kernels.gf_backward(
                grad_out, grad_h, grad_c, w_in.contiguous(), w_rec.contiguous(), drop, hs, cs,
                pre, cand, g, lengths, CELL_CODES[cell], *codes,
            )  # fmt: skip
        elif ctx.backend == "triton":
            grads = _triton().backward(
                cell, acts, grad_out, grad_h, grad_c, w_in, w_rec, drop, hs, cs, pre, cand, g,
                lengths,
            )  # fmt: skip
            grads = [gr.to(dt) for gr, dt in zip(grads, ctx.dtypes, strict=True)]
        else:
            grads = torch_ops.backward(
                cell, acts, grad_out, grad_h, grad_c, w_in, w_rec, drop, hs, cs, pre, cand, g,
                lengths,
            )  # fmt: skip
        return (*grads, None, None, None, None, None)


def feedback_recurrence(
    cell: str,
    acts: tuple[str, str, str],
    gx0: torch.Tensor,
    w_in: torch.Tensor,
    b_in: torch.Tensor,
    w_rec: torch.Tensor,
    b_rec: torch.Tensor,
    drop: torch.Tensor,
    lengths: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run one direction. Shapes as in gated_feedback.cpp; returns out (T, B, H),
    h_T (L, B, H) and c_T (L, B, H) for LSTM (else empty). Zero initial state."""
    backend = backend_for(gx0)
    lengths = lengths.to("cpu" if backend == "cpp" else gx0.device, torch.long)
    leaves = for_autograd(gx0, w_in, b_in, w_rec, b_rec)
    return GatedFeedback.apply(*leaves, drop, lengths, cell, acts, backend)
