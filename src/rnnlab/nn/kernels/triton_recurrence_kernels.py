"""The Triton step kernels of the recurrence (host side: triton_recurrence.py).

One program owns a (BB batch rows) x (BH hidden columns) tile and all G gate blocks of
those columns, so the gate math is the epilogue of the recurrent product:

forward, step t:   acc_k = h_{t-1}[rows] W_hh[k H + cols]^T      (tl.dot, fp32, k < G)
                   gates/cell math on x_t + b_ih + acc_k + b_hh -> h_t, c_t, out_t
backward, step t:  dg (B, G H) = d pre_t from dh_t, dc_t and the saved pre-activations,
                   recomputed per K block as the product's prologue;
                   dh_{t-1}[cols] = carry + sum_k dg_k W_hh[k H + .., cols]   (tl.dot)
                   the tile's own columns of dg (and GRU's dgx) are stored for the
                   one large dW_hh = dG^T H_prev product after the loop.

IndRNN (``CELL == 3``) replaces the products by u * h (forward) and dg * u (backward).
Cell codes are ``CELL_CODES`` (rnn 0, lstm 1, gru 2, indrnn 3); activations are
``KERNEL_CODES``; the state buffers are float32 and ping-pong between steps.
Padded steps (t >= length) output zeros and keep the state, as in torch_ops.py.
``OPER`` is the product operand dtype (the input's): operands are rounded to it; the
host passes W_hh in it on GPU, and in float32 under the interpreter (whose tl.dot
mishandles bfloat16), so both paths compute bf16 x bf16 products in float32.
"""

from __future__ import annotations

import triton
import triton.language as tl

from rnnlab.nn.kernels.triton_activations import act, dact


@triton.jit
def _wt(w_ptr, gate, rk, rj, mk, mj, H):
    """W_hh[gate H + rj, rk]^T as a (BK, BH) tile."""
    ptr = w_ptr + (gate * H + rj[None, :]) * H + rk[:, None]
    return tl.load(ptr, mask=mk[:, None] & mj[None, :], other=0.0)


@triton.jit
def fwd_step(
    gx_ptr, bih_ptr, bhh_ptr, w_ptr, hin_ptr, cin_ptr, hout_ptr, cout_ptr,
    out_ptr, pre_ptr, call_ptr, hn_ptr, len_ptr, t, B, T, H,
    G: tl.constexpr, CELL: tl.constexpr, ACT: tl.constexpr, ACT_C: tl.constexpr, GATE: tl.constexpr,
    SAVE: tl.constexpr, BB: tl.constexpr, BH: tl.constexpr, PREC: tl.constexpr, OPER: tl.constexpr,
):  # fmt: skip
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    rj = tl.program_id(1) * BH + tl.arange(0, BH)
    mb, mj = rb < B, rj < H
    m2 = mb[:, None] & mj[None, :]
    own = rb[:, None] * H + rj[None, :]
    h_prev = tl.load(hin_ptr + own, mask=m2, other=0.0)
    acc0 = tl.zeros((BB, BH), tl.float32)
    acc1 = tl.zeros((BB, BH), tl.float32)
    acc2 = tl.zeros((BB, BH), tl.float32)
    acc3 = tl.zeros((BB, BH), tl.float32)
    if CELL == 3:
        acc0 = h_prev * tl.load(w_ptr + rj, mask=mj, other=0.0)[None, :]
    else:
        for k0 in range(0, H, BH):
            rk = k0 + tl.arange(0, BH)
            mk = rk < H
            hmask = mb[:, None] & mk[None, :]
            hk = tl.load(hin_ptr + rb[:, None] * H + rk[None, :], mask=hmask, other=0.0)
            w0 = _wt(w_ptr, 0, rk, rj, mk, mj, H)
            hk = hk.to(OPER).to(w0.dtype)
            acc0 = tl.dot(hk, w0, acc0, input_precision=PREC)
            if G > 1:
                acc1 = tl.dot(hk, _wt(w_ptr, 1, rk, rj, mk, mj, H), acc1, input_precision=PREC)
                acc2 = tl.dot(hk, _wt(w_ptr, 2, rk, rj, mk, mj, H), acc2, input_precision=PREC)
            if G > 3:
                acc3 = tl.dot(hk, _wt(w_ptr, 3, rk, rj, mk, mj, H), acc3, input_precision=PREC)
    ln = tl.load(len_ptr + rb, mask=mb, other=0)
    valid = (t < ln)[:, None]
    xrow = gx_ptr + (rb[:, None] * T + t) * (G * H) + rj[None, :]
    step = (rb[:, None] * T + t) * H + rj[None, :]
    prow = pre_ptr + (rb[:, None] * T + t) * (G * H) + rj[None, :]
    p0 = tl.load(xrow, mask=m2, other=0.0).to(tl.float32) + acc0
    p0 += tl.load(bih_ptr + rj, mask=mj, other=0.0)[None, :]
    p0 += tl.load(bhh_ptr + rj, mask=mj, other=0.0)[None, :]
    if G > 1:
        b1 = tl.load(bih_ptr + H + rj, mask=mj, other=0.0)
        b1 += tl.load(bhh_ptr + H + rj, mask=mj, other=0.0)
        p1 = tl.load(xrow + H, mask=m2, other=0.0).to(tl.float32) + acc1 + b1[None, :]
        x2 = tl.load(xrow + 2 * H, mask=m2, other=0.0).to(tl.float32)
        x2 += tl.load(bih_ptr + 2 * H + rj, mask=mj, other=0.0)[None, :]
        gh2 = acc2 + tl.load(bhh_ptr + 2 * H + rj, mask=mj, other=0.0)[None, :]
    if CELL == 1:
        b3 = tl.load(bih_ptr + 3 * H + rj, mask=mj, other=0.0)
        b3 += tl.load(bhh_ptr + 3 * H + rj, mask=mj, other=0.0)
        p2 = x2 + gh2
        p3 = tl.load(xrow + 3 * H, mask=m2, other=0.0).to(tl.float32) + acc3 + b3[None, :]
        c_prev = tl.load(cin_ptr + own, mask=m2, other=0.0)
        c_new = act(p1, GATE) * c_prev + act(p0, GATE) * act(p2, ACT)
        h_new = act(p3, GATE) * act(c_new, ACT_C)
        c_state = tl.where(valid, c_new, c_prev)
        tl.store(cout_ptr + own, c_state, mask=m2)
        if SAVE:
            tl.store(call_ptr + step, c_state, mask=m2)
            tl.store(prow + 2 * H, p2, mask=m2)
            tl.store(prow + 3 * H, p3, mask=m2)
    elif CELL == 2:
        r = act(p0, GATE)
        z = act(p1, GATE)
        p2 = x2 + r * gh2
        h_new = (1.0 - z) * act(p2, ACT) + z * h_prev
        if SAVE:
            tl.store(hn_ptr + step, gh2, mask=m2)
            tl.store(prow + 2 * H, p2, mask=m2)
    else:
        h_new = act(p0, ACT)
    if SAVE:
        tl.store(prow, p0, mask=m2)
        if G > 1:
            tl.store(prow + H, p1, mask=m2)
    tl.store(hout_ptr + own, tl.where(valid, h_new, h_prev), mask=m2)
    out = tl.where(valid, h_new, 0.0)
    tl.store(out_ptr + step, out.to(out_ptr.dtype.element_ty), mask=m2)


