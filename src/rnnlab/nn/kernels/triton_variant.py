"""The cell variants on the Triton backend: host side of triton_variant_kernels.py.

``TritonVariantRecurrence`` takes the arguments of variant_recurrence.VariantRecurrence
(gx, W_hh, b_ih, b_hh, h0, c0, peepholes, W_hr, the six layer-norm parameters, lengths,
the masks drawn by ``draw_masks`` and the spec) and returns the same outputs and
gradients; only what it saves differs. Per step the forward is ONE launch (recurrent
product + gate epilogue + projection, full-row programs: see the kernels' doc), the
backward two (gate gradients; dh_{t-1}'s product). Outside the loop: ``gx`` and
``LN(W u)`` (it does not depend on the recurrence: one vectorised layer norm over all
steps, its backward likewise), and after the backward loop dW_hh = dR^T (H_prev * m),
dW_hr = dH~^T R, the bias, peephole and layer-norm gradients as single products or
reductions. Precision as in triton_recurrence.py: float32, bfloat16 or float16 inputs,
float32 products' accumulators, state and saved tensors; outputs and gradients in
their inputs' dtypes. On CUDA each call's launches are captured in a CUDA graph.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from rnnlab.nn.cells import NUM_GATES
from rnnlab.nn.kernels import triton_variant_backward as KB
from rnnlab.nn.kernels import triton_variant_kernels as K
from rnnlab.nn.kernels.backend import CELL_CODES
from rnnlab.nn.kernels.triton_graphs import run_steps
from rnnlab.nn.kernels.triton_recurrence import (
    F32,
    TL_DTYPES,
    _pair,
    blocks,
    operands,
    precision,
)
from rnnlab.nn.kernels.triton_recurrence import triton_cdiv as cdiv
from rnnlab.nn.variant_cells import LN_EPS

ROWS = 16  # BB of the full-row gate kernels (tl.dot's minimum block)
CELL_NAMES = {code: name for name, code in CELL_CODES.items()}


def _pow2(n: int) -> int:
    return max(16, 1 << (max(n, 1) - 1).bit_length())


def _chunk(k: int, bh: int) -> int:
    """BK of a product's K loop: 16 or 32, 16 past 256-wide rows (shared memory)."""
    return 16 if k <= 16 or bh > 256 else 32


def tiles(batch: int, hidden: int, hh: int, full: bool) -> tuple[dict[str, int], tuple]:
    """(BB, BH, BO, launch options) and the grid of the gate kernels: full rows (16 x
    the whole H, and P; up to 32 warps and two pipeline stages: registers and shared
    memory, as ptxas reports them for sm_90)
    where layer norm or the projection needs them, else the plain kernel's (BB x BH)
    column tiles."""
    if full:
        bh = _pow2(hidden)
        warps = 4 if bh <= 64 else 8 if bh <= 128 else 16 if bh <= 512 else 32
        tile = dict(BB=ROWS, BH=bh, BO=_pow2(hh), num_warps=warps, num_stages=2)
        return tile, (cdiv(batch, ROWS), 1)
    bb, bh = blocks(batch, hidden)
    return dict(BB=bb, BH=bh, BO=bh), (cdiv(batch, bb), cdiv(hidden, bh))


def _ln_x(gx: torch.Tensor, gain: torch.Tensor, bias: torch.Tensor):
    """LN(W u) per gate block over all steps: (y (B, T, G*H), x^ (B, T, G, H), 1/std)."""
    blocks_ = gx.view(*gx.shape[:2], *gain.shape)
    mean = blocks_.mean(-1, keepdim=True)
    rstd = torch.rsqrt(blocks_.var(-1, unbiased=False, keepdim=True) + LN_EPS)
    xx = (blocks_ - mean) * rstd
    return (xx * gain.to(F32) + bias.to(F32)).view(gx.shape), xx, rstd


def _ln_x_backward(dy: torch.Tensor, gain: torch.Tensor, xx: torch.Tensor, rstd: torch.Tensor):
    """dL/d(W u) from dL/dLN(W u) (B, T, G*H), and the gain's gradient."""
    d = dy.view(xx.shape)
    dg = d * gain.to(F32)
    dx = rstd * (dg - dg.mean(-1, keepdim=True) - xx * (dg * xx).mean(-1, keepdim=True))
    return dx.view(dy.shape), (d * xx).sum((0, 1))


def _consts(cell, codes, variant, flags, dtype):
    act, act_c, gate = codes
    return dict(
        G=NUM_GATES[cell], CELL=CELL_CODES[cell], ACT=act, ACT_C=act_c, GATE=gate, VAR=variant,
        **flags, PREC=precision(dtype),
    )  # fmt: skip


