"""Triton kernels of the gated-feedback stack, one layer j at one step t (host side:
triton_feedback.py; layouts: gated_feedback.cpp's header, ``layout`` in
gated_feedback_torch_ops.py).

forward, the epilogue of the step's products S = h_{t-1} w_rec^T (L, B, N) and
a_j = [W_ih_j; gate_u_j] u_j + b_in (B, G H + L), both made by the host:
    g^{i->j} = sigmoid(a_j[GH + i] + sum_src S[src, secG + j L + i])        (B, L)
    cand_j   = sum_i g^{i->j} S[i, secU + j H + cols]                       (B, H)
    gate/cell math on a_j + [own-layer gates of S[j] with cand_j as the candidate] +
    b_rec_j -> h^j_t, c^j_t (padded steps keep the state); saves pre, GRU's U_n h + b_n
    (``cand``) and g.
backward, the cell part: ``_dgates`` of triton_recurrence_kernels.py on this step's
slices (T = 1; the host passes ``remaining = lengths - t`` so ``0 < remaining`` is the
valid mask): writes [d gx | .] of the layer, d cand, adds the carried dh into the
next step's dh and updates dc in place. The products around it run on the host.
"""

from __future__ import annotations

import triton
import triton.language as tl

from rnnlab.nn.kernels.triton_activations import act
from rnnlab.nn.kernels.triton_recurrence_kernels import _dgates


@triton.jit
def gated_candidate(s_ptr, a_ptr, g_ptr, rb, rj, mb, m2, store_g, j, B, H, N, A_STRIDE,
                    L: tl.constexpr, G: tl.constexpr, SAVE: tl.constexpr, BB: tl.constexpr,
                    BH: tl.constexpr):  # fmt: skip
    """Layer j's reset gates g^{i->j} (B, L), stored when SAVE by the programs with
    ``store_g``, and its gated candidate sum_i g^{i->j} S[i, secU + j H + cols] (BB, BH)."""
    GH = G * H
    sec_u = (G - 1) * H
    sec_g = sec_u + L * H
    cand = tl.zeros((BB, BH), tl.float32)
    for i in tl.static_range(L):
        z = tl.load(a_ptr + rb * A_STRIDE + GH + i, mask=mb, other=0.0).to(tl.float32)
        for src in tl.static_range(L):
            z += tl.load(s_ptr + (src * B + rb) * N + sec_g + j * L + i, mask=mb, other=0.0)
        gi = 1.0 / (1.0 + tl.exp(-z))
        if SAVE:
            tl.store(g_ptr + rb * L + i, gi, mask=mb & store_g)
        fb = tl.load(s_ptr + (i * B + rb[:, None]) * N + sec_u + j * H + rj[None, :], mask=m2)
        cand += gi[:, None] * fb.to(tl.float32)
    return cand


