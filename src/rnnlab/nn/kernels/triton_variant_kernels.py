"""The Triton step kernels of the cell variants (host side: triton_variant.py).

Design. Layer norm takes per-row statistics over each gate block and a projection
``h = W_hr r`` reads all of ``r``: with either, a gate-kernel program owns BB = 16 batch
rows x the FULL hidden width (BH = next power of two >= H; BO >= P) and all G gate
blocks. Without them (Greff variants, peepholes, dropout, zoneout) the same kernels run
the plain kernel's (BB x BH) column tiles (program axis 1), every option being
columnwise. One step is then

forward, ``fwd_step`` (one launch):
    acc_k = (m * h_{t-1}) W_hh[k H + .]^T              (tl.dot over Hh in BK chunks)
    LN(acc_k) per gate block (row statistics in-program), + b_hh, + xb_t (= LN(W u_t) +
    b_ih, made outside the loop), peepholes, the Greff variant's gates, c~, LN(c~),
    r = o * phi_c(.), the projection r W_hr^T (tl.dot), zoneout, lengths -> h_t, c_t, out_t
    (with ``GH_IN`` the recurrent term acc is read from ``w_ptr`` (B, G*H) instead: the
    gated-feedback variant kernel, triton_feedback_variants.py, assembles it itself)
backward, two launches:
    ``bwd_gates``: dh~ (output gradient + carry, zoneout split), dr = dh~ W_hr, the gate
    derivatives, LN(c~)'s and LN(U h)'s backward per row -> dG_t (and GRU's dx, LN's
    dR = d(U h)), the carries of dh and dc;
    ``bwd_dh``: dh_{t-1} = carry + m * (dR_t W_hh), tiled (BB x BJ columns) like the plain
    kernel's product.
dW_hh, dW_hr, the biases, peepholes and LN gains are reductions after the loop
(triton_variant.py). Buffers: state and saved tensors float32, (B, T, ...) row-major;
masks: drop (B, Hh), kh (T, B, Hh), kc (T, B, H). Padded steps output zeros and keep
the state, their saved gradients are zero. ``OPER`` rounds product operands as in
triton_recurrence_kernels.py. A full-row program keeps G x 16 x H float32 values in
registers (16 warps up to H = 512, 32 past it; compiled for sm_90 without a GPU, ptxas
reports 35-69 KB of shared memory up to H = 1024 and register spills that grow with H:
none measured on a GPU yet): the price of in-program layer norm is fewer, heavier
programs (cdiv(B, 16) per step); a separate LN-statistics kernel is the next step if
that measures slow.
"""

from __future__ import annotations

import triton
import triton.language as tl

from rnnlab.nn.kernels.triton_activations import act, dact

LN_EPS: tl.constexpr = tl.constexpr(1e-5)  # variant_cells.LN_EPS
CIFG: tl.constexpr = tl.constexpr(1)  # rnnlab.nn.variants.LSTM_VARIANTS order
NIG: tl.constexpr = tl.constexpr(2)
NFG: tl.constexpr = tl.constexpr(3)
NOG: tl.constexpr = tl.constexpr(4)
NIAF: tl.constexpr = tl.constexpr(5)
NOAF: tl.constexpr = tl.constexpr(6)


@triton.jit
def _ln_rows(a, mj, H):
    """x^ and 1/std of each row of ``a`` over its H valid columns (biased variance)."""
    a = tl.where(mj[None, :], a, 0.0)
    mean = tl.sum(a, 1) / H
    d = tl.where(mj[None, :], a - mean[:, None], 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(d * d, 1) / H + LN_EPS)
    return d * rstd[:, None], rstd


@triton.jit
def _ln_bwd(dy, g, xh, rstd, H):
    """dx = rstd (dy g - mean(dy g) - x^ mean(dy g x^)); g is 0 past H."""
    dyg = dy * g[None, :]
    m1 = tl.sum(dyg, 1) / H
    m2 = tl.sum(dyg * xh, 1) / H
    return rstd[:, None] * (dyg - m1[:, None] - xh * m2[:, None])