def forward(spec, gx, w_hh, b_ih, b_hh, h0, c0, peep, w_hr, ln, lengths, masks, save):
    """-> out, h_T, c_T and the saved dict (see the module doc)."""
    cell, codes, variant, z = CELL_NAMES[spec[0]], *spec[1:]
    batch, steps, gh = gx.shape
    hidden, hh = gh // NUM_GATES[cell], h0.shape[1]
    lstm, gru, proj, has_ln = cell == "lstm", cell == "gru", w_hr.numel() > 0, ln[0].numel() > 0
    empty = gx.new_empty(0, dtype=F32)
    xx = rx = empty
    if has_ln:
        xb, xx, rx = _ln_x(gx.to(F32), ln[4], ln[5])
        xb = (xb + b_ih.to(F32)).contiguous()
    else:
        xb = (gx.to(F32) + b_ih.to(F32)).contiguous()
    w, oper = operands(w_hh, gx.dtype)
    whr = operands(w_hr, gx.dtype)[0] if proj else empty
    drop, kh, kc = (m.to(F32).contiguous() for m in masks)
    flags = dict(
        PEEP=peep.numel() > 0, LN=has_ln, DROP=drop.numel() > 0,
        ZONE=1 if kh.numel() else (2 if z else 0), PROJ=proj,
    )  # fmt: skip
    h = _pair(h0)
    c = _pair(c0) if lstm else [h[1], h[1]]

    def buf(*shape, on=True):
        return gx.new_empty(*shape, dtype=F32) if on and save else empty

    bt = (batch, steps)
    saved = dict(
        pre=buf(*bt, gh), ct=buf(*bt, hidden, on=lstm), cs=buf(*bt, hidden, on=lstm),
        hn=buf(*bt, hidden, on=gru), xh=buf(*bt, gh, on=has_ln),
        rh=buf(*bt, NUM_GATES[cell], on=has_ln), xc=buf(*bt, hidden, on=has_ln and lstm),
        rc=buf(*bt, on=has_ln and lstm),
    )  # fmt: skip
    # r = o * phi_c(.) of every step: the projection reads it back (and dW_hr, saved)
    saved["r"] = gx.new_empty(*bt, hidden, dtype=F32) if proj else empty
    out = gx.new_empty(batch, steps, hh)
    f32 = lambda t: t.to(F32).contiguous() if t.numel() else empty  # noqa: E731
    params = dict(bhh=f32(b_hh), peep=f32(peep), lnh_g=f32(ln[0]), lnh_b=f32(ln[1]))
    params.update(lnc_g=f32(ln[2]), lnc_b=f32(ln[3]))
    consts = _consts(cell, codes, variant, flags, gx.dtype)
    tile, grid = tiles(batch, hidden, hh, has_ln or proj)
    consts.update(SAVE=save, BK=_chunk(hh, tile["BH"]), **tile)
    tensors = dict(xb=xb, w=w, whr=whr, drop=drop, kh=kh, kc=kc, h0=h[0], c0=c[0])
    tensors.update(params, len=lengths)
    outputs = dict(out=out, h1=h[1], c1=c[1], **{k: v for k, v in saved.items() if v.numel()})

    def launch(ts: dict[str, torch.Tensor]) -> None:
        hs, cs = [ts["h0"], ts["h1"]], [ts["c0"], ts["c1"]] if lstm else [ts["h1"]] * 2
        sv = {k: ts.get(k, empty) for k in saved}
        for t in range(steps):
            a, b = t % 2, (t + 1) % 2
            K.fwd_step[grid](
                ts["xb"], ts["w"], ts["bhh"], ts["peep"], ts["whr"], ts["drop"], ts["kh"],
                ts["kc"], z, ts["lnh_g"], ts["lnh_b"], ts["lnc_g"], ts["lnc_b"], hs[a], cs[a],
                hs[b], cs[b], ts["out"], sv["pre"], sv["ct"], sv["cs"], sv["hn"], sv["xh"],
                sv["rh"], sv["xc"], sv["rc"], sv["r"], ts["len"], t, batch, steps, hidden, hh,
                OPER=oper, GH_IN=False, **consts,
            )  # fmt: skip
        ts["h_last"], ts["c_last"] = hs[steps % 2], cs[steps % 2]

    key = ("var_fwd", batch, steps, hidden, hh, z, gx.dtype, w.dtype, *sorted(consts.items()))
    res = run_steps(key, launch, tensors, outputs, ("h_last", "c_last"))
    saved = {k: res.get(k, empty) for k in saved}
    saved.update(xx=xx, rx=rx, drop=drop, kh=kh, kc=kc)
    h_t = res["h_last"].to(h0.dtype)
    c_t = res["c_last"].to(c0.dtype) if lstm else gx.new_empty(0)
    return res["out"], h_t, c_t, saved


