"""Fast recurrent kernels: one layer's time loop with a hand-written backward.

``recurrence(cell, acts, gx, w_hh, b_hh, h0, c0, lengths, b_ih)`` runs the loop of an
Elman, LSTM, GRU or IndRNN layer for any registered activation (IndRNN's ``w_hh`` is its
(H,) recurrent vector: the step's product is elementwise, its gradient a sum). ``gx = x W_ih^T`` for all steps
is computed by the caller as one matrix product, so autograd's own matmul backward
gives dW_ih = dGates^T X and dX = dGates W_ih as single large products; the biases are
added inside the loop's elementwise pass (a bias in that matmul would cost a full-size
broadcast copy). Inside, one
matmul per step does the recurrence, and the backward (an ``autograd.Function``, not
a per-step graph) finishes with dW_hh = dGates^T H_prev as ONE matmul.

Backends, chosen per call by backend.py (``RNNLAB_KERNEL=auto|cpp|triton|python``; all
are production paths, the test oracles live in the tests and in
``_FeedbackDirection._autograd_oracle``):
- ``cpp``: recurrence.cpp compiled once (build.py) — CPU, float32/float64;
- ``triton``: triton_recurrence.py — CUDA (or CPU under ``TRITON_INTERPRET=1``), float32,
  bfloat16, float16: one kernel per step (product + gate math), CUDA-graph replayed;
- ``python``: torch_ops.py, the same algorithm in torch ops — any device or dtype.
The gated-feedback connection's kernel (gated_feedback.py) has the same backends; with
cell variants it runs gated_feedback_variants.py (C++) or triton_feedback_variants.py.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from rnnlab.nn.activations import KERNEL_CODES  # noqa: F401 (re-exported)
from rnnlab.nn.kernels import torch_ops
from rnnlab.nn.kernels.backend import (  # noqa: F401 (re-exported)
    BACKENDS,
    CELL_CODES,
    _state,
    backend_for,
    cpp_available,
    describe_backend,
    for_autograd,
    requested_backend,
    reset_backend,
)
from rnnlab.nn.kernels.gated_feedback import GatedFeedback, feedback_recurrence  # noqa: F401


def _triton():
    """The Triton backend module, imported on first use (Triton reads TRITON_INTERPRET then)."""
    from rnnlab.nn.kernels import triton_recurrence

    return triton_recurrence


class Recurrence(torch.autograd.Function):
    """(gx, W_hh, b_ih, b_hh, h0, c0) -> (out, h_T, c_T) with the hand-written backward."""

    @staticmethod
    def forward(ctx, gx, w_hh, b_ih, b_hh, h0, c0, lengths, cell, acts, backend):
        save = any(ctx.needs_input_grad[:6])
        lstm = cell == "lstm"
        if backend == "cpp":
            codes = [KERNEL_CODES[a] for a in acts]
            c_in = c0 if lstm else gx.new_empty(0)
            out, h, c, pre, c_all, hn_all = torch.ops.rnnlab_kernels.rec_forward(
                gx.contiguous(), w_hh, b_ih, b_hh, h0, c_in, lengths, CELL_CODES[cell], *codes,
                save,
            )  # fmt: skip
        elif backend == "triton":
            c_in = c0 if lstm else gx.new_empty(0)
            out, h, c, pre, c_all, hn_all = _triton().forward(
                cell, acts, gx, w_hh, b_ih, b_hh, h0, c_in, lengths, save
            )
        else:
            out, h, c, pre, c_all, hn_all = torch_ops.forward(
                cell, acts, gx + b_ih, w_hh, b_hh, h0, c0 if lstm else None, lengths, save
            )
        if save:
            c_saved = c0 if lstm else gx.new_empty(0)
            ctx.save_for_backward(w_hh, h0, c_saved, out, pre, c_all, hn_all, lengths)
        ctx.cell, ctx.acts, ctx.backend = cell, acts, backend
        ctx.gx_dtype, ctx.b_dtypes = gx.dtype, (b_ih.dtype, b_hh.dtype)
        if not lstm:
            ctx.mark_non_differentiable(c)
        return out, h, c

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_h, grad_c):
        w_hh, h0, c0, out, pre, c_all, hn_all, lengths = ctx.saved_tensors
        cell, acts, lstm = ctx.cell, ctx.acts, ctx.cell == "lstm"
        if ctx.backend == "cpp":
            codes = [KERNEL_CODES[a] for a in acts]
            g_c = grad_c if lstm else out.new_empty(0)
            dgx, dw, db_ih, db, dh0, dc0 = torch.ops.rnnlab_kernels.rec_backward(
                grad_out, grad_h, g_c, w_hh, h0, c0, out, pre, c_all, hn_all, lengths,
                CELL_CODES[cell], *codes,
            )  # fmt: skip
        elif ctx.backend == "triton":
            dgx, dw, db_ih, db, dh0, dc0 = _triton().backward(
                cell, acts, grad_out, grad_h, grad_c if lstm else None, w_hh, h0,
                c0 if lstm else None, out, pre, c_all, hn_all, lengths, ctx.gx_dtype,
            )  # fmt: skip
            db_ih, db = db_ih.to(ctx.b_dtypes[0]), db.to(ctx.b_dtypes[1])
        else:
            dgx, dw, db, dh0, dc0 = torch_ops.backward(
                cell, acts, grad_out, grad_h, grad_c if lstm else None, w_hh, h0,
                c0 if lstm else None, out, pre, c_all, hn_all, lengths,
            )  # fmt: skip
            db_ih = dgx.sum((0, 1))
        dc0 = dc0 if lstm else None
        return dgx, dw, db_ih, db, dh0, dc0, None, None, None, None


def recurrence(
    cell: str,
    acts: tuple[str, str, str],
    gx: torch.Tensor,
    w_hh: torch.Tensor,
    b_hh: torch.Tensor,
    h0: torch.Tensor,
    c0: torch.Tensor | None,
    lengths: torch.Tensor,
    b_ih: torch.Tensor | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Run one direction. gx (B, T, G*H), lengths (B,) -> out (B, T, H), state tuple.

    ``acts`` = (activation, cell_activation, gate_activation) names. ``gx`` is
    ``x W_ih^T``, plus ``b_ih`` unless that is passed separately (faster). Outputs at
    padded steps are zero and the state stops at each sequence's last valid step.
    """
    backend = backend_for(gx)
    lengths = lengths.to("cpu" if backend == "cpp" else gx.device, torch.long)
    if c0 is None:
        c0 = h0.new_empty(0)
    if b_ih is None:
        b_ih = b_hh.new_zeros(b_hh.shape)
    leaves = for_autograd(gx, w_hh, b_ih, b_hh, h0, c0)
    out, h, c = Recurrence.apply(*leaves, lengths, cell, acts, backend)
    return out, ((h, c) if cell == "lstm" else (h,))
