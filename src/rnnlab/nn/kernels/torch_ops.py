"""The torch-ops backend (``RNNLAB_KERNEL=python``): recurrence.cpp's algorithm in torch ops.

The production path on any device and dtype the C++ kernel does not take (CUDA, dtypes
other than float32/float64, and CPU when no compiler is available); not a test oracle. It is a per-step loop of a dozen small torch ops, so on CPU it is slower
than the C++ kernel, but it keeps the structure that matters: no autograd graph per
step, nothing saved but pre-activations (and LSTM cells / GRU ``U_n h + b_n``), and the
weight gradient as one matrix product after the loop.
"""

from __future__ import annotations

import torch

from rnnlab.nn.activations import ACTIVATIONS, GATE_ACTIVATIONS, get_derivative
from rnnlab.nn.masks import step_mask_or_none

Acts = tuple[str, str, str]  # (phi, phi_c, sigma) names


def resolve(acts: Acts):
    """(phi, phi_c, sigma, phi', phi_c', sigma') for the three activation names."""
    phi, phi_c, sigma = acts
    return (
        ACTIVATIONS[phi],
        ACTIVATIONS[phi_c],
        GATE_ACTIVATIONS[sigma],
        get_derivative(phi),
        get_derivative(phi_c),
        get_derivative(sigma),
    )


def forward(
    cell: str,
    acts: Acts,
    gx: torch.Tensor,
    w_hh: torch.Tensor,
    b_hh: torch.Tensor,
    h0: torch.Tensor,
    c0: torch.Tensor | None,
    lengths: torch.Tensor,
    save: bool,
) -> tuple[torch.Tensor, ...]:
    """gx (B, T, G*H) -> out, h_T, c_T, pre, c_all, hn_all (as the C++ kernel)."""
    phi, phi_c, sig = resolve(acts)[:3]
    batch, steps, _ = gx.shape
    hidden = w_hh.shape[-1]
    mask = step_mask_or_none(lengths, steps, gx.device)
    h, c = h0, c0
    outs, pres, cs, hns = [], [], [], []
    elementwise = cell == "indrnn"  # w_hh is the (H,) vector u: u * h, no matmul
    w_t = w_hh if elementwise else w_hh.t()
    for t, x_t in enumerate(gx.unbind(1)):
        gh = torch.addcmul(b_hh, h, w_hh) if elementwise else torch.addmm(b_hh, h, w_t)
        if cell in ("rnn", "indrnn"):
            pre = x_t + gh
            h_new, c_new = phi(pre), None
        elif cell == "lstm":
            pre = x_t + gh
            i, f, g, o = pre.chunk(4, dim=1)
            c_new = sig(f) * c + sig(i) * phi(g)
            h_new = sig(o) * phi_c(c_new)
        else:
            hn = gh[:, 2 * hidden :]
            rz = x_t[:, : 2 * hidden] + gh[:, : 2 * hidden]
            r, z = sig(rz).chunk(2, dim=1)
            an = x_t[:, 2 * hidden :] + r * hn
            pre = torch.cat([rz, an], dim=1)
            h_new, c_new = (1.0 - z) * phi(an) + z * h, None
            hns.append(hn)
        if mask is not None:
            m = mask[t]
            h = torch.where(m, h_new, h)
            c = torch.where(m, c_new, c) if c_new is not None else None
            outs.append(h_new * m)
        else:
            h, c = h_new, c_new
            outs.append(h_new)
        if save:
            pres.append(pre)
            if cell == "lstm":
                cs.append(c)
    empty = gx.new_empty(0)
    out = torch.stack(outs, 1)
    pre = torch.stack(pres, 1) if save else empty
    c_all = torch.stack(cs, 1) if save and cell == "lstm" else empty
    hn_all = torch.stack(hns, 1) if save and cell == "gru" else empty
    return out, h, c if c is not None else empty, pre, c_all, hn_all


