"""The cell variants on the kernels: variant_recurrence.cpp (CPU) and its autograd
Function here, and the Triton backend (CUDA: triton_variant.py, same contract).

``variant_kernel_direction`` runs one direction of a layer with a non-plain ``Variant``
(Greff variants, peepholes, layer norm, recurrent dropout, zoneout) and/or an LSTM
projection, with the same arguments and results as ``variant_cells.variant_direction``
(the per-step autograd loop, which stays the reference and the fallback:
``RNNLAB_KERNEL=python``, dtypes neither backend runs, a failed build). The backend is
``backend_for(x)``: ``cpp`` runs VariantRecurrence, ``triton`` (CUDA, or CPU under
``TRITON_INTERPRET=1``; float32/bfloat16/float16) TritonVariantRecurrence; every option
runs on both. Layer norm runs per
row and step in the kernel (LN(W u), LN(U h) per gate block, the LSTM's LN(c~)): as
autograd ops outside the loop, LN(W u) alone cost more than the whole loop. As in nn/kernels/__init__.py,
``gx = W u`` for all steps is one product outside (autograd gives dW_ih, dX), the loop
runs in C++ with one product per step (two with a projection), and the backward is
hand-written, with dW_hh (and dW_hr, the peepholes) as one reduction after the loop.

Masks (recurrent dropout, zoneout) come from ``variant_masks.draw_masks``, the one
function the loop draws them with too, so under a seed every path trains with identical
masks. Eval draws nothing; zoneout then uses its expectation.
"""

from __future__ import annotations

import sys

import torch
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from rnnlab.nn.activations import KERNEL_CODES
from rnnlab.nn.cells import NUM_GATES, CellActivations, State
from rnnlab.nn.kernels import CELL_CODES, backend_for, for_autograd, requested_backend
from rnnlab.nn.kernels.build import VARIANT_SOURCES, load_extension
from rnnlab.nn.variant_masks import draw_masks
from rnnlab.nn.variants import LSTM_VARIANTS, Variant, VariantParams

_state: dict[str, bool] = {}


def variant_cpp_available() -> bool:
    """Build/load the variant extension once per process; False (with a notice) if not
    (``RNNLAB_KERNEL=cpp``: the error is raised)."""
    if "cpp" not in _state:
        try:
            load_extension(VARIANT_SOURCES, prefix="rnnlab_var_")
            _state["cpp"] = True
        except Exception as err:  # no compiler, ...: the variant loop runs instead
            if requested_backend() == "cpp":
                raise
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err)
            print(
                f"rnnlab: C++ variant kernel unavailable ({first}); using the variant loop",
                file=sys.stderr,
            )
            _state["cpp"] = False
    return _state["cpp"]


def kernel_carries(variant: Variant) -> bool:
    """True when variant_recurrence.cpp implements every option of ``variant`` (all)."""
    return True


def triton_carries(variant: Variant) -> bool:
    """True when triton_variant*.py implements every option of ``variant`` (all)."""
    return True


def kernel_runs(variant: Variant, x: torch.Tensor) -> bool:
    """A variant kernel (C++ or Triton) will run a layer with ``variant`` on tensor ``x``
    (else the loop)."""
    backend = backend_for(x)
    if backend == "triton":
        return triton_carries(variant)
    return kernel_carries(variant) and backend == "cpp" and variant_cpp_available()


def _function(backend: str) -> type[torch.autograd.Function]:
    """The autograd Function of ``backend``: Triton's imported on first use (Triton reads
    TRITON_INTERPRET then, and may not be installed)."""
    if backend == "triton":
        from rnnlab.nn.kernels.triton_variant import TritonVariantRecurrence

        return TritonVariantRecurrence
    return VariantRecurrence