@triton.jit
def _norm(acc, gate, g_ptr, b_ptr, xh_ptr, rh_ptr, srow, rj, mb, mj, valid, H,
          G: tl.constexpr, SAVE: tl.constexpr):  # fmt: skip
    """LN(acc) g + b of gate block ``gate``; saves x^ (B, T, G*H) and 1/std (B, T, G)."""
    xh, rs = _ln_rows(acc, mj, H)
    if SAVE:
        m2 = mb[:, None] & mj[None, :]
        ptr = xh_ptr + srow[:, None] * (G * H) + gate * H + rj[None, :]
        tl.store(ptr, tl.where(valid, xh, 0.0), mask=m2)
        tl.store(rh_ptr + srow * G + gate, rs, mask=mb)
    gain = tl.load(g_ptr + gate * H + rj, mask=mj, other=0.0)
    return xh * gain[None, :] + tl.load(b_ptr + gate * H + rj, mask=mj, other=0.0)[None, :]


@triton.jit
def _wt(w_ptr, gate, rk, rj, mk, mj, H, HH):
    """W_hh[gate H + rj, rk]^T as a (BK, BH) tile; W_hh is (G H, HH)."""
    ptr = w_ptr + (gate * H + rj[None, :]) * HH + rk[:, None]
    return tl.load(ptr, mask=mk[:, None] & mj[None, :], other=0.0)


@triton.jit
def _gate_dot(hin_ptr, drop_ptr, w_ptr, gate, rb, mb, rj, mj, H, HH, BB: tl.constexpr,
              BH: tl.constexpr, BK: tl.constexpr, DROP: tl.constexpr, PREC: tl.constexpr,
              OPER: tl.constexpr):  # fmt: skip
    """(m * h_{t-1})[rb] W_hh[gate H + rj]^T as a (BB, BH) float32 tile."""
    acc = tl.zeros((BB, BH), tl.float32)
    for k0 in range(0, HH, BK):
        rk = k0 + tl.arange(0, BK)
        mk = rk < HH
        hmask = mb[:, None] & mk[None, :]
        hk = tl.load(hin_ptr + rb[:, None] * HH + rk[None, :], mask=hmask, other=0.0)
        if DROP:
            hk *= tl.load(drop_ptr + rb[:, None] * HH + rk[None, :], mask=hmask, other=0.0)
        w = _wt(w_ptr, gate, rk, rj, mk, mj, H, HH)
        acc = tl.dot(hk.to(OPER).to(w.dtype), w, acc, input_precision=PREC)
    return acc


@triton.jit
def _gate(p, GATE: tl.constexpr, ONE: tl.constexpr):
    """(value, derivative) of a gate: sigma(p), or the constant 1 of a removed gate."""
    if ONE:
        d = tl.zeros_like(p)
        v = d + 1.0
    else:
        v, d = act(p, GATE), dact(p, GATE)
    return v, d


@triton.jit
def _lstm_gates(p0, p1, p2, ACT: tl.constexpr, GATE: tl.constexpr, VAR: tl.constexpr):
    """(i, di, f, df, g, dg) of the Greff variant ``VAR`` (di = 0 for cifg: i = 1 - f)."""
    f, df = _gate(p1, GATE, VAR == NFG)
    if VAR == CIFG:
        i, di = 1.0 - f, tl.zeros_like(f)
    else:
        i, di = _gate(p0, GATE, VAR == NIG)
    if VAR == NIAF:
        g, dg = p2, tl.zeros_like(p2) + 1.0
    else:
        g, dg = act(p2, ACT), dact(p2, ACT)
    return i, di, f, df, g, dg