@triton.jit
def _dgates(
    go_ptr, dh_ptr, dc_ptr, pre_ptr, call_ptr, c0_ptr, out_ptr, h0_ptr, hn_ptr, len_ptr,
    rb, rc, mb, mc, t, B, T, H,
    G: tl.constexpr, CELL: tl.constexpr, ACT: tl.constexpr, ACT_C: tl.constexpr, GATE: tl.constexpr,
):  # fmt: skip
    """d pre at (rb, rc) for every gate: (dg0..dg3, dx_n, carry, dc_{t-1}), masked."""
    m2 = mb[:, None] & mc[None, :]
    own = rb[:, None] * H + rc[None, :]
    step = (rb[:, None] * T + t) * H + rc[None, :]
    prow = pre_ptr + (rb[:, None] * T + t) * (G * H) + rc[None, :]
    valid = (t < tl.load(len_ptr + rb, mask=mb, other=0))[:, None]
    go = tl.load(go_ptr + step, mask=m2, other=0.0).to(tl.float32)
    d = tl.load(dh_ptr + own, mask=m2, other=0.0) + tl.where(valid, go, 0.0)
    p0 = tl.load(prow, mask=m2, other=0.0)
    zero = tl.zeros_like(d)
    dg1, dg2, dg3, dxn, dc_new = zero, zero, zero, zero, zero
    carry = tl.where(valid, 0.0, d)
    if CELL == 1:
        p1 = tl.load(prow + H, mask=m2, other=0.0)
        p2 = tl.load(prow + 2 * H, mask=m2, other=0.0)
        p3 = tl.load(prow + 3 * H, mask=m2, other=0.0)
        c_t = tl.load(call_ptr + step, mask=m2, other=0.0)
        c_prev = tl.load(call_ptr + step - H, mask=m2 & (t > 0), other=0.0)
        c_prev += tl.load(c0_ptr + own, mask=m2 & (t == 0), other=0.0).to(tl.float32)
        dc = tl.load(dc_ptr + own, mask=m2, other=0.0)
        dct = dc + d * act(p3, GATE) * dact(c_t, ACT_C)
        dg0 = dct * act(p2, ACT) * dact(p0, GATE)
        dg1 = dct * c_prev * dact(p1, GATE)
        dg2 = dct * act(p0, GATE) * dact(p2, ACT)
        dg3 = d * act(c_t, ACT_C) * dact(p3, GATE)
        dc_new = tl.where(valid, dct * act(p1, GATE), dc)
    elif CELL == 2:
        p1 = tl.load(prow + H, mask=m2, other=0.0)
        p2 = tl.load(prow + 2 * H, mask=m2, other=0.0)
        hn = tl.load(hn_ptr + step, mask=m2, other=0.0)
        h_prev = tl.load(out_ptr + step - H, mask=m2 & (t > 0), other=0.0).to(tl.float32)
        h_prev += tl.load(h0_ptr + own, mask=m2 & (t == 0), other=0.0).to(tl.float32)
        r = act(p0, GATE)
        z = act(p1, GATE)
        dxn = d * (1.0 - z) * dact(p2, ACT)
        dg0 = dxn * hn * dact(p0, GATE)
        dg1 = d * (h_prev - act(p2, ACT)) * dact(p1, GATE)
        dg2 = dxn * r
        carry = tl.where(valid, d * z, d)
    else:
        dg0 = d * dact(p0, ACT)
    dg0 = tl.where(valid, dg0, 0.0)
    dg1 = tl.where(valid, dg1, 0.0)
    dg2 = tl.where(valid, dg2, 0.0)
    dg3 = tl.where(valid, dg3, 0.0)
    dxn = tl.where(valid, dxn, 0.0)
    return dg0, dg1, dg2, dg3, dxn, carry, dc_new


