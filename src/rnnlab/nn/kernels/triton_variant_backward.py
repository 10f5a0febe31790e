"""The Triton backward step kernels of the cell variants (design: triton_variant_kernels.py).

``bwd_gates`` (full-row programs) turns the carried dh, dc and the output gradient of
step t into the gate gradients dG_t (the gradient of every pre-activation), GRU's dx_t,
with layer norm dR_t = d(U h) through LN's backward, and the carries: dc_{t-1} and the
part of dh_{t-1} that does not pass through the product (zoneout's k dh, GRU's z dh,
padded steps' dh). ``bwd_dh`` adds ``m * (dR_t W_hh)`` to that carry, tiled like the
plain backward's product (IndRNN: ``m * u * dR_t``).
"""

from __future__ import annotations

import triton
import triton.language as tl

from rnnlab.nn.kernels.triton_activations import act, dact
from rnnlab.nn.kernels.triton_variant_kernels import (
    CIFG,
    NOAF,
    NOG,
    _gate,
    _keep,
    _ln_bwd,
    _lstm_gates,
)


@triton.jit
def _dnorm(dg, gate, g_ptr, xh_ptr, rh_ptr, dr_ptr, srow, rj, mb, mj, valid, H,
           G: tl.constexpr):  # fmt: skip
    """dR of gate block ``gate``: LN(U h)'s backward of dg, stored (zero when padded)."""
    m2 = mb[:, None] & mj[None, :]
    off = srow[:, None] * (G * H) + gate * H + rj[None, :]
    xh = tl.load(xh_ptr + off, mask=m2, other=0.0)
    rs = tl.load(rh_ptr + srow * G + gate, mask=mb, other=0.0)
    gain = tl.load(g_ptr + gate * H + rj, mask=mj, other=0.0)
    tl.store(dr_ptr + off, tl.where(valid, _ln_bwd(dg, gain, xh, rs, H), 0.0), mask=m2)


@triton.jit
def _lstm_dgates(d, p0, p1, p2, p3, ct, cp, dcin, kc, peep_ptr, lnc_g, lnc_b, xc_ptr, rc_ptr,
                 dcn_ptr, step, srow, rj, mb, mj, valid, H,
                 ACT: tl.constexpr, ACT_C: tl.constexpr, GATE: tl.constexpr,
                 VAR: tl.constexpr, PEEP: tl.constexpr, LN: tl.constexpr,
                 ZONE: tl.constexpr):  # fmt: skip
    """(dG_i, dG_f, dG_g, dG_o, dc_{t-1}) of a valid LSTM step from d = dL/dr."""
    m2 = mb[:, None] & mj[None, :]
    cn = ct  # what phi_c read: c~, or LN(c~) = x^ g + b
    if LN:
        xc = tl.load(xc_ptr + step, mask=m2, other=0.0)
        cn = xc * tl.load(lnc_g + rj, mask=mj, other=0.0)[None, :]
        cn += tl.load(lnc_b + rj, mask=mj, other=0.0)[None, :]
    i, di, f, df, g, dg = _lstm_gates(p0, p1, p2, ACT, GATE, VAR)
    o, do = _gate(p3, GATE, VAR == NOG)
    if VAR == NOAF:
        tc, dtc = cn, tl.zeros_like(cn) + 1.0
    else:
        tc, dtc = act(cn, ACT_C), dact(cn, ACT_C)
    dcl = d * o * dtc
    if LN:
        tl.store(dcn_ptr + step, tl.where(valid, dcl, 0.0), mask=m2)
        rc = tl.load(rc_ptr + srow, mask=mb, other=0.0)
        dcl = _ln_bwd(dcl, tl.load(lnc_g + rj, mask=mj, other=0.0), xc, rc, H)
    if ZONE > 0:
        dct = dcl + (1.0 - kc) * dcin
        dcc = kc * dcin
    else:
        dct = dcl + dcin
        dcc = tl.zeros_like(dcin)
    dao = d * tc * do
    if PEEP:
        dct += dao * tl.load(peep_ptr + 2 * H + rj, mask=mj, other=0.0)[None, :]
    di_ = dct * g
    dai = di_ * di
    if VAR == CIFG:
        daf = (dct * cp - di_) * df
    else:
        daf = dct * cp * df
    dcp = dct * f
    if PEEP:
        dcp += dai * tl.load(peep_ptr + rj, mask=mj, other=0.0)[None, :]
        dcp += daf * tl.load(peep_ptr + H + rj, mask=mj, other=0.0)[None, :]
    return dai, daf, dct * i * dg, dao, dcc + dcp


