"""Gated feedback with the cell variants on the Triton backend: host side of
triton_feedback_variants_kernels.py, with the variant kernels' step math.

``TritonGatedFeedbackVariants`` takes the arguments of gated_feedback_variants'
``GatedFeedbackVariants`` (gx0, w_in, w_rec, b_ih, b_hh, peepholes, W_hr, the six
layer-norm parameters stacked per layer, the masks, lengths, spec) and returns the same
outputs and gradients. The algorithm is triton_feedback.py's (the plain gated-feedback
stack on Triton) with the variant kernels' row math:

forward, per step: ONE batched product S = (m * h_{t-1}) w_rec^T for every source layer
(m: each layer's recurrent-dropout mask), per layer j >= 1 one product for its input
a_j = [W_ih_j; gate_u_j] (D * h^{j-1}_t), and per layer two launches: ``gfv_fwd_in``
(reset gates, gated candidate, LN(W u) + b_ih) and the variant kernels' ``fwd_step`` on
the step's slices with the recurrent term read from ``gfv_fwd_in`` (``GH_IN``): LN of
each gate block, b_hh, peepholes, Greff gates, LN(c~), the projection, zoneout, lengths.
backward, per step and layer (top down): ``bwd_gates`` (the variant kernels' own),
``gfv_bwd_x`` (LN(W u)'s backward), and the host products of triton_feedback.py
(feedback, reset gates, the layer's input, own gates), the recurrent-dropout mask on
d h~; every weight gradient is one large product or reduction after the loop.
States, saved tensors and gradients are float32; forward products take the input's
dtype. On CUDA each loop is captured once per shape in a CUDA graph (triton_graphs.py).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from rnnlab.nn.cells import CANDIDATE_BLOCK, NUM_GATES
from rnnlab.nn.kernels import triton_feedback_variants_kernels as KF
from rnnlab.nn.kernels import triton_variant_backward as KB
from rnnlab.nn.kernels import triton_variant_kernels as K
from rnnlab.nn.kernels.gated_feedback_torch_ops import layout
from rnnlab.nn.kernels.triton_graphs import run_steps
from rnnlab.nn.kernels.triton_recurrence import F32, TL_DTYPES, operands
from rnnlab.nn.kernels.triton_variant import CELL_NAMES, _chunk, _consts, tiles

SAVED = ("pre", "ct", "hn", "g", "xh", "rh", "xc", "rc", "xx", "rx", "r")


def _at(buf: torch.Tensor, *index: int) -> torch.Tensor:
    """buf[index], or ``buf`` itself when it is an empty placeholder."""
    return buf[index] if buf.numel() else buf


def _flags(has_ln, proj, peep, kh, z):
    return dict(PEEP=peep.numel() > 0, LN=has_ln, ZONE=1 if kh.numel() else (2 if z else 0),
                PROJ=proj)  # fmt: skip


def _launch_opts(tile: dict) -> dict:
    return {k: tile[k] for k in ("BB", "BH", "num_warps", "num_stages") if k in tile}


def _remaining(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """(T, B) lengths - t: a step is valid where it is positive (the step kernels run
    with T = 1 on each step's slices)."""
    t = torch.arange(steps, device=lengths.device)[:, None]
    return (lengths.to(torch.long)[None, :] - t).contiguous()


def forward(spec, gx0, w_in, w_rec, b_ih, b_hh, peep, w_hr, ln, masks, lengths, save):
    """-> out (T, B, P), hs (L, T+1, B, P), cs (L, T+1, B, H) and the saved dict."""
    cell, codes, variant, z = CELL_NAMES[spec[0]], *spec[1:]
    steps, batch, gw = gx0.shape
    layers, n, p = w_rec.shape
    gh = b_ih.shape[1]
    h, dt = gh // NUM_GATES[cell], gx0.dtype
    lstm, gru, proj, has_ln = cell == "lstm", cell == "gru", w_hr.numel() > 0, ln[0].numel() > 0
    empty = gx0.new_empty(0, dtype=F32)
    drop, rdrop, kh, kc = (m.to(F32).contiguous() if m.numel() else empty for m in masks)
    f32 = lambda t: t.to(F32).contiguous() if t.numel() else empty  # noqa: E731
    hs = gx0.new_zeros(layers, steps + 1, batch, p, dtype=F32)
    cs = torch.zeros(layers, steps + 1, batch, h, dtype=F32, device=gx0.device) if lstm else empty

    def buf(*shape, on=True):
        return gx0.new_empty(layers, steps, batch, *shape, dtype=F32) if on and save else empty

    g_ = NUM_GATES[cell]
    saved = dict(
        pre=buf(gh), ct=buf(h, on=lstm), hn=buf(h, on=gru), g=buf(layers),
        xh=buf(gh, on=has_ln), rh=buf(g_, on=has_ln), xc=buf(h, on=has_ln and lstm),
        rc=buf(on=has_ln and lstm), xx=buf(gh, on=has_ln), rx=buf(g_, on=has_ln),
    )  # fmt: skip
    saved["r"] = gx0.new_empty(layers, steps, batch, h, dtype=F32) if proj else empty
    flags = dict(_flags(has_ln, proj, peep, kh, z), DROP=False)
    tile, grid = tiles(batch, h, p, has_ln or proj)
    consts = _consts(cell, codes, variant, flags, dt)
    oper = TL_DTYPES[dt]
    consts.update(SAVE=save, BK=_chunk(p, tile["BH"]), OPER=oper, GH_IN=True, **tile)
    in_consts = dict(L=layers, G=g_, KC=CANDIDATE_BLOCK[cell], LN=has_ln, SAVE=save)
    in_consts.update(_launch_opts(tiles(batch, h, p, has_ln)[0]))
    in_grid = tiles(batch, h, p, has_ln)[1]
    w_rec_t = operands(w_rec, dt)[0].transpose(1, 2)
    tensors = dict(
        gx0=gx0.contiguous(), w_in=operands(w_in, dt)[0], w_rec_t=w_rec_t, bih=f32(b_ih),
        bhh=f32(b_hh), peep=f32(peep), whr=operands(w_hr, dt)[0] if proj else empty,
        drop=drop, rdrop=rdrop, kh=kh, kc=kc, lnh_g=f32(ln[0]), lnh_b=f32(ln[1]),
        lnc_g=f32(ln[2]), lnc_b=f32(ln[3]), lnx_g=f32(ln[4]), lnx_b=f32(ln[5]),
        rem=_remaining(lengths, steps),
    )  # fmt: skip
    out = gx0.new_empty(steps, batch, p)
    outputs = dict(out=out, hs=hs, **{k: v for k, v in saved.items() if v.numel()})
    if lstm:
        outputs["cs"] = cs

    def launch(ts: dict[str, torch.Tensor]) -> None:
        ts["hs"][:, 0].zero_()
        c_of = ts["cs"] if lstm else ts["hs"]  # the cell state (a placeholder but for LSTM)
        c_of[:, 0].zero_()
        sv = {k: ts.get(k, empty) for k in saved}
        s = ts["w_rec_t"].new_empty(layers, batch, n)  # products in the operands' dtype
        gh_buf = ts["hs"].new_empty(batch, gh)
        xb_buf, spare = torch.empty_like(gh_buf), ts["hs"].new_empty(batch, p)
        for t in range(steps):
            hm = ts["hs"][:, t] * ts["rdrop"] if rdrop.numel() else ts["hs"][:, t]
            torch.bmm(hm.to(s.dtype), ts["w_rec_t"], out=s)
            for j in range(layers):
                if j == 0:
                    a = ts["gx0"][t]
                else:
                    u = ts["hs"][j - 1, t + 1]
                    u = u * ts["drop"][j - 1, t] if drop.numel() else u
                    a = u.to(s.dtype) @ ts["w_in"][j - 1].t()
                KF.gfv_fwd_in[in_grid](
                    s, a, ts["bih"][j], _at(ts["lnx_g"], j), _at(ts["lnx_b"], j), gh_buf,
                    xb_buf, _at(sv["g"], j, t), _at(sv["xx"], j, t), _at(sv["rx"], j, t), j,
                    batch, h, n, gw, **in_consts,
                )  # fmt: skip
                top = j == layers - 1
                K.fwd_step[grid](
                    xb_buf, gh_buf, ts["bhh"][j], _at(ts["peep"], j), _at(ts["whr"], j),
                    empty, _at(ts["kh"], j, t), _at(ts["kc"], j, t), z, _at(ts["lnh_g"], j),
                    _at(ts["lnh_b"], j), _at(ts["lnc_g"], j), _at(ts["lnc_b"], j),
                    ts["hs"][j, t], c_of[j, t], ts["hs"][j, t + 1], c_of[j, t + 1],
                    ts["out"][t] if top else spare, _at(sv["pre"], j, t), _at(sv["ct"], j, t),
                    c_of[j, t + 1], _at(sv["hn"], j, t), _at(sv["xh"], j, t),
                    _at(sv["rh"], j, t), _at(sv["xc"], j, t), _at(sv["rc"], j, t),
                    _at(sv["r"], j, t), ts["rem"][t], 0, batch, 1, h, p, **consts,
                )  # fmt: skip

    key = ("gfv_fwd", steps, batch, h, p, layers, z, dt, drop.numel() > 0, rdrop.numel() > 0)
    key += tuple(sorted(consts.items()))
    res = run_steps(key, launch, tensors, outputs, ())
    saved = {k: res.get(k, empty) for k in saved}
    return res["out"], res["hs"], res.get("cs", empty), saved


def _feedback_products(cell, w_rec, h, layers):
    """F_j = [U^{0->j} | ... | U^{L-1->j}] (L, H, L*P), the own-gate rows (L, NG, P) and
    every reset gate's columns (L*L, L*P) of w_rec, float32 (the backward's products)."""
    d = layout(cell, h, layers)
    w = w_rec.float()
    fb = torch.stack(
        [torch.cat([w[i, d["secU"] + j * h : d["secU"] + (j + 1) * h] for i in range(layers)], 1)
         for j in range(layers)]
    )  # fmt: skip
    ghm = torch.cat([w[i, d["secG"] :] for i in range(layers)], 1)
    return fb, w[:, : d["NG"]].contiguous(), ghm, d


def _backward_loop(spec, grad_out, grad_h, grad_c, w_in, w_rec, peep, w_hr, masks, sv, ln,
                   lengths):  # fmt: skip
    """The reversed loop -> dd (L, T, B, G H + L), dg, dx (GRU), dr (LN), dht, dcn."""
    cell, codes, variant, z = CELL_NAMES[spec[0]], *spec[1:]
    hs = sv["hs"]
    layers, steps1, batch, p = hs.shape
    steps, h = steps1 - 1, sv["pre"].shape[-1] // NUM_GATES[cell]
    lstm, gru, has_ln, proj = cell == "lstm", cell == "gru", sv["xh"].numel() > 0, w_hr.numel() > 0
    fb, w_gates, ghm, d = _feedback_products(cell, w_rec, h, layers)
    gh, gw, kc, dt = d["GH"], d["GW"], d["kc"], grad_out.dtype
    empty = hs.new_empty(0)
    drop, rdrop, kh, kc_m = masks
    consts = _consts(cell, codes, variant, _flags(has_ln, proj, peep, kh, z), dt)
    tile, grid = tiles(batch, h, p, has_ln or proj)
    consts.update(OPER=TL_DTYPES[dt], BK=_chunk(p, tile["BH"]), **tile)
    x_tile, x_grid = tiles(batch, h, p, has_ln)
    x_consts = dict(G=d["G"], LN=has_ln, **_launch_opts(x_tile))

    def new(*shape, on=True):
        return hs.new_empty(layers, steps, batch, *shape) if on else empty

    grads = dict(dd=new(gw), dg=new(gh), dx=new(gh, on=gru), dr=new(gh, on=has_ln),
                 dht=new(p, on=proj), dcn=new(h, on=has_ln and lstm))  # fmt: skip
    f32 = lambda t: t.float().contiguous() if t.numel() else empty  # noqa: E731
    tensors = dict(
        go=grad_out.float().contiguous(), dh0=grad_h.float().contiguous(),
        dc0=grad_c.float().contiguous() if lstm else empty, w_in=w_in.float(), fb=fb,
        w_gates=w_gates, ghm=ghm, whr=operands(w_hr, dt)[0] if proj else empty,
        peep=f32(peep), lnh_g=f32(ln[0]), lnc_g=f32(ln[2]), lnc_b=f32(ln[3]),
        lnx_g=f32(ln[4]), rem=_remaining(lengths, steps), drop=drop, rdrop=rdrop, kh=kh,
        kc=kc_m, **{k: v for k, v in sv.items() if v.numel()},
    )  # fmt: skip

    def launch(ts: dict[str, torch.Tensor]) -> None:
        s = {k: ts.get(k, empty) for k in (*SAVED, *grads)}
        c_of = ts["cs"] if lstm else ts["hs"]
        dh, dc = ts["dh0"].clone(), ts["dc0"].clone() if lstm else empty
        carry, zero = torch.empty_like(dh), torch.zeros_like(dh[0])
        for t in range(steps - 1, -1, -1):
            hm = ts["hs"][:, t] * ts["rdrop"] if rdrop.numel() else ts["hs"][:, t]
            dhm = torch.zeros_like(dh)
            for j in range(layers - 1, -1, -1):
                KB.bwd_gates[grid](
                    ts["go"][t] if j == layers - 1 else zero, dh[j], _at(dc, j), carry[j],
                    _at(dc, j), _at(ts["whr"], j), _at(ts["peep"], j), _at(ts["kh"], j, t),
                    _at(ts["kc"], j, t), z, _at(ts["lnh_g"], j), _at(ts["lnc_g"], j),
                    _at(ts["lnc_b"], j), s["pre"][j, t], _at(s["ct"], j, t), c_of[j, t],
                    c_of[j, t], ts["hs"][j, t], ts["hs"][j, t], _at(s["hn"], j, t),
                    _at(s["xh"], j, t), _at(s["rh"], j, t), _at(s["xc"], j, t),
                    _at(s["rc"], j, t), s["dg"][j, t], _at(s["dx"], j, t), _at(s["dr"], j, t),
                    _at(s["dht"], j, t), _at(s["dcn"], j, t), ts["rem"][t], 0, batch, 1, h, p,
                    **consts,
                )  # fmt: skip
                dxs = s["dx"] if gru else s["dg"]
                KF.gfv_bwd_x[x_grid](
                    dxs[j, t], _at(ts["lnx_g"], j), _at(s["xx"], j, t), _at(s["rx"], j, t),
                    s["dd"][j, t], batch, h, gw, **x_consts,
                )  # fmt: skip
                d_rec = (s["dr"] if has_ln else s["dg"])[j, t]
                qv = (d_rec[:, kc * h : (kc + 1) * h] @ ts["fb"][j]).view(batch, layers, p)
                g = s["g"][j, t]
                dgate = (qv * hm.transpose(0, 1)).sum(-1)  # (B, L)
                s["dd"][j, t, :, gh:] = dgate * g * (1.0 - g)
                dhm += (qv * g.unsqueeze(-1)).transpose(0, 1)
                if j > 0:
                    du = s["dd"][j, t] @ ts["w_in"][j - 1]
                    dh[j - 1] += du * ts["drop"][j - 1, t] if drop.numel() else du
            d_rec = (s["dr"] if has_ln else s["dg"])[:, t]
            if d["NG"]:
                own = torch.cat([d_rec[..., : kc * h], d_rec[..., (kc + 1) * h :]], -1)
                dhm += torch.bmm(own, ts["w_gates"])
            das = s["dd"][:, t, :, gh:].permute(1, 0, 2).reshape(batch, layers * layers)
            dhm += (das @ ts["ghm"]).view(batch, layers, p).transpose(0, 1)
            dh = carry + (dhm * ts["rdrop"] if rdrop.numel() else dhm)

    key = ("gfv_bwd", steps, batch, h, p, layers, z, dt, drop.numel() > 0, rdrop.numel() > 0)
    key += tuple(sorted(consts.items()))
    return run_steps(key, launch, tensors, grads, ())


def _weight_grads(cell, r, sv, masks, layers):
    """Every weight gradient from the loop's per-step gradients ``r``: one product or
    reduction per weight block over all steps and the batch."""
    hs = sv["hs"]
    _, steps1, batch, p = hs.shape
    steps, tb = steps1 - 1, (steps1 - 1) * batch
    h = sv["pre"].shape[-1] // NUM_GATES[cell]
    d = layout(cell, h, layers)
    gh, gw, kc = d["GH"], d["GW"], d["kc"]
    drop, rdrop = masks[:2]
    dd, dg = r["dd"], r["dg"]
    d_rec = r["dr"] if r["dr"].numel() else dg
    dxs = r["dx"] if cell == "gru" else dg
    hm = hs[:, :steps] * rdrop[:, None] if rdrop.numel() else hs[:, :steps]
    d_w_in = hs.new_empty(max(layers - 1, 0), gw, p)
    for j in range(1, layers):
        u = hs[j - 1, 1:] * drop[j - 1] if drop.numel() else hs[j - 1, 1:]
        d_w_in[j - 1] = dd[j].reshape(tb, gw).t() @ u.reshape(tb, p)
    d_w_rec = hs.new_empty(layers, d["N"], p)
    for i in range(layers):
        hp = hm[i].reshape(tb, p)
        di = d_rec[i].reshape(tb, gh)
        d_w_rec[i, : d["NG"]] = torch.cat([di[:, : kc * h], di[:, (kc + 1) * h :]], 1).t() @ hp
        for j in range(layers):
            dcand = d_rec[j, ..., kc * h : (kc + 1) * h].reshape(tb, h)
            gji = sv["g"][j].reshape(tb, layers)[:, i : i + 1]
            d_w_rec[i, d["secU"] + j * h : d["secU"] + (j + 1) * h] = dcand.t() @ (hp * gji)
            rows = slice(d["secG"] + j * layers, d["secG"] + (j + 1) * layers)
            d_w_rec[i, rows] = dd[j].reshape(tb, gw)[:, gh:].t() @ hp
    return dd[0], d_w_in, d_w_rec, dxs.sum((1, 2)), dg.sum((1, 2))


def _extra_grads(cell, r, sv, peep, w_hr, ln):
    """Peepholes, W_hr and the six layer-norm parameters (empty where absent)."""
    empty = sv["hs"].new_empty(0)
    dg, layers = r["dg"], sv["hs"].shape[0]
    d_peep = d_w_hr = empty
    if peep.numel():  # dp_i, dp_f pair with c_{t-1}, dp_o with c~_t
        h = peep.shape[-1]
        dg4 = dg.view(*dg.shape[:3], 4, h)
        c_prev = sv["cs"][:, :-1]
        parts = ((0, c_prev), (1, c_prev), (3, sv["ct"]))
        d_peep = torch.stack([(dg4[..., k, :] * c).sum((1, 2)) for k, c in parts], 1)
    if w_hr.numel():
        d_w_hr = torch.einsum("ltbp,ltbh->lph", r["dht"], sv["r"])
    dln = [empty] * 6
    if ln[0].numel():
        dxs = r["dx"] if cell == "gru" else dg
        shape = (layers, *ln[0].shape[1:])
        dln[0] = (dg * sv["xh"]).sum((1, 2)).view(shape)
        dln[1] = dg.sum((1, 2)).view(shape)
        if cell == "lstm":
            dln[2], dln[3] = (r["dcn"] * sv["xc"]).sum((1, 2)), r["dcn"].sum((1, 2))
        dln[4] = (dxs * sv["xx"]).sum((1, 2)).view(shape)
        dln[5] = dxs.sum((1, 2)).view(shape)
    return d_peep, d_w_hr, dln


class TritonGatedFeedbackVariants(torch.autograd.Function):
    """GatedFeedbackVariants' contract (gated_feedback_variants.py) on the Triton backend."""

    @staticmethod
    def forward(ctx, gx0, w_in, w_rec, b_ih, b_hh, peep, w_hr, *ln_and_rest):
        *ln, masks, lengths, spec = ln_and_rest
        save = any(ctx.needs_input_grad[:13])
        empty = gx0.new_empty(0, dtype=F32)
        f32 = [m.to(F32).contiguous() if m.numel() else empty for m in masks]
        out, hs, cs, sv = forward(spec, gx0, w_in, w_rec, b_ih, b_hh, peep, w_hr, ln, f32,
                                  lengths, save)  # fmt: skip
        lstm = CELL_NAMES[spec[0]] == "lstm"
        if save:
            sv.update(hs=hs, cs=cs)
            ctx.names = list(sv)
            ctx.save_for_backward(w_in, w_rec, peep, w_hr, lengths, *ln, *f32, *sv.values())
        ctx.spec, ctx.dtypes = spec, (gx0.dtype, b_ih.dtype, b_hh.dtype)
        # copies, as the C++ Function returns: views of the saved states would tie the
        # outputs' version counter to tensors the backward reads
        h_last = hs[:, -1].to(gx0.dtype, copy=True)
        c_last = cs[:, -1].to(gx0.dtype, copy=True) if lstm else gx0.new_empty(0)
        if not lstm:
            ctx.mark_non_differentiable(c_last)
        return out, h_last, c_last

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_h, grad_c):
        w_in, w_rec, peep, w_hr, lengths, *rest = ctx.saved_tensors
        ln, masks, sv = rest[:6], rest[6:10], dict(zip(ctx.names, rest[10:]))
        cell = CELL_NAMES[ctx.spec[0]]
        r = _backward_loop(ctx.spec, grad_out, grad_h, grad_c, w_in, w_rec, peep, w_hr, masks,
                           sv, ln, lengths)  # fmt: skip
        r = {k: r.get(k, grad_out.new_empty(0)) for k in ("dd", "dg", "dx", "dr", "dht", "dcn")}
        d_gx0, d_w_in, d_w_rec, d_b_ih, d_b_hh = _weight_grads(cell, r, sv, masks, w_rec.shape[0])
        d_peep, d_w_hr, dln = _extra_grads(cell, r, sv, peep, w_hr, ln)
        dln = [d.to(p.dtype) if p.numel() else None for d, p in zip(dln, ln)]
        return (
            d_gx0.to(ctx.dtypes[0]), d_w_in.to(w_in.dtype), d_w_rec.to(w_rec.dtype),
            d_b_ih.to(ctx.dtypes[1]), d_b_hh.to(ctx.dtypes[2]),
            d_peep.to(peep.dtype) if peep.numel() else None,
            d_w_hr.to(w_hr.dtype) if w_hr.numel() else None, *dln, None, None, None,
        )  # fmt: skip
