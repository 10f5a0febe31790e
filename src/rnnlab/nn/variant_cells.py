"""The cell variants step by step (docs/equations.md, "Cell variants"), and their loop.

``variant_step`` is one step of any cell with the options of a ``Variant`` (plus an LSTM
projection), in the style of ``cells.cell_step``; ``variant_direction`` runs it over a
padded batch with the masking rule of nn/masks.py. This loop is autograd through torch
ops, one small graph per step: the reference of the variant kernel
(nn/kernels/variant_recurrence: the C++ kernel on CPU float32/float64, the Triton
kernel on CUDA, both drawing the same masks), and the path of ``RNNLAB_KERNEL=python``,
other dtypes, a failed build and gated-feedback stacks (the measured costs are in
benchmarks/results/variants.md).

Random masks (training only; eval draws nothing): recurrent dropout draws ONE inverted
mask ``m ~ Bernoulli(1-p)/(1-p)`` of shape (B, width of h) per call, i.e. per sequence,
layer and direction, fixed over the steps, and multiplies the h_{t-1} that enters the
recurrent product ``U h_{t-1}``. Zoneout uses a fresh keep mask ``k ~ Bernoulli(z)`` per
step for h (and another for c), ``s_t = k ⊙ s_{t-1} + (1-k) ⊙ s̃_t``; in eval it uses the
expectation ``s_t = z s_{t-1} + (1-z) s̃_t``. Both are drawn at the start of the call
by ``variant_masks.draw_masks`` (the kernels draw theirs there too) from torch's global
generator, so a seeded run reproduces them.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from rnnlab.nn.cells import NUM_GATES, CellActivations, State, cell_step, recurrent_term
from rnnlab.nn.masks import step_mask_or_none
from rnnlab.nn.variant_masks import draw_masks
from rnnlab.nn.variants import Variant, VariantParams

LN_EPS = 1e-5


def block_norm(a: torch.Tensor, gain: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Layer norm of each gate block: a (..., G*H) with gain, bias (G, H) (or (H,))."""
    shape = a.shape
    blocks = a.reshape(*shape[:-1], *gain.shape)
    mean = blocks.mean(-1, keepdim=True)
    var = blocks.var(-1, unbiased=False, keepdim=True)
    return ((blocks - mean) * torch.rsqrt(var + LN_EPS) * gain + bias).reshape(shape)


def lstm_step(
    acts: CellActivations,
    variant: Variant,
    a: torch.Tensor,
    c_prev: torch.Tensor,
    extra: VariantParams | None,
    w_hr: torch.Tensor | None = None,
) -> State:
    """One LSTM step from the full pre-activations ``a`` (B, 4H) and c_{t-1}."""
    a_i, a_f, a_g, a_o = a.chunk(4, dim=1)
    sig, name = acts.sigma, variant.lstm_variant
    peep = extra.peephole if extra is not None else None
    if peep is not None:
        a_i, a_f = a_i + peep[0] * c_prev, a_f + peep[1] * c_prev
    f = torch.ones_like(a_f) if name == "nfg" else sig(a_f)
    if name == "cifg":
        i = 1.0 - f
    else:
        i = torch.ones_like(a_i) if name == "nig" else sig(a_i)
    g = a_g if name == "niaf" else acts.phi(a_g)
    c = f * c_prev + i * g
    if peep is not None:
        a_o = a_o + peep[2] * c
    o = torch.ones_like(a_o) if name == "nog" else sig(a_o)
    c_out = block_norm(c, extra.ln_c_gain, extra.ln_c_bias) if variant.layer_norm else c
    r = o * (c_out if name == "noaf" else acts.phi_c(c_out))
    return (r if w_hr is None else F.linear(r, w_hr), c)