@triton.jit
def bwd_gates(
    go_ptr, dhin_ptr, dcin_ptr, carry_ptr, dcout_ptr, whr_ptr, peep_ptr, kh_ptr, kc_ptr, z,
    lnh_g, lnc_g, lnc_b, pre_ptr, ct_ptr, cs_ptr, c0_ptr, out_ptr, h0_ptr, hn_ptr, xh_ptr, rh_ptr,
    xc_ptr, rc_ptr, dg_ptr, dx_ptr, dr_ptr, dht_ptr, dcn_ptr, len_ptr, t, B, T, H, HH,
    G: tl.constexpr, CELL: tl.constexpr, ACT: tl.constexpr, ACT_C: tl.constexpr,
    GATE: tl.constexpr, VAR: tl.constexpr, PEEP: tl.constexpr, LN: tl.constexpr,
    ZONE: tl.constexpr, PROJ: tl.constexpr, BB: tl.constexpr, BH: tl.constexpr,
    BO: tl.constexpr, BK: tl.constexpr, PREC: tl.constexpr, OPER: tl.constexpr,
):  # fmt: skip
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    col = tl.program_id(1)  # one column tile (0 for full rows: layer norm, projection)
    rj, ro = col * BH + tl.arange(0, BH), col * BO + tl.arange(0, BO)
    mb, mj, mo = rb < B, rj < H, ro < HH
    m2, mo2 = mb[:, None] & mj[None, :], mb[:, None] & mo[None, :]
    srow = rb * T + t
    valid = (t < tl.load(len_ptr + rb, mask=mb, other=0))[:, None]
    own_o = rb[:, None] * HH + ro[None, :]
    go = tl.load(go_ptr + srow[:, None] * HH + ro[None, :], mask=mo2, other=0.0)
    d_full = tl.load(dhin_ptr + own_o, mask=mo2, other=0.0) + tl.where(
        valid, go.to(tl.float32), 0.0
    )
    dht = d_full
    carry = tl.zeros_like(d_full)
    if ZONE > 0:
        kh = _keep(kh_ptr, t, rb, ro, mo2, d_full, z, B, HH, ZONE)
        dht = (1.0 - kh) * d_full
        carry = kh * d_full
    dht = tl.where(valid, dht, 0.0)
    carry = tl.where(valid, carry, d_full)
    if PROJ:  # dr = dh~ W_hr, dh~ read back from global memory in BK chunks
        tl.store(dht_ptr + srow[:, None] * HH + ro[None, :], dht, mask=mo2)
        tl.debug_barrier()
        d = tl.zeros((BB, BH), tl.float32)
        for k0 in range(0, HH, BK):
            rk = k0 + tl.arange(0, BK)
            mk = rk < HH
            emask = mb[:, None] & mk[None, :]
            e = tl.load(dht_ptr + srow[:, None] * HH + rk[None, :], mask=emask, other=0.0)
            wmask = mk[:, None] & mj[None, :]
            wr = tl.load(whr_ptr + rk[:, None] * H + rj[None, :], mask=wmask, other=0.0)
            d = tl.dot(e.to(OPER).to(wr.dtype), wr, d, input_precision=PREC)
    else:
        d = dht
    prow = pre_ptr + srow[:, None] * (G * H) + rj[None, :]
    grow = srow[:, None] * (G * H) + rj[None, :]
    step = srow[:, None] * H + rj[None, :]
    own = rb[:, None] * H + rj[None, :]
    p0 = tl.load(prow, mask=m2, other=0.0)
    if CELL == 1:
        p1 = tl.load(prow + H, mask=m2, other=0.0)
        p2 = tl.load(prow + 2 * H, mask=m2, other=0.0)
        p3 = tl.load(prow + 3 * H, mask=m2, other=0.0)
        ct = tl.load(ct_ptr + step, mask=m2, other=0.0)
        cp = tl.load(cs_ptr + step - H, mask=m2 & (t > 0), other=0.0)
        cp += tl.load(c0_ptr + own, mask=m2 & (t == 0), other=0.0)
        dcin = tl.load(dcin_ptr + own, mask=m2, other=0.0)
        kc = dcin
        if ZONE > 0:
            kc = _keep(kc_ptr, t, rb, rj, m2, dcin, z, B, H, ZONE)
        dg0, dg1, dg2, dg3, dc_new = _lstm_dgates(
            d, p0, p1, p2, p3, ct, cp, dcin, kc, peep_ptr, lnc_g, lnc_b, xc_ptr, rc_ptr, dcn_ptr,
            step, srow, rj, mb, mj, valid, H, ACT, ACT_C, GATE, VAR, PEEP, LN, ZONE,
        )  # fmt: skip
        tl.store(dcout_ptr + own, tl.where(valid, dc_new, dcin), mask=m2)
    elif CELL == 2:
        p1 = tl.load(prow + H, mask=m2, other=0.0)
        p2 = tl.load(prow + 2 * H, mask=m2, other=0.0)
        hn = tl.load(hn_ptr + step, mask=m2, other=0.0)
        h_prev = tl.load(
            out_ptr + (srow[:, None] - 1) * H + rj[None, :], mask=m2 & (t > 0), other=0.0
        )
        h_prev = h_prev.to(tl.float32) + tl.load(h0_ptr + own, mask=m2 & (t == 0), other=0.0)
        zg = act(p1, GATE)
        dn = d * (1.0 - zg) * dact(p2, ACT)
        dg0 = dn * hn * dact(p0, GATE)
        dg1 = d * (h_prev - act(p2, ACT)) * dact(p1, GATE)
        dg2 = dn * act(p0, GATE)
        carry += tl.where(valid, d * zg, 0.0)
        tl.store(dx_ptr + grow, tl.where(valid, dg0, 0.0), mask=m2)
        tl.store(dx_ptr + grow + H, tl.where(valid, dg1, 0.0), mask=m2)
        tl.store(dx_ptr + grow + 2 * H, tl.where(valid, dn, 0.0), mask=m2)
    else:
        dg0 = d * dact(p0, ACT)
    tl.store(carry_ptr + own_o, carry, mask=mo2)
    tl.store(dg_ptr + grow, tl.where(valid, dg0, 0.0), mask=m2)
    if G > 1:
        tl.store(dg_ptr + grow + H, tl.where(valid, dg1, 0.0), mask=m2)
        tl.store(dg_ptr + grow + 2 * H, tl.where(valid, dg2, 0.0), mask=m2)
    if G > 3:
        tl.store(dg_ptr + grow + 3 * H, tl.where(valid, dg3, 0.0), mask=m2)
    if LN:
        _dnorm(dg0, 0, lnh_g, xh_ptr, rh_ptr, dr_ptr, srow, rj, mb, mj, valid, H, G)
        if G > 1:
            _dnorm(dg1, 1, lnh_g, xh_ptr, rh_ptr, dr_ptr, srow, rj, mb, mj, valid, H, G)
            _dnorm(dg2, 2, lnh_g, xh_ptr, rh_ptr, dr_ptr, srow, rj, mb, mj, valid, H, G)
        if G > 3:
            _dnorm(dg3, 3, lnh_g, xh_ptr, rh_ptr, dr_ptr, srow, rj, mb, mj, valid, H, G)


