"""The random masks of recurrent dropout and zoneout: the one place they are drawn.

Every path that runs a variant layer (the per-step loop of ``variant_cells``, the C++
and Triton variant kernels, the gated-feedback stack) takes its masks from
``draw_masks``, so under a seed they all train with the same masks by construction
(docs/equations.md, "Recurrent dropout", "Zoneout").

In training, one direction of one layer draws at the start of its forward pass, from
torch's generator on the state's device, in this order:

1. the recurrent-dropout mask ``m`` (B, width of h): ``Bernoulli(1 - p) / (1 - p)``;
2. the zoneout keep masks of all steps, ``k^h`` (T, B, width of h) and, for the LSTM,
   ``k^c`` (T, B, H), as one block of uniform 16-bit integers ``r``:
   ``k = [r < round(z 2^16)]``, so ``P(k = 1) = z`` at a resolution of 2^-16.
   Each 64-bit draw of the generator gives four masks, a quarter of the draws (and a
   fraction of the time) of one ``torch.rand`` float per mask, which cost as much as
   the kernel's extra work for zoneout at (100, 64, 128, 256).

Eval draws nothing: dropout is off and zoneout uses its expectation ``z``.
"""

from __future__ import annotations

import torch

from rnnlab.nn.variants import Variant

ZONEOUT_BITS = 16  # the resolution of the keep probability: 2^-16


def zoneout_threshold(z: float) -> int:
    """The int16 value below which a uniform int16 keeps the previous state."""
    levels = 1 << ZONEOUT_BITS
    return min(round(z * levels), levels - 1) - levels // 2


def keep_masks(z: float, count: int, device: torch.device | str) -> torch.Tensor:
    """``count`` zoneout keep masks (True: keep the previous state) as a flat bool tensor
    on ``device``, four per 64-bit draw of the generator."""
    words = torch.empty((count + 3) // 4, dtype=torch.int64, device=device)
    words.random_(-(1 << 63), None)  # the full 64-bit range: every int16 lane uniform
    return words.view(torch.int16)[:count] < zoneout_threshold(z)


def draw_masks(
    cell: str, variant: Variant, h0: torch.Tensor, hidden: int, steps: int, training: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(drop (B, width of h) in h0's dtype, bool k^h (T, B, width of h) and, for the LSTM,
    k^c (T, B, H)) of one layer direction, each contiguous; empty tensors where absent
    (eval, option off, k^c of other cells). Bool keep masks take a quarter of the memory
    of float ones (the kernels widen each row's as they use it)."""
    empty = h0.new_empty(0)
    drop, kh, kc = empty, empty, empty
    if not training:
        return drop, kh, kc
    if variant.recurrent_dropout > 0:
        keep = 1.0 - variant.recurrent_dropout
        drop = torch.empty_like(h0).bernoulli_(keep).div_(keep)
    if variant.zoneout > 0:
        batch, width = h0.shape
        c_width = hidden if cell == "lstm" else 0
        keep = keep_masks(variant.zoneout, steps * batch * (width + c_width), h0.device)
        kh = keep[: steps * batch * width].view(steps, batch, width)
        if c_width:
            kc = keep[steps * batch * width :].view(steps, batch, c_width)
    return drop, kh, kc