@triton.jit
def gf_fwd_layer(
    s_ptr, a_ptr, brec_ptr, hprev_ptr, cprev_ptr, hnew_ptr, cnew_ptr, pre_ptr, cand_ptr,
    g_ptr, len_ptr, t, j, B, H, N, A_STRIDE,
    L: tl.constexpr, G: tl.constexpr, CELL: tl.constexpr, ACT: tl.constexpr,
    ACT_C: tl.constexpr, GATE: tl.constexpr, SAVE: tl.constexpr, BB: tl.constexpr,
    BH: tl.constexpr,
):  # fmt: skip
    pid_h = tl.program_id(1)
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    rj = pid_h * BH + tl.arange(0, BH)
    mb, mj = rb < B, rj < H
    m2 = mb[:, None] & mj[None, :]
    GH = G * H
    cand = gated_candidate(s_ptr, a_ptr, g_ptr, rb, rj, mb, m2, pid_h == 0, j, B, H, N,
                           A_STRIDE, L, G, SAVE, BB, BH)  # fmt: skip
    arow = a_ptr + rb[:, None] * A_STRIDE + rj[None, :]
    orow = s_ptr + (j * B + rb[:, None]) * N + rj[None, :]  # own-layer gates of S[j]
    brow = brec_ptr + j * GH + rj
    own = rb[:, None] * H + rj[None, :]
    prow = pre_ptr + rb[:, None] * GH + rj[None, :]
    h_old = tl.load(hprev_ptr + own, mask=m2, other=0.0)
    valid = (t < tl.load(len_ptr + rb, mask=mb, other=0))[:, None]
    x0 = tl.load(arow, mask=m2, other=0.0).to(tl.float32)
    b0 = tl.load(brow, mask=mj, other=0.0)[None, :]
    if CELL == 0:
        p0 = x0 + cand + b0
        h_new = act(p0, ACT)
    else:
        x1 = tl.load(arow + H, mask=m2, other=0.0).to(tl.float32)
        x2 = tl.load(arow + 2 * H, mask=m2, other=0.0).to(tl.float32)
        b1 = tl.load(brow + H, mask=mj, other=0.0)[None, :]
        b2 = tl.load(brow + 2 * H, mask=mj, other=0.0)[None, :]
        p0 = x0 + tl.load(orow, mask=m2, other=0.0).to(tl.float32) + b0
        p1 = x1 + tl.load(orow + H, mask=m2, other=0.0).to(tl.float32) + b1
        if CELL == 1:
            x3 = tl.load(arow + 3 * H, mask=m2, other=0.0).to(tl.float32)
            b3 = tl.load(brow + 3 * H, mask=mj, other=0.0)[None, :]
            p2 = x2 + cand + b2
            p3 = x3 + tl.load(orow + 2 * H, mask=m2, other=0.0).to(tl.float32) + b3
            c_old = tl.load(cprev_ptr + own, mask=m2, other=0.0)
            c_new = act(p1, GATE) * c_old + act(p0, GATE) * act(p2, ACT)
            h_new = act(p3, GATE) * act(c_new, ACT_C)
            tl.store(cnew_ptr + own, tl.where(valid, c_new, c_old), mask=m2)
            if SAVE:
                tl.store(prow + 3 * H, p3, mask=m2)
        else:
            hn = cand + b2
            r = act(p0, GATE)
            z = act(p1, GATE)
            p2 = x2 + r * hn
            h_new = (1.0 - z) * act(p2, ACT) + z * h_old
            if SAVE:
                tl.store(cand_ptr + own, hn, mask=m2)
        if SAVE:
            tl.store(prow + H, p1, mask=m2)
            tl.store(prow + 2 * H, p2, mask=m2)
    if SAVE:
        tl.store(prow, p0, mask=m2)
    tl.store(hnew_ptr + own, tl.where(valid, h_new, h_old), mask=m2)


@triton.jit
def gf_bwd_cell(
    go_ptr, dh_ptr, dc_ptr, pre_ptr, ct_ptr, cprev_ptr, hprev_ptr, hn_ptr, rem_ptr,
    dd_ptr, dcand_ptr, dhp_ptr, B, H, DD_STRIDE,
    G: tl.constexpr, CELL: tl.constexpr, ACT: tl.constexpr, ACT_C: tl.constexpr,
    GATE: tl.constexpr, BB: tl.constexpr, BH: tl.constexpr,
):  # fmt: skip
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    rj = tl.program_id(1) * BH + tl.arange(0, BH)
    mb, mj = rb < B, rj < H
    m2 = mb[:, None] & mj[None, :]
    dg0, dg1, dg2, dg3, dxn, carry, dc_new = _dgates(
        go_ptr, dh_ptr, dc_ptr, pre_ptr, ct_ptr, cprev_ptr, hprev_ptr, hprev_ptr, hn_ptr,
        rem_ptr, rb, rj, mb, mj, 0, B, 1, H, G, CELL, ACT, ACT_C, GATE,
    )  # fmt: skip
    own = rb[:, None] * H + rj[None, :]
    drow = dd_ptr + rb[:, None] * DD_STRIDE + rj[None, :]
    tl.store(drow, dg0, mask=m2)
    if CELL == 0:
        dcand = dg0
    else:
        tl.store(drow + H, dg1, mask=m2)
        dcand = dg2
        if CELL == 1:
            tl.store(drow + 2 * H, dg2, mask=m2)
            tl.store(drow + 3 * H, dg3, mask=m2)
            tl.store(dc_ptr + own, dc_new, mask=m2)
        else:
            tl.store(drow + 2 * H, dxn, mask=m2)
    tl.store(dcand_ptr + own, dcand, mask=m2)
    dhp = tl.load(dhp_ptr + own, mask=m2, other=0.0)
    tl.store(dhp_ptr + own, dhp + carry, mask=m2)