@triton.jit
def bwd_dh(
    src_ptr, w_ptr, drop_ptr, carry_ptr, dhout_ptr, t, B, T, H, HH,
    G: tl.constexpr, CELL: tl.constexpr, DROP: tl.constexpr, BB: tl.constexpr,
    BJ: tl.constexpr, BK: tl.constexpr, PREC: tl.constexpr, OPER: tl.constexpr,
):  # fmt: skip
    """dh_{t-1}[:, cols] = carry + m * (src_t W_hh) (IndRNN: carry + m * u * src_t)."""
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    rj = tl.program_id(1) * BJ + tl.arange(0, BJ)
    mb, mj = rb < B, rj < HH
    m2 = mb[:, None] & mj[None, :]
    srow = rb * T + t
    if CELL == 3:
        acc = tl.load(src_ptr + srow[:, None] * H + rj[None, :], mask=m2, other=0.0)
        acc *= tl.load(w_ptr + rj, mask=mj, other=0.0)[None, :]
    else:
        acc = tl.zeros((BB, BJ), tl.float32)
        for k0 in range(0, H, BK):
            rk = k0 + tl.arange(0, BK)
            mk = rk < H
            emask = mb[:, None] & mk[None, :]
            wmask = mk[:, None] & mj[None, :]
            erow = src_ptr + srow[:, None] * (G * H) + rk[None, :]
            wrow = w_ptr + rk[:, None] * HH + rj[None, :]
            for g in tl.static_range(G):
                e = tl.load(erow + g * H, mask=emask, other=0.0)
                w = tl.load(wrow + g * H * HH, mask=wmask, other=0.0)
                acc = tl.dot(e.to(OPER).to(w.dtype), w, acc, input_precision=PREC)
    own = rb[:, None] * HH + rj[None, :]
    if DROP:
        acc *= tl.load(drop_ptr + own, mask=m2, other=0.0)
    acc += tl.load(carry_ptr + own, mask=m2, other=0.0)
    tl.store(dhout_ptr + own, acc, mask=m2)
