"""The Triton backend of ``GatedFeedback``: host side of triton_feedback_kernels.py.

Same contract as gated_feedback_torch_ops.forward/backward (and gated_feedback.cpp):
forward -> out (T,B,H), hs, cs (L,T+1,B,H), pre, cand, g; backward -> d_gx0, d_w_in,
d_b_in, d_w_rec, d_b_rec. Per step: ONE batched product S = h_{t-1} w_rec^T for all
source layers, per layer j >= 1 one product for its input, and per layer ONE Triton
kernel for the reset gates, the gated candidate and the cell math (the products'
epilogue). The backward runs per layer and step one Triton kernel for the cell
derivatives and the products of the C++ kernel (feedback, layer input, own gates,
reset gates), with the weight gradients as large products after the loop. States,
saved tensors and gradients accumulate in float32; products take the input's dtype.
On CUDA each loop is captured once per shape in a CUDA graph (triton_graphs.py).
"""

from __future__ import annotations

import torch

from rnnlab.nn.activations import KERNEL_CODES
from rnnlab.nn.kernels import triton_feedback_kernels as K
from rnnlab.nn.kernels.backend import CELL_CODES
from rnnlab.nn.kernels.gated_feedback_torch_ops import _weight_grads, layout
from rnnlab.nn.kernels.triton_graphs import run_steps

F32 = torch.float32


