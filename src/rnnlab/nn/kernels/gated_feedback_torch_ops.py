"""The gated-feedback torch-ops backend: gated_feedback.cpp's algorithm in torch ops.

The production path (``RNNLAB_KERNEL=python``) on any device and dtype the C++ kernel does
not take (CUDA, other dtypes, CPU without a compiler); not a test oracle. The
layouts, the saved tensors and the order of the products are those of the C++ kernel
(see its header comment), so the two are tested against each other and against the
autograd loop; the per-step work is a short list of torch ops with no autograd graph.
"""

from __future__ import annotations

import torch

from rnnlab.nn.cells import CANDIDATE_BLOCK, NUM_GATES
from rnnlab.nn.kernels.torch_ops import Acts, resolve
from rnnlab.nn.masks import step_mask_or_none


def layout(cell: str, hidden: int, layers: int) -> dict[str, int]:
    """Row offsets of w_rec and widths, as ``struct Dims`` in gated_feedback.cpp."""
    g = NUM_GATES[cell]
    ng = (g - 1) * hidden
    return {
        "G": g,
        "GH": g * hidden,
        "GW": g * hidden + layers,
        "NG": ng,
        "secU": ng,
        "secG": ng + layers * hidden,
        "N": ng + layers * hidden + layers * layers,
        "kc": CANDIDATE_BLOCK[cell],
    }


def _own_rec(cell: str, own: torch.Tensor, cand: torch.Tensor, hidden: int) -> torch.Tensor:
    """(B, G*H) recurrent term in gate order: own-layer gates with the candidate in place."""
    if cell == "rnn":
        return cand
    return torch.cat([own[:, : 2 * hidden], cand, own[:, 2 * hidden :]], dim=1)


def forward(
    cell: str,
    acts: Acts,
    gx0: torch.Tensor,
    w_in: torch.Tensor,
    b_in: torch.Tensor,
    w_rec: torch.Tensor,
    b_rec: torch.Tensor,
    drop: torch.Tensor,
    lengths: torch.Tensor,
    save: bool,
) -> tuple[torch.Tensor, ...]:
    """-> out (T,B,H), hs (L,T+1,B,H), c (L,T+1,B,H), pre, cand, g (as the C++ kernel)."""
    phi, phi_c, sig = resolve(acts)[:3]
    steps, batch, _ = gx0.shape
    layers, _, hidden = w_rec.shape
    d = layout(cell, hidden, layers)
    gh_, h = d["GH"], hidden
    valid = step_mask_or_none(lengths, steps, gx0.device)
    hs = gx0.new_zeros(layers, steps + 1, batch, h)
    cs = gx0.new_zeros(layers, steps + 1, batch, h) if cell == "lstm" else gx0.new_empty(0)
    pres, cands, gates = [], [], []
    w_rec_t = w_rec.transpose(1, 2)
    for t in range(steps):
        s = torch.bmm(hs[:, t], w_rec_t)  # (L, B, N): one product per source layer
        reset_h = s[:, :, d["secG"] :].sum(0)  # (B, L*L), summed over sources
        for j in range(layers):
            if j == 0:
                a = gx0[t]
            else:
                u = hs[j - 1, t + 1] * drop[j - 1, t] if drop.numel() else hs[j - 1, t + 1]
                a = torch.addmm(b_in[j - 1], u, w_in[j - 1].t())
            g = torch.sigmoid(a[:, gh_:] + reset_h[:, j * layers : (j + 1) * layers])
            feedback = s[:, :, d["secU"] + j * h : d["secU"] + (j + 1) * h]  # (L, B, H)
            cand = (g.t().unsqueeze(-1) * feedback).sum(0)
            rec = _own_rec(cell, s[j, :, : d["NG"]], cand, h) + b_rec[j]
            h_old = hs[j, t]
            c_new = None
            if cell == "rnn":
                pre = a[:, :gh_] + rec
                h_new = phi(pre)
            elif cell == "lstm":
                pre = a[:, :gh_] + rec
                i, f, gg, o = pre.chunk(4, dim=1)
                c_new = sig(f) * cs[j, t] + sig(i) * phi(gg)
                h_new = sig(o) * phi_c(c_new)
            else:
                hn = rec[:, 2 * h :]
                rz = a[:, : 2 * h] + rec[:, : 2 * h]
                r, z = sig(rz).chunk(2, dim=1)
                an = a[:, 2 * h : gh_] + r * hn
                pre = torch.cat([rz, an], dim=1)
                h_new = (1.0 - z) * phi(an) + z * h_old
                if save:
                    cands.append(hn)
            if valid is not None:
                h_new = torch.where(valid[t], h_new, h_old)
                if c_new is not None:
                    c_new = torch.where(valid[t], c_new, cs[j, t])
            hs[j, t + 1] = h_new
            if c_new is not None:
                cs[j, t + 1] = c_new
            if save:
                pres.append(pre)
                gates.append(g)
    out = hs[-1, 1:] if valid is None else hs[-1, 1:] * valid
    empty = gx0.new_empty(0)

    def stack(xs: list[torch.Tensor]) -> torch.Tensor:
        """Per-step list (t-major, layer inner) -> (L, T, B, X)."""
        return torch.stack(xs, 0).view(steps, layers, *xs[0].shape).transpose(0, 1)

    pre_all = stack(pres) if save else empty
    cand_all = stack(cands) if save and cell == "gru" else empty
    g_all = stack(gates) if save else empty
    return out.clone(), hs, cs, pre_all, cand_all, g_all