def _step_grads(
    cell: str,
    fns: tuple,
    d: torch.Tensor,
    t: int,
    saved: tuple[torch.Tensor, ...],
    h_prev: torch.Tensor,
    dc: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """One step of the cell's backward: ``d = dL/dh_t`` -> (dg, dx, direct, dc_prev).

    ``dg``: dL/d(W_hh h_{t-1} + b_hh) per gate; ``dx``: dL/dgx_t (differs from ``dg``
    for the GRU only, whose candidate's recurrent part is scaled by ``r``); ``direct``:
    the GRU's dL/dh_{t-1} not through W_hh (``d * z``), else None; ``dc_prev``: the
    LSTM's dL/dc_{t-1}, else None. ``saved``: (pre, c_all, c0, hn_all) of the forward.
    """
    phi, phi_c, sig, dphi, dphi_c, dsig = fns
    pre, c_all, c0, hn_all = saved
    p = pre[:, t]
    if cell in ("rnn", "indrnn"):
        dg = d * dphi(p)
        return dg, dg, None, None
    if cell == "lstm":
        c_t = c_all[:, t]
        c_prev = c_all[:, t - 1] if t else c0
        ai, af, ag, ao = p.chunk(4, dim=1)
        tc = phi_c(c_t)
        dct = dc + d * sig(ao) * dphi_c(c_t)
        dg = torch.cat(
            [
                dct * phi(ag) * dsig(ai),
                dct * c_prev * dsig(af),
                dct * sig(ai) * dphi(ag),
                d * tc * dsig(ao),
            ],
            dim=1,
        )
        return dg, dg, None, dct * sig(af)
    ar, az, an = p.chunk(3, dim=1)
    r, z = sig(ar), sig(az)
    dan = d * (1.0 - z) * dphi(an)
    dar = dan * hn_all[:, t] * dsig(ar)
    daz = d * (h_prev - phi(an)) * dsig(az)
    dx = torch.cat([dar, daz, dan], dim=1)
    dg = torch.cat([dar, daz, dan * r], dim=1)
    return dg, dx, d * z, None


def _weight_grads(
    cell: str, dgh: torch.Tensor, h0: torch.Tensor, out: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """dW_hh and db_hh from every step's ``dg`` (B, T, G*H), as one product after the
    loop: ``dW = sum_t dg_t^T h_{t-1}`` (IndRNN: ``sum_t dg_t * h_{t-1}``, the vector u)."""
    hidden = out.shape[-1]
    h_prev_all = torch.cat([h0.unsqueeze(1), out[:, :-1]], dim=1)
    gates = dgh.shape[-1]
    if cell == "indrnn":
        dw = (dgh * h_prev_all).sum((0, 1))
    else:
        dw = dgh.reshape(-1, gates).t() @ h_prev_all.reshape(-1, hidden)
    db = dgh.reshape(-1, gates).sum(0)
    return dw, db


def backward(
    cell: str,
    acts: Acts,
    grad_out: torch.Tensor,
    grad_h: torch.Tensor,
    grad_c: torch.Tensor | None,
    w_hh: torch.Tensor,
    h0: torch.Tensor,
    c0: torch.Tensor | None,
    out: torch.Tensor,
    pre: torch.Tensor,
    c_all: torch.Tensor,
    hn_all: torch.Tensor,
    lengths: torch.Tensor,
) -> tuple[torch.Tensor, ...]:
    """-> dgx, dW_hh, db_hh, dh0, dc0 (dc0 empty unless LSTM).

    Steps run from T-1 down to 0 (:func:`_step_grads`); a padded step passes ``dh`` and
    ``dc`` through unchanged and contributes no gradient; ``dh_{t-1} = direct + dg W_hh``.
    """
    fns = resolve(acts)
    steps = out.shape[1]
    mask = step_mask_or_none(lengths, steps, out.device)
    dh, dc = grad_h, grad_c
    dghs: list[torch.Tensor] = [None] * steps  # type: ignore[list-item]
    dgxs: list[torch.Tensor] = [None] * steps  # type: ignore[list-item]
    go = grad_out.unbind(1)
    hs = out.unbind(1)
    saved = (pre, c_all, c0, hn_all)
    for t in range(steps - 1, -1, -1):
        d = dh + (go[t] if mask is None else go[t] * mask[t])  # padded outputs are constants
        h_prev = hs[t - 1] if t else h0
        dg, dx, direct, dc_new = _step_grads(cell, fns, d, t, saved, h_prev, dc)
        if mask is not None:
            m = mask[t]
            dg, dx = dg * m, dx * m
            carry = torch.where(m, direct, d) if direct is not None else d * ~m
            if cell == "lstm":
                dc = torch.where(m, dc_new, dc)
        else:
            carry = direct
            if cell == "lstm":
                dc = dc_new
        if cell == "indrnn":
            dh = dg * w_hh if carry is None else torch.addcmul(carry, dg, w_hh)
        else:
            dh = dg @ w_hh if carry is None else torch.addmm(carry, dg, w_hh)
        dghs[t], dgxs[t] = dg, dx
    dgh = torch.stack(dghs, 1)
    dgx = torch.stack(dgxs, 1) if cell == "gru" else dgh
    dw, db = _weight_grads(cell, dgh, h0, out)
    return dgx, dw, db, dh, dc if dc is not None else out.new_empty(0)