def _tile(batch: int, hidden: int) -> tuple[tuple[int, int], dict[str, int]]:
    bb, bh = min(32, triton_pow2(batch)), min(64, triton_pow2(hidden))
    return (-(-batch // bb), -(-hidden // bh)), {"BB": bb, "BH": bh}


def triton_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _consts(cell, acts, layers=None):
    act, act_c, gate = (KERNEL_CODES[a] for a in acts)
    g = layout(cell, 1, 1)["G"]
    out = dict(G=g, CELL=CELL_CODES[cell], ACT=act, ACT_C=act_c, GATE=gate)
    return out if layers is None else {**out, "L": layers}


def forward(cell, acts, gx0, w_in, b_in, w_rec, b_rec, drop, lengths, save):
    """-> out (T,B,H), hs, cs (L,T+1,B,H), pre, cand, g (as the torch-ops backend)."""
    steps, batch, gw = gx0.shape
    layers, n, h = w_rec.shape
    dt = gx0.dtype
    d = layout(cell, h, layers)
    lstm, gru = cell == "lstm", cell == "gru"
    hs = gx0.new_zeros(layers, steps + 1, batch, h, dtype=F32)
    cs = torch.zeros_like(hs) if lstm else hs[:, :1]
    pre = gx0.new_empty(layers, steps, batch, d["GH"], dtype=F32) if save else hs[:, :1]
    cand = gx0.new_empty(layers, steps, batch, h, dtype=F32) if save and gru else hs[:, :1]
    g_all = gx0.new_empty(layers, steps, batch, layers, dtype=F32) if save else hs[:, :1]
    grid, tile = _tile(batch, h)
    consts = {**_consts(cell, acts, layers), "SAVE": save, **tile}
    tensors = {
        "gx0": gx0.contiguous(), "w_in": w_in.to(dt).contiguous(), "b_in": b_in.to(dt),
        "w_rec_t": w_rec.to(dt).transpose(1, 2), "b_rec": b_rec.to(F32).contiguous(),
        "drop": drop.to(dt), "len": lengths,
    }  # fmt: skip
    outputs = {"hs": hs, "cs": cs, "pre": pre, "cand": cand, "g": g_all}

    def launch(ts):
        ts["hs"][:, 0].zero_()
        ts["cs"][:, 0].zero_()
        s = ts["gx0"].new_empty(layers, batch, n)
        for t in range(steps):
            torch.bmm(ts["hs"][:, t].to(dt), ts["w_rec_t"], out=s)
            for j in range(layers):
                if j == 0:
                    a = ts["gx0"][t]
                else:
                    u = ts["hs"][j - 1, t + 1].to(dt)
                    u = u * ts["drop"][j - 1, t] if drop.numel() else u
                    a = torch.addmm(ts["b_in"][j - 1], u, ts["w_in"][j - 1].t())
                K.gf_fwd_layer[grid](
                    s, a, ts["b_rec"], ts["hs"][j, t], ts["cs"][j, t if lstm else 0],
                    ts["hs"][j, t + 1], ts["cs"][j, t + 1 if lstm else 0],
                    ts["pre"][j, t if save else 0], ts["cand"][j, t if save and gru else 0],
                    ts["g"][j, t if save else 0], ts["len"], t, j, batch, h, n, gw, **consts,
                )  # fmt: skip

    key = ("gf_fwd", steps, batch, h, dt, drop.numel() > 0, *sorted(consts.items()))
    res = run_steps(key, launch, tensors, outputs, ())
    valid = (torch.arange(steps, device=gx0.device)[:, None] < lengths[None, :]).unsqueeze(-1)
    out = (res["hs"][-1, 1:] * valid).to(dt)
    empty = gx0.new_empty(0)
    keep = [res[k] if k != "cand" or gru else empty for k in ("pre", "cand", "g")]
    if not save:
        keep = [empty] * 3
    return out, res["hs"], res["cs"] if lstm else empty, *keep


def backward(cell, acts, grad_out, grad_h, grad_c, w_in, w_rec, drop, hs, cs, pre, cand_all,
             g_all, lengths):  # fmt: skip
    """-> d_gx0 (T,B,GW), d_w_in, d_b_in, d_w_rec, d_b_rec (as the torch-ops backend)."""
    layers, steps1, batch, h = hs.shape
    steps = steps1 - 1
    d = layout(cell, h, layers)
    gh_, gw, kc = d["GH"], d["GW"], d["kc"]
    lstm, gru = cell == "lstm", cell == "gru"
    fb = torch.stack(
        [
            torch.cat(
                [w_rec[i, d["secU"] + j * h : d["secU"] + (j + 1) * h] for i in range(layers)], 1
            )
            for j in range(layers)
        ]
    ).float()  # F_j = [U^{0->j} | ... | U^{L-1->j}]  (L, H, L*H)
    ghm = torch.cat([w_rec[i, d["secG"] :] for i in range(layers)], 1).float()
    grid, tile = _tile(batch, h)
    consts = {**_consts(cell, acts), **tile}
    rem = (lengths[None, :] - torch.arange(steps, device=hs.device)[:, None]).contiguous()
    dd = hs.new_zeros(layers, steps, batch, gw)
    tensors = {
        "go": grad_out.to(F32).contiguous(), "dh0": grad_h.to(F32, copy=True).contiguous(),
        "dc": (grad_c.to(F32, copy=True) if lstm else hs[:, 0].clone()).contiguous(),
        "w_in": w_in.float(), "w_gates": w_rec[:, : d["NG"]].float(), "fb": fb, "ghm": ghm,
        "drop": drop.float(), "hs": hs, "cs": cs if lstm else hs, "pre": pre,
        "cand": cand_all if gru else hs, "g": g_all, "rem": rem,
    }  # fmt: skip
    outputs = {"dd": dd, "dcand": hs.new_zeros(layers, steps, batch, h)}

    def launch(ts):
        dh, zero = ts["dh0"], torch.zeros_like(ts["dh0"][0])
        for t in range(steps - 1, -1, -1):
            dhp = torch.zeros_like(dh)
            for j in range(layers - 1, -1, -1):
                K.gf_bwd_cell[grid](
                    ts["go"][t] if j == layers - 1 else zero, dh[j], ts["dc"][j], ts["pre"][j, t],
                    ts["cs"][j, t + 1], ts["cs"][j, t], ts["hs"][j, t],
                    ts["cand"][j, t if gru else 0], ts["rem"][t], ts["dd"][j, t],
                    ts["dcand"][j, t], dhp[j], batch, h, gw, **consts,
                )  # fmt: skip
                qv = (ts["dcand"][j, t] @ ts["fb"][j]).view(batch, layers, h)
                g = ts["g"][j, t]
                dg = (qv * ts["hs"][:, t].transpose(0, 1)).sum(-1)  # (B, L)
                ts["dd"][j, t, :, gh_:] = dg * g * (1.0 - g)
                dhp += (qv * g.unsqueeze(-1)).transpose(0, 1)
                if j > 0:
                    du = ts["dd"][j, t] @ ts["w_in"][j - 1]
                    dh[j - 1] += du * ts["drop"][j - 1, t] if drop.numel() else du
            dx = ts["dd"][:, t]
            if d["NG"]:
                own = torch.cat([dx[..., : kc * h], dx[..., (kc + 1) * h : gh_]], -1)
                dhp += torch.bmm(own, ts["w_gates"])
            das = dx[..., gh_:].permute(1, 0, 2).reshape(batch, layers * layers)
            dhp += (das @ ts["ghm"]).view(batch, layers, h).transpose(0, 1)
            dh = dhp

    key = ("gf_bwd", steps, batch, h, layers, drop.numel() > 0, *sorted(consts.items()))
    res = run_steps(key, launch, tensors, outputs, ())
    return weight_grads(cell, res["dd"], res["dcand"], hs, g_all, drop.float(), w_in, w_rec)


def weight_grads(cell, dd, dcand_all, hs, g_all, drop, w_in, w_rec):
    """The large products after the loop: gated_feedback_torch_ops' own (for Elman and
    LSTM the candidate's gradient is dd's candidate block, which is what the kernel
    stored in ``dcand_all``), cast to the weights' dtypes."""
    layers, _, _, h = hs.shape
    d_w_in, d_b_in, d_w_rec, d_b_rec = _weight_grads(
        cell, layout(cell, h, layers), hs, drop, dd, dcand_all, g_all
    )
    return dd[0], d_w_in.to(w_in.dtype), d_b_in, d_w_rec.to(w_rec.dtype), d_b_rec