def variant_step(
    cell: str,
    acts: CellActivations,
    variant: Variant,
    gx: torch.Tensor,
    h_in: torch.Tensor,
    state: State,
    weights: tuple[torch.Tensor, ...],
    extra: VariantParams | None,
    w_hr: torch.Tensor | None = None,
) -> State:
    """One step. ``gx = W u_t`` (B, G*H) WITHOUT b_ih (layer norm sits before the bias);
    ``h_in`` is h_{t-1} as it enters the recurrent product (after recurrent dropout)."""
    _, w_hh, b_ih, b_hh = weights
    if variant.layer_norm:
        gh = recurrent_term(cell, h_in, w_hh, torch.zeros_like(b_hh))
        return products_step(cell, acts, variant, gx, gh, state, (b_ih, b_hh), extra, w_hr)
    gx, gh = gx + b_ih, recurrent_term(cell, h_in, w_hh, b_hh)
    return _gate_math(cell, acts, variant, gx, gh, state, extra, w_hr)


def products_step(
    cell: str,
    acts: CellActivations,
    variant: Variant,
    gx: torch.Tensor,
    gh: torch.Tensor,
    state: State,
    biases: tuple[torch.Tensor, torch.Tensor],
    extra: VariantParams | None,
    w_hr: torch.Tensor | None = None,
) -> State:
    """One step from both products WITHOUT their biases: ``gx = W u_t`` and the recurrent
    term ``gh`` (B, G*H), which the gated-feedback connection assembles itself (its
    candidate block is the gated sum of feedback products). Layer norm per gate block of
    each, then ``b_ih`` / ``b_hh``, then the cell's gate math."""
    b_ih, b_hh = biases
    if variant.layer_norm:
        gx = block_norm(gx, extra.ln_x_gain, extra.ln_x_bias)
        gh = block_norm(gh, extra.ln_h_gain, extra.ln_h_bias)
    return _gate_math(cell, acts, variant, gx + b_ih, gh + b_hh, state, extra, w_hr)


def _gate_math(
    cell: str,
    acts: CellActivations,
    variant: Variant,
    gx: torch.Tensor,
    gh: torch.Tensor,
    state: State,
    extra: VariantParams | None,
    w_hr: torch.Tensor | None,
) -> State:
    """The elementwise part of a step from ``gx``, ``gh`` with their biases added."""
    if cell == "lstm":
        return lstm_step(acts, variant, gx + gh, state[1], extra, w_hr)
    return cell_step(cell, acts, gx, gh, state)


def zoneout(new: State, old: State, z: float, keeps: list[torch.Tensor] | None) -> State:
    """Zoneout of a step's new state: ``keeps`` (bool, one per state tensor) keep the old
    value (training); ``None``: the expectation ``z s_{t-1} + (1-z) s~_t`` (eval)."""
    if keeps is not None:
        return tuple(torch.where(k, o, n) for k, o, n in zip(keeps, old, new))
    return tuple(z * o + (1.0 - z) * n for o, n in zip(old, new))


def variant_direction(
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
    """One direction. x (B, T, I) -> out (B, T, P or H), final state ((h,) or (h, c))."""
    w_ih, w_hh = weights[:2]
    batch, steps = x.shape[:2]
    hidden = w_hh.shape[0] // NUM_GATES[cell]
    if state is None:
        h0 = x.new_zeros(batch, w_hh.shape[-1] if w_hh.dim() == 2 else hidden)
        state = (h0, x.new_zeros(batch, hidden)) if cell == "lstm" else (h0,)
    gx = F.linear(x, w_ih)  # every step's input product in one matmul; b_ih added per step
    drop, kh, kc = draw_masks(cell, variant, state[0], hidden, steps, training)
    mask = step_mask_or_none(lengths, steps, x.device)
    outs = []
    # unbind, not gx[:, t]: its backward stacks once instead of a full-size zero tensor
    # per step (measured 2-3x on the whole loop at (100, 64, 128, 256))
    for t, gx_t in enumerate(gx.unbind(1)):
        h_in = state[0] * drop if drop.numel() else state[0]
        new = variant_step(cell, acts, variant, gx_t, h_in, state, weights, extra, w_hr)
        if variant.zoneout > 0:
            keeps = [k[t] for k in (kh, kc) if k.numel()] if training else None
            new = zoneout(new, state, variant.zoneout, keeps)
        if mask is None:
            state = new
            outs.append(new[0])
        else:
            m = mask[t]
            state = tuple(torch.where(m, n, s) for n, s in zip(new, state))
            outs.append(new[0] * m)
    return torch.stack(outs, 1), state