@triton.jit
def _keep(k_ptr, t, rb, rc, m2, ref, z, B, W, ZONE: tl.constexpr):
    """The zoneout keep factor at (rb, rc) for step t: mask (ZONE 1) or z (eval, ZONE 2)."""
    if ZONE == 1:
        k = tl.load(k_ptr + (t * B + rb[:, None]) * W + rc[None, :], mask=m2, other=0.0)
    else:
        k = tl.zeros_like(ref) + z
    return k


@triton.jit
def _lstm_cell(p0, p1, p2, p3, c_prev, peep_ptr, lnc_g, lnc_b, xc_ptr, rc_ptr, step, srow,
               mb, rj, mj, valid, H, ACT: tl.constexpr, ACT_C: tl.constexpr,
               GATE: tl.constexpr, VAR: tl.constexpr, PEEP: tl.constexpr, LN: tl.constexpr,
               SAVE: tl.constexpr):  # fmt: skip
    """Peepholes, the Greff variant's gates, c~, LN(c~) (x^, 1/std saved) and
    r = o * phi_c(.): -> (a_i, a_f, a_o with their peepholes, c~, r)."""
    m2 = mb[:, None] & mj[None, :]
    if PEEP:
        p0 += tl.load(peep_ptr + rj, mask=mj, other=0.0)[None, :] * c_prev
        p1 += tl.load(peep_ptr + H + rj, mask=mj, other=0.0)[None, :] * c_prev
    i, _, f, _, g, _ = _lstm_gates(p0, p1, p2, ACT, GATE, VAR)
    ct = f * c_prev + i * g
    if PEEP:
        p3 += tl.load(peep_ptr + 2 * H + rj, mask=mj, other=0.0)[None, :] * ct
    o, _ = _gate(p3, GATE, VAR == NOG)
    cn = ct
    if LN:
        xc, rc = _ln_rows(ct, mj, H)
        cn = xc * tl.load(lnc_g + rj, mask=mj, other=0.0)[None, :]
        cn += tl.load(lnc_b + rj, mask=mj, other=0.0)[None, :]
        if SAVE:
            tl.store(xc_ptr + step, tl.where(valid, xc, 0.0), mask=m2)
            tl.store(rc_ptr + srow, rc, mask=mb)
    if VAR == NOAF:
        r = o * cn
    else:
        r = o * act(cn, ACT_C)
    return p0, p1, p3, ct, tl.where(mj[None, :], r, 0.0)


@triton.jit
def _project(r_ptr, whr_ptr, srow, mb, ro, mo, H, BB: tl.constexpr, BO: tl.constexpr,
             BK: tl.constexpr, PREC: tl.constexpr, OPER: tl.constexpr):  # fmt: skip
    """r[rows] W_hr[ro]^T (BB, BO), r read from its (B, T, H) rows in BK chunks."""
    hc = tl.zeros((BB, BO), tl.float32)
    for k0 in range(0, H, BK):
        rk = k0 + tl.arange(0, BK)
        mk = rk < H
        rmask = mb[:, None] & mk[None, :]
        rr = tl.load(r_ptr + srow[:, None] * H + rk[None, :], mask=rmask, other=0.0)
        wmask = mk[:, None] & mo[None, :]
        wr = tl.load(whr_ptr + ro[None, :] * H + rk[:, None], mask=wmask, other=0.0)
        hc = tl.dot(rr.to(OPER).to(wr.dtype), wr, hc, input_precision=PREC)
    return hc


