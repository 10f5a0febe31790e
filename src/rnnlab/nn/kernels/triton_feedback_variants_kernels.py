"""Triton kernels of the gated-feedback stack with the cell variants, one layer j at one
step t (host side: triton_feedback_variants.py; the cell math itself is the variant
kernels' ``fwd_step`` / ``bwd_gates`` of triton_variant_kernels.py and
triton_variant_backward.py, run on the step's slices with ``GH_IN``).

forward, ``gfv_fwd_in``: the prologue of layer j's step from the host's products
S = (m * h_{t-1}) w_rec^T (L, B, N) and a_j = [W_ih_j; gate_u_j] u_j (B, G H + L):
    g^{i->j} = sigmoid(a_j[GH + i] + sum_src S[src, secG + j L + i])        (B, L)
    gh_k     = own-layer gate product k of S[j], or at the candidate block
               cand = sum_i g^{i->j} S[i, secU + j H + cols]                 (B, G H)
    xb_k     = LN(a_j[k H + cols]) gain + bias (layer norm) or a_j[k H + cols], + b_ih
Layer norm takes row statistics per gate block: with it a program owns full rows
(BB x the whole H), else the plain kernel's column tiles.
backward, ``gfv_bwd_x``: d a_j's input part from the cell's input-side gate gradients
(GRU's dx, else dG): LN(W u)'s backward per gate block, or a copy; written into the
(B, G H + L) row of d a_j whose reset-gate part the host fills.
"""

from __future__ import annotations

import triton
import triton.language as tl

from rnnlab.nn.kernels.triton_feedback_kernels import gated_candidate
from rnnlab.nn.kernels.triton_variant_kernels import _ln_bwd, _ln_rows


@triton.jit
def gfv_fwd_in(
    s_ptr, a_ptr, bih_ptr, lnx_g, lnx_b, gh_ptr, xb_ptr, g_ptr, xx_ptr, rx_ptr,
    j, B, H, N, A_STRIDE,
    L: tl.constexpr, G: tl.constexpr, KC: tl.constexpr, LN: tl.constexpr,
    SAVE: tl.constexpr, BB: tl.constexpr, BH: tl.constexpr,
):  # fmt: skip
    pid_h = tl.program_id(1)
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    rj = pid_h * BH + tl.arange(0, BH)
    mb, mj = rb < B, rj < H
    m2 = mb[:, None] & mj[None, :]
    GH = G * H
    cand = gated_candidate(s_ptr, a_ptr, g_ptr, rb, rj, mb, m2, pid_h == 0, j, B, H, N,
                           A_STRIDE, L, G, SAVE, BB, BH)  # fmt: skip
    srow = s_ptr + (j * B + rb[:, None]) * N + rj[None, :]  # own-layer gates of S[j]
    arow = a_ptr + rb[:, None] * A_STRIDE + rj[None, :]
    orow = rb[:, None] * GH + rj[None, :]
    for k in tl.static_range(G):
        if k == KC:
            gh = cand
        else:
            own = k if k < KC else k - 1
            gh = tl.load(srow + own * H, mask=m2, other=0.0).to(tl.float32)
        tl.store(gh_ptr + orow + k * H, gh, mask=m2)
        x = tl.load(arow + k * H, mask=m2, other=0.0).to(tl.float32)
        if LN:
            xx, rx = _ln_rows(x, mj, H)
            x = xx * tl.load(lnx_g + k * H + rj, mask=mj, other=0.0)[None, :]
            x += tl.load(lnx_b + k * H + rj, mask=mj, other=0.0)[None, :]
            if SAVE:
                tl.store(xx_ptr + orow + k * H, xx, mask=m2)
                tl.store(rx_ptr + rb * G + k, rx, mask=mb)
        x += tl.load(bih_ptr + k * H + rj, mask=mj, other=0.0)[None, :]
        tl.store(xb_ptr + orow + k * H, x, mask=m2)


@triton.jit
def gfv_bwd_x(
    dxs_ptr, lnx_g, xx_ptr, rx_ptr, dd_ptr, B, H, DD_STRIDE,
    G: tl.constexpr, LN: tl.constexpr, BB: tl.constexpr, BH: tl.constexpr,
):  # fmt: skip
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    rj = tl.program_id(1) * BH + tl.arange(0, BH)
    mb, mj = rb < B, rj < H
    m2 = mb[:, None] & mj[None, :]
    row = rb[:, None] * (G * H) + rj[None, :]
    drow = dd_ptr + rb[:, None] * DD_STRIDE + rj[None, :]
    for k in tl.static_range(G):
        d = tl.load(dxs_ptr + row + k * H, mask=m2, other=0.0)
        if LN:
            xx = tl.load(xx_ptr + row + k * H, mask=m2, other=0.0)
            rx = tl.load(rx_ptr + rb * G + k, mask=mb, other=0.0)
            gain = tl.load(lnx_g + k * H + rj, mask=mj, other=0.0)
            d = _ln_bwd(d, gain, xx, rx, H)
        tl.store(drow + k * H, d, mask=m2)