def _backward_loop(spec, grad_out, grad_h, grad_c, w, whr, h0_, c0_, out, sv, lengths, dtype):
    """The reversed loop: -> dG, dx (GRU), dR (layer norm), dH~ (projection), dcn, dh0, dc0."""
    cell, codes, variant, z = CELL_NAMES[spec[0]], *spec[1:]
    batch, steps, hh = out.shape
    gh = sv["pre"].shape[2]
    hidden = gh // NUM_GATES[cell]
    lstm, gru = cell == "lstm", cell == "gru"
    has_ln, proj = sv["xh"].numel() > 0, whr.numel() > 0
    flags = dict(
        PEEP=sv["peep"].numel() > 0, LN=has_ln, ZONE=1 if sv["kh"].numel() else (2 if z else 0),
        PROJ=proj,
    )  # fmt: skip
    consts = _consts(cell, codes, variant, flags, dtype)
    oper = TL_DTYPES[dtype]
    dh = _pair(grad_h)
    dc = _pair(grad_c) if lstm else [dh[1], dh[1]]
    new = lambda *shape, on=True: out.new_empty(*shape, dtype=F32) if on else dh[1][:0]  # noqa: E731
    bt = (batch, steps)
    grads = dict(
        dg=new(*bt, gh), dx=new(*bt, gh, on=gru), dr=new(*bt, gh, on=has_ln),
        dht=new(*bt, hh, on=proj), dcn=new(*bt, hidden, on=has_ln and lstm),
    )  # fmt: skip
    bb, bj = blocks(batch, hh)
    tile, grid1 = tiles(batch, hidden, hh, has_ln or proj)
    grid2 = (cdiv(batch, bb), cdiv(hh, bj))
    small = dict(G=consts["G"], CELL=consts["CELL"], PREC=consts["PREC"], OPER=oper)
    dconsts = dict(DROP=sv["drop"].numel() > 0, BB=bb, BJ=bj, BK=blocks(1, hidden)[1], **small)
    gconsts = dict(OPER=oper, BK=_chunk(hh, tile["BH"]), **tile, **consts)
    tensors = dict(go=grad_out.contiguous(), dh0=dh[0], dc0=dc[0], w=w, whr=whr, h0=h0_,
                   c0=c0_, out=out.contiguous(), len=lengths, **sv)  # fmt: skip
    outputs = dict(dh1=dh[1], dc1=dc[1], carry=new(batch, hh), **grads)

    def launch(ts: dict[str, torch.Tensor]) -> None:
        dhs, dcs = [ts["dh0"], ts["dh1"]], [ts["dc0"], ts["dc1"]] if lstm else [ts["dh1"]] * 2
        src = ts["dr"] if has_ln else ts["dg"]
        for n, t in enumerate(range(steps - 1, -1, -1)):
            a, b = n % 2, (n + 1) % 2
            KB.bwd_gates[grid1](
                ts["go"], dhs[a], dcs[a], ts["carry"], dcs[b], ts["whr"], ts["peep"], ts["kh"],
                ts["kc"], z, ts["lnh_g"], ts["lnc_g"], ts["lnc_b"], ts["pre"], ts["ct"],
                ts["cs"], ts["c0"], ts["out"], ts["h0"], ts["hn"], ts["xh"], ts["rh"],
                ts["xc"], ts["rc"], ts["dg"], ts["dx"], ts["dr"], ts["dht"], ts["dcn"],
                ts["len"], t, batch, steps, hidden, hh, **gconsts,
            )  # fmt: skip
            KB.bwd_dh[grid2](
                src, ts["w"], ts["drop"], ts["carry"], dhs[b], t, batch, steps, hidden, hh,
                **dconsts,
            )  # fmt: skip
        ts["dh_last"], ts["dc_last"] = dhs[steps % 2], dcs[steps % 2]

    key = ("var_bwd", batch, steps, hidden, hh, z, dtype, w.dtype, dconsts["DROP"])
    key += tuple(sorted(gconsts.items()))
    return run_steps(key, launch, tensors, outputs, ("dh_last", "dc_last"))