@triton.jit
def _w(w_ptr, gate, rk, rj, mk, mj, H):
    """W_hh[gate H + rk, rj] as a (BK, BH) tile."""
    ptr = w_ptr + (gate * H + rk[:, None]) * H + rj[None, :]
    return tl.load(ptr, mask=mk[:, None] & mj[None, :], other=0.0)


@triton.jit
def bwd_step(
    go_ptr, dhin_ptr, dcin_ptr, dhout_ptr, dcout_ptr, w_ptr, pre_ptr, call_ptr, c0_ptr,
    out_ptr, h0_ptr, hn_ptr, len_ptr, dgh_ptr, dgx_ptr, t, B, T, H,
    G: tl.constexpr, CELL: tl.constexpr, ACT: tl.constexpr, ACT_C: tl.constexpr, GATE: tl.constexpr,
    BB: tl.constexpr, BH: tl.constexpr, PREC: tl.constexpr, OPER: tl.constexpr,
):  # fmt: skip
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    rj = tl.program_id(1) * BH + tl.arange(0, BH)
    mb, mj = rb < B, rj < H
    m2 = mb[:, None] & mj[None, :]
    dg0, dg1, dg2, dg3, dxn, carry, dc_new = _dgates(
        go_ptr, dhin_ptr, dcin_ptr, pre_ptr, call_ptr, c0_ptr, out_ptr, h0_ptr, hn_ptr,
        len_ptr, rb, rj, mb, mj, t, B, T, H, G, CELL, ACT, ACT_C, GATE,
    )  # fmt: skip
    own = rb[:, None] * H + rj[None, :]
    grow = (rb[:, None] * T + t) * (G * H) + rj[None, :]
    tl.store(dgh_ptr + grow, dg0, mask=m2)
    if G > 1:
        tl.store(dgh_ptr + grow + H, dg1, mask=m2)
        tl.store(dgh_ptr + grow + 2 * H, dg2, mask=m2)
    if G > 3:
        tl.store(dgh_ptr + grow + 3 * H, dg3, mask=m2)
    if CELL == 2:
        tl.store(dgx_ptr + grow, dg0, mask=m2)
        tl.store(dgx_ptr + grow + H, dg1, mask=m2)
        tl.store(dgx_ptr + grow + 2 * H, dxn, mask=m2)
    if CELL == 1:
        tl.store(dcout_ptr + own, dc_new, mask=m2)
    acc = carry
    if CELL == 3:
        acc += dg0 * tl.load(w_ptr + rj, mask=mj, other=0.0)[None, :]
    else:
        for k0 in range(0, H, BH):
            rk = k0 + tl.arange(0, BH)
            mk = rk < H
            e0, e1, e2, e3, _, _, _ = _dgates(
                go_ptr, dhin_ptr, dcin_ptr, pre_ptr, call_ptr, c0_ptr, out_ptr, h0_ptr, hn_ptr,
                len_ptr, rb, rk, mb, mk, t, B, T, H, G, CELL, ACT, ACT_C, GATE,
            )  # fmt: skip
            w0 = _w(w_ptr, 0, rk, rj, mk, mj, H)
            acc = tl.dot(e0.to(OPER).to(w0.dtype), w0, acc, input_precision=PREC)
            if G > 1:
                w1 = _w(w_ptr, 1, rk, rj, mk, mj, H)
                acc = tl.dot(e1.to(OPER).to(w0.dtype), w1, acc, input_precision=PREC)
                w2 = _w(w_ptr, 2, rk, rj, mk, mj, H)
                acc = tl.dot(e2.to(OPER).to(w0.dtype), w2, acc, input_precision=PREC)
            if G > 3:
                w3 = _w(w_ptr, 3, rk, rj, mk, mj, H)
                acc = tl.dot(e3.to(OPER).to(w0.dtype), w3, acc, input_precision=PREC)
    tl.store(dhout_ptr + own, acc, mask=m2)