class VariantRecurrence(torch.autograd.Function):
    """(gx, W_hh, b_ih, b_hh, h0, c0, peep, W_hr) -> (out, h_T, c_T), hand-written backward.

    ``masks`` = (drop, kh, kc): the recurrent-dropout mask (B, Hh) and zoneout keep masks
    (T, B, Hh), (T, B, H), each empty when absent; ``spec`` = (cell code, (phi, phi_c,
    sigma) codes, lstm_variant code, eval zoneout z).
    """

    @staticmethod
    def forward(ctx, gx, w_hh, b_ih, b_hh, h0, c0, peep, w_hr, *ln_and_rest):
        *ln_params, lengths, masks, spec = ln_and_rest
        save = any(ctx.needs_input_grad[:14])
        cell, codes, variant, z = spec
        gx = gx.contiguous()
        out, h, c, pre, ct_all, cs_all, hn_all, *ln_saved = (
            torch.ops.rnnlab_variant_kernels.var_forward(
                gx, w_hh, b_ih, b_hh, h0, c0, peep, w_hr, *masks, z, lengths,
                cell, *codes, variant, ln_params, save,
            )
        )  # fmt: skip
        if save and ln_params[0].numel():  # LN(W u)'s x^ is rebuilt from W u = gx
            ln_saved[4] = gx
        if save:
            ctx.save_for_backward(
                w_hh, h0, c0, peep, w_hr, *masks, out, pre, ct_all, cs_all, hn_all, lengths,
                *ln_params, *ln_saved,
            )  # fmt: skip
        ctx.spec = spec
        if cell != CELL_CODES["lstm"]:
            ctx.mark_non_differentiable(c)
        return out, h, c

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_h, grad_c):
        cell, codes, variant, z = ctx.spec
        w_hh, h0, c0, peep, w_hr, drop, kh, kc, *saved = ctx.saved_tensors
        saved, ln_params, ln_saved = saved[:6], saved[6:12], saved[12:]  # ln_saved: 7
        dgx, dw, db_ih, db, dh0, dc0, dw_hr, dpeep, *dln = (
            torch.ops.rnnlab_variant_kernels.var_backward(
                grad_out, grad_h, grad_c, w_hh, h0, c0, peep, w_hr, drop, kh, kc, z, *saved,
                cell, *codes, variant, list(ln_params), list(ln_saved),
            )
        )  # fmt: skip
        lstm = cell == CELL_CODES["lstm"]
        dln = [d if p.numel() else None for d, p in zip(dln, ln_params)]
        return (
            dgx, dw, db_ih, db, dh0, dc0 if lstm else None,
            dpeep if peep.numel() else None, dw_hr if w_hr.numel() else None,
            *dln, None, None, None,
        )  # fmt: skip


def variant_kernel_direction(
    cell: str,
    acts: CellActivations,
    variant: Variant,
    x: torch.Tensor,
    lengths: torch.Tensor,
    weights: tuple[torch.Tensor, ...],
    extra: VariantParams | None,
    w_hr: torch.Tensor | None = None,
    state: State | None = None,
    training: bool = False,
) -> tuple[torch.Tensor, State]:
    """One direction on the variant kernel. x (B, T, I) -> out (B, T, P or H), final state.

    The arguments of ``variant_cells.variant_direction``; ``kernel_runs`` must hold.
    """
    w_ih, w_hh, b_ih, b_hh = weights
    batch, steps = x.shape[:2]
    hidden = b_hh.shape[0] // NUM_GATES[cell]
    lstm = cell == "lstm"
    if state is None:
        h0 = x.new_zeros(batch, w_hr.shape[0] if w_hr is not None else hidden)
        state = (h0, x.new_zeros(batch, hidden)) if lstm else (h0,)
    empty = x.new_empty(0)
    h0, c0 = state[0], state[1] if lstm else empty
    masks = draw_masks(cell, variant, h0, hidden, steps, training)
    z = variant.zoneout if not training else 0.0  # training: the masks carry zoneout
    peep = extra.peephole if extra is not None and extra.peephole is not None else empty
    codes = tuple(KERNEL_CODES[a] for a in acts.kernel_names)
    spec = (CELL_CODES[cell], codes, LSTM_VARIANTS.index(variant.lstm_variant), z)
    gx = F.linear(x, w_ih)
    ln = [empty] * 6  # LN(U h), LN(c~), LN(W u) gains and biases
    if variant.layer_norm:
        ln[:2] = extra.ln_h_gain, extra.ln_h_bias
        if lstm:
            ln[2:4] = extra.ln_c_gain, extra.ln_c_bias
        ln[4:] = extra.ln_x_gain, extra.ln_x_bias
    backend = backend_for(x)
    lengths = lengths.to("cpu" if backend == "cpp" else x.device, torch.long)
    args = (gx, w_hh, b_ih, b_hh, h0, c0, peep, empty if w_hr is None else w_hr)
    if backend == "triton" and not torch.is_grad_enabled():  # inference: save nothing
        from rnnlab.nn.kernels.triton_variant import forward as triton_forward

        out, h, c, _ = triton_forward(spec, *args, ln, lengths, masks, False)
    else:
        leaves = for_autograd(*args, *ln)
        out, h, c = _function(backend).apply(*leaves, lengths, masks, spec)
    return out, ((h, c) if lstm else (h,))


def describe_path(variant: Variant, x: torch.Tensor) -> str:
    """The path ``kernel_runs`` picks, for a repr: never builds a kernel."""
    from rnnlab.nn.kernels import describe_backend

    loop = "variant loop (per-step autograd, nn/variant_cells.py)"
    backend = describe_backend(x)
    if backend == "triton":
        return "variant kernel, backend=triton" if triton_carries(variant) else loop
    if backend.startswith("triton unavailable"):
        return f"{loop}; {backend}"
    if not kernel_carries(variant):
        return loop
    if backend == "python" or _state.get("cpp") is False:
        return loop
    if backend == "cpp" and _state.get("cpp"):
        return "variant kernel, backend=cpp"
    return "variant kernel, backend=cpp (variant loop if the build fails)"