def backward(spec, grad_out, grad_h, grad_c, w_hh, h0, c0, peep, w_hr, out, sv, lengths):
    """-> dgx (F32), dW_hh, db_ih, db_hh, dh0, dc0, dW_hr, dpeep, six LN grads (F32)."""
    cell = CELL_NAMES[spec[0]]
    lstm, gru, ind = cell == "lstm", cell == "gru", cell == "indrnn"
    batch, steps, hh = out.shape
    gh = sv["pre"].shape[2]
    hidden, gates = gh // NUM_GATES[cell], NUM_GATES[cell]
    empty = out.new_empty(0, dtype=F32)
    w, _ = operands(w_hh, out.dtype)
    whr = operands(w_hr, out.dtype)[0] if w_hr.numel() else empty
    h0_ = h0.to(F32).contiguous()
    c0_ = c0.to(F32).contiguous() if lstm else empty
    res = _backward_loop(
        spec, grad_out, grad_h, grad_c if lstm else empty, w, whr, h0_, c0_, out, sv, lengths,
        out.dtype,
    )  # fmt: skip
    dg, dr, dht, dcn = res["dg"], res["dr"], res["dht"], res["dcn"]
    dxs = res["dx"] if gru else dg
    h_prev = torch.cat([h0_.unsqueeze(1), out[:, :-1].to(F32)], dim=1)
    if sv["drop"].numel():
        h_prev = h_prev * sv["drop"].unsqueeze(1)
    src = dr if sv["xh"].numel() else dg
    if ind:
        dw = (src * h_prev).sum((0, 1))
    else:
        dw = src.reshape(-1, gh).t() @ h_prev.reshape(-1, hh)
    db, db_ih = dg.sum((0, 1)), dxs.sum((0, 1))
    dw_hr = dht.reshape(-1, hh).t() @ sv["r"].reshape(-1, hidden) if w_hr.numel() else empty
    dpeep = empty
    if peep.numel():  # dp_i, dp_f pair with c_{t-1}, dp_o with c~_t
        c_prev = torch.cat([c0_.unsqueeze(1), sv["cs"][:, :-1]], dim=1)
        dg4 = dg.view(batch, steps, 4, hidden)
        dpeep = torch.stack(
            [(dg4[:, :, k] * c).sum((0, 1)) for k, c in ((0, c_prev), (1, c_prev), (3, sv["ct"]))]
        )
    dln = [empty] * 6
    dgx = dxs
    if sv["xh"].numel():
        dln[0] = (dg * sv["xh"]).sum((0, 1)).view(gates, hidden)
        dln[1] = db.view(gates, hidden)
        if lstm:
            dln[2], dln[3] = (dcn * sv["xc"]).sum((0, 1)), dcn.sum((0, 1))
        dgx, dln[4] = _ln_x_backward(dxs, sv["lnx_g"], sv["xx"], sv["rx"])
        dln[5] = db_ih.view(gates, hidden)
    dc0 = res["dc_last"] if lstm else empty
    return dgx, dw, db_ih, db, res["dh_last"], dc0, dw_hr, dpeep, *dln


class TritonVariantRecurrence(torch.autograd.Function):
    """VariantRecurrence's contract on the Triton backend (see the module doc)."""

    @staticmethod
    def forward(ctx, gx, w_hh, b_ih, b_hh, h0, c0, peep, w_hr, *ln_and_rest):
        *ln, lengths, masks, spec = ln_and_rest
        save = any(ctx.needs_input_grad[:14])
        out, h, c, sv = forward(spec, gx, w_hh, b_ih, b_hh, h0, c0, peep, w_hr, ln, lengths,
                                masks, save)  # fmt: skip
        if save:
            sv.update(peep=peep.to(F32).contiguous(), lnh_g=ln[0].to(F32).contiguous(),
                      lnc_g=ln[2].to(F32).contiguous(), lnc_b=ln[3].to(F32).contiguous(),
                      lnx_g=ln[4])  # fmt: skip
            ctx.names = list(sv)
            ctx.save_for_backward(w_hh, h0, c0, peep, w_hr, out, lengths, *ln, *sv.values())
        ctx.spec, ctx.b_dtypes = spec, (b_ih.dtype, b_hh.dtype)
        if spec[0] != CELL_CODES["lstm"]:
            ctx.mark_non_differentiable(c)
        return out, h, c

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_h, grad_c):
        w_hh, h0, c0, peep, w_hr, out, lengths, *rest = ctx.saved_tensors
        ln, sv = rest[:6], dict(zip(ctx.names, rest[6:]))
        dgx, dw, db_ih, db, dh0, dc0, dw_hr, dpeep, *dln = backward(
            ctx.spec, grad_out, grad_h, grad_c, w_hh, h0, c0, peep, w_hr, out, sv, lengths
        )
        lstm = ctx.spec[0] == CELL_CODES["lstm"]
        dln = [d.to(p.dtype) if p.numel() else None for d, p in zip(dln, ln)]
        return (
            dgx.to(out.dtype), dw.to(w_hh.dtype), db_ih.to(ctx.b_dtypes[0]),
            db.to(ctx.b_dtypes[1]),
            dh0.to(h0.dtype), dc0.to(c0.dtype) if lstm else None,
            dpeep.to(peep.dtype) if peep.numel() else None,
            dw_hr.to(w_hr.dtype) if w_hr.numel() else None, *dln, None, None, None,
        )  # fmt: skip
