"""Gated feedback with the cell variants on the C++ kernel: gated_feedback_variants*.cpp
and its autograd Function here.

``feedback_variant_kernel_direction`` runs one direction of a gated-feedback stack whose
layers carry a ``Variant`` (Greff's LSTM variants, peepholes, layer norm, recurrent
dropout, zoneout) and/or an LSTM projection, with the arguments and results of
``connections/gated_feedback_variants.feedback_variant_direction`` — the per-step
autograd loop, which stays the definition and the fallback (``RNNLAB_KERNEL=python``,
dtypes the kernels do not run, a failed build). On the Triton backend (CUDA, or CPU
under TRITON_INTERPRET=1) the same arguments go to triton_feedback_variants.py's
Function, which has this one's contract. The kernel is the
gated-feedback kernel's lockstep algorithm with the variant kernel's row math:
layer 0's input products for all steps are one matmul before the loop, each step is one
product per source layer (own gates, feedback to every layer, every reset gate), one per
layer j >= 1 for its input and, with a projection, one per layer for W_hr; the backward
is hand-written and every weight gradient one large product after the loop.

Masks come from ``variant_masks.draw_masks`` per layer, bottom up, then the
between-layer dropout masks of ``_FeedbackDirection.drop_masks``: the loop's draws in
the loop's order, so under a seed both paths train with identical masks.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from rnnlab.nn.activations import KERNEL_CODES
from rnnlab.nn.kernels.backend import CELL_CODES, backend_for, for_autograd
from rnnlab.nn.kernels.variant_recurrence import _state, variant_cpp_available
from rnnlab.nn.variant_masks import draw_masks
from rnnlab.nn.variants import LSTM_VARIANTS

LOOP = "variant loop (per-step autograd)"


def feedback_kernel_runs(x: torch.Tensor) -> bool:
    """A gated-feedback variant kernel (C++, or Triton: CUDA, or CPU under
    TRITON_INTERPRET=1) will run a direction on tensor ``x``."""
    backend = backend_for(x)
    return backend == "triton" or (backend == "cpp" and variant_cpp_available())


def describe_feedback_path(x: torch.Tensor) -> str:
    """The path ``feedback_kernel_runs`` picks, for a repr: never builds a kernel."""
    from rnnlab.nn.kernels import describe_backend

    backend = describe_backend(x)
    if backend == "triton":
        return "variant kernel, backend=triton"
    if not backend.startswith("cpp") or _state.get("cpp") is False:
        return LOOP
    if backend == "cpp" and _state.get("cpp"):
        return "variant kernel, backend=cpp"
    return f"variant kernel, backend=cpp ({LOOP} if the build fails)"


class GatedFeedbackVariants(torch.autograd.Function):
    """(gx0, w_in, w_rec, b_ih, b_hh, peep, w_hr, 6 LN tensors) -> (out, h_T, c_T),
    time-major, hand-written backward; shapes in gated_feedback_variants.cpp.

    ``masks`` = (drop, rdrop, kh, kc): between-layer dropout (L-1, T, B, P), recurrent
    dropout (L, B, P), zoneout keep masks (L, T, B, P), (L, T, B, H), each empty when
    absent; ``spec`` = (cell code, activation codes, lstm_variant code, eval zoneout z).
    """

    @staticmethod
    def forward(ctx, gx0, w_in, w_rec, b_ih, b_hh, peep, w_hr, *ln_and_rest):
        *ln_params, masks, lengths, spec = ln_and_rest
        save = any(ctx.needs_input_grad[:13])
        cell, codes, variant, z = spec
        out, hs, cs, pre, ct, hn, g, *ln_saved = torch.ops.rnnlab_variant_kernels.gfv_forward(
            gx0.contiguous(), w_in, w_rec, b_ih, b_hh, peep, w_hr, *masks, z, lengths,
            cell, *codes, variant, ln_params, save,
        )  # fmt: skip
        if save:
            ctx.save_for_backward(
                w_in, w_rec, peep, w_hr, *masks, hs, cs, pre, ct, hn, g, lengths,
                *ln_params, *ln_saved,
            )  # fmt: skip
        ctx.spec = spec
        lstm = cell == CELL_CODES["lstm"]
        h_last = hs[:, -1].clone()
        c_last = cs[:, -1].clone() if lstm else gx0.new_empty(0)
        if not lstm:
            ctx.mark_non_differentiable(c_last)
        return out, h_last, c_last

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_h, grad_c):
        cell, codes, variant, z = ctx.spec
        w_in, w_rec, peep, w_hr, *rest = ctx.saved_tensors
        masks, saved, ln_params, ln_saved = rest[:4], rest[4:11], rest[11:17], rest[17:]
        lstm = cell == CELL_CODES["lstm"]
        if not lstm:
            grad_c = grad_out.new_empty(0)
        d_gx0, d_w_in, d_w_rec, d_b_ih, d_b_hh, d_peep, d_w_hr, *dln = (
            torch.ops.rnnlab_variant_kernels.gfv_backward(
                grad_out, grad_h, grad_c, w_in, w_rec, peep, w_hr, *masks, z, *saved,
                cell, *codes, variant, list(ln_params), list(ln_saved),
            )
        )  # fmt: skip
        dln = [d if p.numel() else None for d, p in zip(dln, ln_params)]
        return (
            d_gx0, d_w_in, d_w_rec, d_b_ih, d_b_hh,
            d_peep if peep.numel() else None, d_w_hr if w_hr.numel() else None,
            *dln, None, None, None,
        )  # fmt: skip


def _stacked_params(direction, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """peep (L, 3, H), W_hr (L, P, H) and the six LN tensors stacked per layer (empty
    where the option is off)."""
    empty = x.new_empty(0)
    variant, layers = direction.variant, direction.layers
    extras = [
        layer.variant_params[0] if layer.variant_params is not None else None for layer in layers
    ]
    peep = torch.stack([e.peephole for e in extras]) if variant.peephole else empty
    w_hr = torch.stack([layer.projection(0) for layer in layers]) if direction.proj_size else empty
    ln = [empty] * 6  # LN(U h), LN(c~), LN(W u): gains and biases
    if variant.layer_norm:
        names = ["ln_h_gain", "ln_h_bias", "ln_c_gain", "ln_c_bias", "ln_x_gain", "ln_x_bias"]
        for k, name in enumerate(names):
            if direction.cell == "lstm" or "_c_" not in name:
                ln[k] = torch.stack([getattr(e, name) for e in extras])
    return peep, w_hr, *ln


def feedback_variant_kernel_direction(
    direction: torch.nn.Module,
    x: torch.Tensor,
    lengths: torch.Tensor,
    dropout: torch.nn.Module,
    drop_masks: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One direction of ``_FeedbackDirection`` with variants on the kernel: x (B, T, I) ->
    out (T, B, S), h_T (L, B, S), c_T (L, B, H) (LSTM, else empty), as
    ``feedback_recurrence`` returns them; ``feedback_kernel_runs(x)`` must hold."""
    cell, variant, training = direction.cell, direction.variant, direction.training
    batch, steps = x.shape[:2]
    h, s, num_layers = direction.hidden, direction.state_size, len(direction.layers)
    empty = x.new_empty(0)
    h0 = x.new_zeros(batch, s)
    drawn = [draw_masks(cell, variant, h0, h, steps, training) for _ in range(num_layers)]
    if drop_masks is None:
        drop_masks = direction.drop_masks(x, dropout)
    per_kind = [torch.stack(kind) if kind[0].numel() else empty for kind in zip(*drawn)]
    masks = (drop_masks.contiguous(), *per_kind)  # drop, rdrop, kh, kc
    w0, w_in = direction.input_weights()
    b_ih, b_hh = direction.biases()
    peep, w_hr, *ln = _stacked_params(direction, x)
    gx0 = F.linear(x.transpose(0, 1), w0)  # (T, B, G*H + L): one matmul, no bias
    codes = tuple(KERNEL_CODES[a] for a in direction.acts.kernel_names)
    z = variant.zoneout if not training else 0.0  # training: the masks carry zoneout
    spec = (CELL_CODES[cell], codes, LSTM_VARIANTS.index(variant.lstm_variant), z)
    leaves = for_autograd(gx0, w_in, direction.recurrent_weights(), b_ih, b_hh, peep, w_hr, *ln)
    if backend_for(x) == "triton":  # imported on first use (Triton reads TRITON_INTERPRET)
        from rnnlab.nn.kernels.triton_feedback_variants import TritonGatedFeedbackVariants

        return TritonGatedFeedbackVariants.apply(*leaves, masks, lengths.to(x.device), spec)
    lengths = lengths.to("cpu", torch.long)
    return GatedFeedbackVariants.apply(*leaves, masks, lengths, spec)