def _feedback_weights(
    w_rec: torch.Tensor, d: dict[str, int], layers: int, h: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(fb, ghm, w_gates) of ``w_rec`` (L, N, H): ``fb[j] = [U^{0->j} | ... | U^{L-1->j}]``
    (L, H, L*H), the stacked reset-gate weights ``ghm`` (L*L, L*H) and the own-layer gate
    rows ``w_gates`` (L, NG, H)."""
    sec_u = d["secU"]
    fb = torch.stack(
        [
            torch.cat([w_rec[i, sec_u + j * h : sec_u + (j + 1) * h] for i in range(layers)], 1)
            for j in range(layers)
        ]
    )
    ghm = torch.cat([w_rec[i, d["secG"] :] for i in range(layers)], 1)
    return fb, ghm, w_rec[:, : d["NG"]]


def _cell_grads(
    cell: str,
    fns: tuple,
    dhj: torch.Tensor,
    at: tuple[int, int],
    saved: tuple[torch.Tensor, ...],
    dc: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Layer j's cell at step t backward, ``dhj = dL/dh^j_t`` -> (dx, dcand, direct, dc_prev).

    ``dx``: dL/d(gate pre-activations) (B, G*H); ``dcand``: dL/d(the feedback
    candidate's recurrent term); ``direct``: the GRU's dL/dh^j_{t-1} not through the
    weights (``dhj * z``), else None; ``dc_prev``: the LSTM's dL/dc^j_{t-1}, else None.
    ``at``: (j, t); ``saved``: (hs, cs, pre, cand_all) of the forward.
    """
    phi, phi_c, sig, dphi, dphi_c, dsig = fns
    hs, cs, pre, cand_all = saved
    j, t = at
    h = hs.shape[-1]
    p = pre[j, t]
    if cell == "rnn":
        dx = dhj * dphi(p)
        return dx, dx, None, None
    if cell == "lstm":
        c_t, c_prev = cs[j, t + 1], cs[j, t]
        ai, af, ag, ao = p.chunk(4, dim=1)
        dct = dc[j] + dhj * sig(ao) * dphi_c(c_t)
        dx = torch.cat(
            [
                dct * phi(ag) * dsig(ai),
                dct * c_prev * dsig(af),
                dct * sig(ai) * dphi(ag),
                dhj * phi_c(c_t) * dsig(ao),
            ],
            dim=1,
        )
        return dx, dx[:, 2 * h : 3 * h], None, dct * sig(af)
    ar, az, an = p.chunk(3, dim=1)
    r, z = sig(ar), sig(az)
    dan = dhj * (1.0 - z) * dphi(an)
    dar = dan * cand_all[j, t] * dsig(ar)
    daz = dhj * (hs[j, t] - phi(an)) * dsig(az)
    dx = torch.cat([dar, daz, dan], dim=1)
    return dx, dan * r, dhj * z, None


def _weight_grads(
    cell: str,
    d: dict[str, int],
    hs: torch.Tensor,
    drop: torch.Tensor,
    dd: torch.Tensor,
    dcand_all: torch.Tensor | None,
    g_all: torch.Tensor,
) -> tuple[torch.Tensor, ...]:
    """d_w_in, d_b_in, d_w_rec, d_b_rec from every step's ``dd = [d gx | d a]``
    (L, T, B, GW): one product per weight block over all steps and the batch."""
    layers, steps1, batch, h = hs.shape
    steps = steps1 - 1
    gh_, gw, kc = d["GH"], d["GW"], d["kc"]
    tb = steps * batch
    d_w_in = hs.new_empty(layers - 1, gw, h)
    d_b_in = hs.new_empty(layers - 1, gw)
    for j in range(1, layers):
        u = hs[j - 1, 1:].reshape(tb, h)
        if drop.numel():
            u = u * drop[j - 1].reshape(tb, h)
        dj = dd[j].reshape(tb, gw)
        d_w_in[j - 1] = dj.t() @ u
        d_b_in[j - 1] = dj.sum(0)
    d_w_rec = hs.new_empty(layers, d["N"], h)
    d_b_rec = hs.new_empty(layers, gh_)
    for i in range(layers):
        hprev = hs[i, :steps].reshape(tb, h)
        di = dd[i].reshape(tb, gw)
        own = torch.cat([di[:, : kc * h], di[:, (kc + 1) * h : gh_]], 1)
        d_w_rec[i, : d["NG"]] = own.t() @ hprev
        for j in range(layers):
            dj = dd[j].reshape(tb, gw)
            dcand = dcand_all[j].reshape(tb, h) if cell == "gru" else dj[:, kc * h : (kc + 1) * h]
            gji = g_all[j].reshape(tb, layers)[:, i : i + 1]
            d_w_rec[i, d["secU"] + j * h : d["secU"] + (j + 1) * h] = dcand.t() @ (hprev * gji)
            d_w_rec[i, d["secG"] + j * layers : d["secG"] + (j + 1) * layers] = (
                dj[:, gh_:].t() @ hprev
            )
        d_b_rec[i] = di[:, :gh_].sum(0)
        if cell == "gru":
            d_b_rec[i, kc * h : (kc + 1) * h] = dcand_all[i].reshape(tb, h).sum(0)
    return d_w_in, d_b_in, d_w_rec, d_b_rec


def backward(
    cell: str,
    acts: Acts,
    grad_out: torch.Tensor,
    grad_h: torch.Tensor,
    grad_c: torch.Tensor,
    w_in: torch.Tensor,
    w_rec: torch.Tensor,
    drop: torch.Tensor,
    hs: torch.Tensor,
    cs: torch.Tensor,
    pre: torch.Tensor,
    cand_all: torch.Tensor,
    g_all: torch.Tensor,
    lengths: torch.Tensor,
) -> tuple[torch.Tensor, ...]:
    """-> d_gx0 (T,B,GW), d_w_in, d_b_in, d_w_rec, d_b_rec (as the C++ kernel).

    Steps from T-1 down to 0, layers from the top down (:func:`_cell_grads`); the
    gradient into layer j-1's output goes through ``w_in``; the gradients into every
    h_{t-1} (own gates, feedback candidates, reset gates) are summed in ``dhp``; the
    weight gradients are formed after the loop (:func:`_weight_grads`).
    """
    fns = resolve(acts)
    layers, steps1, batch, h = hs.shape
    steps = steps1 - 1
    d = layout(cell, h, layers)
    gh_, gw, kc, lh = d["GH"], d["GW"], d["kc"], layers * h
    valid = step_mask_or_none(lengths, steps, hs.device)
    fb, ghm, w_gates = _feedback_weights(w_rec, d, layers, h)
    dh = grad_h.permute(1, 0, 2).reshape(batch, lh).clone()  # d h^j_t, all layers
    dc = grad_c.clone() if cell == "lstm" else None
    dd = hs.new_zeros(layers, steps, batch, gw)  # [d gx | d a] per layer and step
    dcand_all = hs.new_zeros(layers, steps, batch, h) if cell == "gru" else None
    saved = (hs, cs, pre, cand_all)
    for t in range(steps - 1, -1, -1):
        m = valid[t] if valid is not None else None
        dhp = hs.new_zeros(batch, lh)
        go = grad_out[t] if m is None else grad_out[t] * m
        dh[:, (layers - 1) * h :] += go
        dgate, das = [], []
        for j in range(layers - 1, -1, -1):
            dhj = dh[:, j * h : (j + 1) * h]
            dx, dcand, direct, dc_new = _cell_grads(cell, fns, dhj, (j, t), saved, dc)
            if m is not None:
                dx, dcand = dx * m, dcand * m
                carry = torch.where(m, direct, dhj) if direct is not None else dhj * ~m
                if dc is not None:
                    dc[j] = torch.where(m, dc_new, dc[j])
            else:
                carry = direct
                if dc is not None:
                    dc[j] = dc_new
            if carry is not None:
                dhp[:, j * h : (j + 1) * h] += carry
            if cell == "gru":
                dcand_all[j, t] = dcand
            q = dcand @ fb[j]  # (B, L*H): U^{i->j}^T dcand for every source i
            g = g_all[j, t]
            qv = q.view(batch, layers, h)
            dg = (qv * hs[:, t].transpose(0, 1)).sum(-1)  # (B, L)
            da = dg * g * (1.0 - g)
            dhp += (qv * g.unsqueeze(-1)).view(batch, lh)
            dd[j, t, :, :gh_] = dx
            dd[j, t, :, gh_:] = da
            das.insert(0, da)
            dgate.insert(0, torch.cat([dx[:, : kc * h], dx[:, (kc + 1) * h :]], 1))
            if j > 0:
                du = dd[j, t] @ w_in[j - 1]
                if drop.numel():
                    du = du * drop[j - 1, t]
                dh[:, (j - 1) * h : j * h] += du
        if d["NG"]:
            dhp += torch.bmm(torch.stack(dgate), w_gates).transpose(0, 1).reshape(batch, lh)
        dhp += torch.cat(das, 1) @ ghm
        dh = dhp
    return (dd[0], *_weight_grads(cell, d, hs, drop, dd, dcand_all, g_all))