@triton.jit
def fwd_step(
    xb_ptr, w_ptr, bhh_ptr, peep_ptr, whr_ptr, drop_ptr, kh_ptr, kc_ptr, z,
    lnh_g, lnh_b, lnc_g, lnc_b, hin_ptr, cin_ptr, hout_ptr, cout_ptr, out_ptr,
    pre_ptr, ct_ptr, cs_ptr, hn_ptr, xh_ptr, rh_ptr, xc_ptr, rc_ptr, r_ptr,
    len_ptr, t, B, T, H, HH,
    G: tl.constexpr, CELL: tl.constexpr, ACT: tl.constexpr, ACT_C: tl.constexpr,
    GATE: tl.constexpr, VAR: tl.constexpr, PEEP: tl.constexpr, LN: tl.constexpr,
    DROP: tl.constexpr, ZONE: tl.constexpr, PROJ: tl.constexpr, SAVE: tl.constexpr,
    BB: tl.constexpr, BH: tl.constexpr, BK: tl.constexpr, BO: tl.constexpr,
    PREC: tl.constexpr, OPER: tl.constexpr, GH_IN: tl.constexpr,
):  # fmt: skip
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    col = tl.program_id(1)  # one column tile (0 for full rows: layer norm, projection)
    rj, ro = col * BH + tl.arange(0, BH), col * BO + tl.arange(0, BO)
    mb, mj, mo = rb < B, rj < H, ro < HH
    m2, mo2 = mb[:, None] & mj[None, :], mb[:, None] & mo[None, :]
    srow = rb * T + t
    valid = (t < tl.load(len_ptr + rb, mask=mb, other=0))[:, None]
    acc0 = tl.zeros((BB, BH), tl.float32)
    acc1, acc2, acc3 = acc0, acc0, acc0
    if GH_IN:  # the recurrent term made by the caller (w_ptr: (B, G*H), gated feedback)
        grow = w_ptr + rb[:, None] * (G * H) + rj[None, :]
        acc0 = tl.load(grow, mask=m2, other=0.0).to(tl.float32)
        if G > 1:
            acc1 = tl.load(grow + H, mask=m2, other=0.0).to(tl.float32)
            acc2 = tl.load(grow + 2 * H, mask=m2, other=0.0).to(tl.float32)
        if G > 3:
            acc3 = tl.load(grow + 3 * H, mask=m2, other=0.0).to(tl.float32)
    elif CELL == 3:  # IndRNN: u * (m * h)
        hp = tl.load(hin_ptr + rb[:, None] * HH + rj[None, :], mask=m2, other=0.0)
        if DROP:
            hp *= tl.load(drop_ptr + rb[:, None] * HH + rj[None, :], mask=m2, other=0.0)
        acc0 = hp * tl.load(w_ptr + rj, mask=mj, other=0.0)[None, :]
    else:
        # one K loop per gate: a loop's W tiles are (BK, BH), not G times that (shared
        # memory of full-row programs)
        acc0 = _gate_dot(hin_ptr, drop_ptr, w_ptr, 0, rb, mb, rj, mj, H, HH, BB, BH, BK,
                         DROP, PREC, OPER)  # fmt: skip
        if G > 1:
            acc1 = _gate_dot(hin_ptr, drop_ptr, w_ptr, 1, rb, mb, rj, mj, H, HH, BB, BH, BK,
                             DROP, PREC, OPER)  # fmt: skip
            acc2 = _gate_dot(hin_ptr, drop_ptr, w_ptr, 2, rb, mb, rj, mj, H, HH, BB, BH, BK,
                             DROP, PREC, OPER)  # fmt: skip
        if G > 3:
            acc3 = _gate_dot(hin_ptr, drop_ptr, w_ptr, 3, rb, mb, rj, mj, H, HH, BB, BH, BK,
                             DROP, PREC, OPER)  # fmt: skip
    if LN:
        acc0 = _norm(acc0, 0, lnh_g, lnh_b, xh_ptr, rh_ptr, srow, rj, mb, mj, valid, H, G, SAVE)
        if G > 1:
            acc1 = _norm(acc1, 1, lnh_g, lnh_b, xh_ptr, rh_ptr, srow, rj, mb, mj, valid, H, G, SAVE)
            acc2 = _norm(acc2, 2, lnh_g, lnh_b, xh_ptr, rh_ptr, srow, rj, mb, mj, valid, H, G, SAVE)
        if G > 3:
            acc3 = _norm(acc3, 3, lnh_g, lnh_b, xh_ptr, rh_ptr, srow, rj, mb, mj, valid, H, G, SAVE)
    xrow = xb_ptr + srow[:, None] * (G * H) + rj[None, :]
    prow = pre_ptr + srow[:, None] * (G * H) + rj[None, :]
    step = srow[:, None] * H + rj[None, :]
    own = rb[:, None] * H + rj[None, :]
    p0 = tl.load(xrow, mask=m2, other=0.0) + acc0
    p0 += tl.load(bhh_ptr + rj, mask=mj, other=0.0)[None, :]
    if G > 1:
        p1 = tl.load(xrow + H, mask=m2, other=0.0) + acc1
        p1 += tl.load(bhh_ptr + H + rj, mask=mj, other=0.0)[None, :]
        gh2 = acc2 + tl.load(bhh_ptr + 2 * H + rj, mask=mj, other=0.0)[None, :]
        x2 = tl.load(xrow + 2 * H, mask=m2, other=0.0)
    if CELL == 1:
        p2 = x2 + gh2
        p3 = tl.load(xrow + 3 * H, mask=m2, other=0.0) + acc3
        p3 += tl.load(bhh_ptr + 3 * H + rj, mask=mj, other=0.0)[None, :]
        c_prev = tl.load(cin_ptr + own, mask=m2, other=0.0)
        p0, p1, p3, ct, r = _lstm_cell(
            p0, p1, p2, p3, c_prev, peep_ptr, lnc_g, lnc_b, xc_ptr, rc_ptr, step, srow, mb,
            rj, mj, valid, H, ACT, ACT_C, GATE, VAR, PEEP, LN, SAVE,
        )  # fmt: skip
        c_new = ct
        if ZONE > 0:
            kc = _keep(kc_ptr, t, rb, rj, m2, ct, z, B, H, ZONE)
            c_new = kc * c_prev + (1.0 - kc) * ct
        c_state = tl.where(valid, c_new, c_prev)
        tl.store(cout_ptr + own, c_state, mask=m2)
        if SAVE:
            tl.store(ct_ptr + step, tl.where(valid, ct, c_prev), mask=m2)
            tl.store(cs_ptr + step, c_state, mask=m2)
            tl.store(prow + 2 * H, p2, mask=m2)
            tl.store(prow + 3 * H, p3, mask=m2)
        if PROJ:  # r goes through global memory: a (H, P) tile of W_hr would not fit
            tl.store(r_ptr + step, tl.where(valid, r, 0.0), mask=m2)
            tl.debug_barrier()  # this program's own rows, read back in BK chunks
            hc = _project(r_ptr, whr_ptr, srow, mb, ro, mo, H, BB, BO, BK, PREC, OPER)
        else:
            hc = r
    elif CELL == 2:
        rg = act(p0, GATE)
        zg = act(p1, GATE)
        p2 = x2 + rg * gh2
        h_full = tl.load(hin_ptr + rb[:, None] * HH + rj[None, :], mask=m2, other=0.0)
        hc = (1.0 - zg) * act(p2, ACT) + zg * h_full  # the carry is not dropped
        if SAVE:
            tl.store(hn_ptr + step, gh2, mask=m2)
            tl.store(prow + 2 * H, p2, mask=m2)
    else:
        hc = act(p0, ACT)
    if SAVE:
        tl.store(prow, p0, mask=m2)
        if G > 1:
            tl.store(prow + H, p1, mask=m2)
    h_prev = tl.load(hin_ptr + rb[:, None] * HH + ro[None, :], mask=mo2, other=0.0)
    h_new = hc
    if ZONE > 0:
        kh = _keep(kh_ptr, t, rb, ro, mo2, h_prev, z, B, HH, ZONE)
        h_new = kh * h_prev + (1.0 - kh) * hc
    tl.store(hout_ptr + rb[:, None] * HH + ro[None, :], tl.where(valid, h_new, h_prev), mask=mo2)
    out = tl.where(valid, h_new, 0.0)
    tl.store(out_ptr + srow[:, None] * HH + ro[None, :], out.to(out_ptr.dtype.element_ty), mask=mo2)
