"""The Triton backend of ``Recurrence``: host side of triton_recurrence_kernels.py.

Same contract as torch_ops.forward/backward (and recurrence.cpp): the forward returns
``out, h_T, c_T, pre, c_all, hn_all`` and saves nothing else; the backward returns
``dgx, dW_hh, db_ih, db_hh, dh0, dc0``. Per step ONE kernel launch does the recurrent
product and the gate math (forward) or the dgates and ``dh_{t-1} = dG W_hh`` (backward);
after the backward loop ``dW_hh = dG^T H_prev`` and the bias gradients are one large
product / reduction each (IndRNN: an elementwise product summed).

Precision: inputs float32, bfloat16 or float16; the products accumulate in float32,
the state (h, c) and the saved pre-activations / cells are float32; ``out`` and the
returned gradients take the dtype of their input. bf16/fp16 products round their
operands to that dtype (as cuDNN does under autocast); float32 products are IEEE
unless ``torch.backends.cuda.matmul.allow_tf32`` is set.

On CUDA the T launches of a call are captured once per shape in a CUDA graph and
replayed (triton_graphs.py, ``RNNLAB_CUDA_GRAPHS=0`` turns that off).
"""

from __future__ import annotations

import torch
import triton.language as tl

from rnnlab.nn.activations import KERNEL_CODES
from rnnlab.nn.cells import NUM_GATES
from rnnlab.nn.kernels import triton_recurrence_kernels as K
from rnnlab.nn.kernels.backend import CELL_CODES, triton_interpret
from rnnlab.nn.kernels.triton_graphs import run_steps

F32 = torch.float32
TL_DTYPES = {torch.float32: tl.float32, torch.bfloat16: tl.bfloat16, torch.float16: tl.float16}


def blocks(batch: int, hidden: int) -> tuple[int, int]:
    """(BB, BH) tile: tl.dot needs every block dim >= 16 (masked past B and H)."""
    bb = 16 if batch <= 16 else 32 if batch <= 32 else 64
    bh = 16 if hidden <= 16 else 32
    return bb, bh


def precision(dtype: torch.dtype) -> str:
    """tl.dot input precision: IEEE float32 unless TF32 matmuls are allowed."""
    if dtype == F32 and not torch.backends.cuda.matmul.allow_tf32:
        return "ieee"
    return "tf32"


def operands(w_hh: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, object]:
    """W_hh as the products read it, and the operand dtype (see the kernels' doc)."""
    w = w_hh.to(dtype)
    if triton_interpret() and dtype != F32:
        w = w.to(F32)  # the interpreter's tl.dot mishandles bf16: same math in float32
    return w.contiguous(), TL_DTYPES[dtype]


def _codes(acts) -> tuple[int, int, int]:
    return tuple(KERNEL_CODES[a] for a in acts)  # type: ignore[return-value]


def _pair(x: torch.Tensor) -> list[torch.Tensor]:
    """Ping-pong float32 state buffers: a private copy of ``x`` (written) and a spare."""
    first = x.to(F32, copy=True).contiguous()
    return [first, torch.empty_like(first)]


def forward(cell, acts, gx, w_hh, b_ih, b_hh, h0, c0, lengths, save):
    """gx (B, T, G*H) without b_ih -> out, h_T, c_T, pre, c_all, hn_all (see module doc)."""
    batch, steps, gh = gx.shape
    hidden = gh // NUM_GATES[cell]
    gx = gx.contiguous()
    w, oper = operands(w_hh, gx.dtype)
    lstm, gru = cell == "lstm", cell == "gru"
    h = _pair(h0)
    c = _pair(c0) if lstm else [h[1], h[1]]
    out = torch.empty(batch, steps, hidden, device=gx.device, dtype=gx.dtype)
    empty = gx.new_empty(0, dtype=F32)
    pre = gx.new_empty(batch, steps, gh, dtype=F32) if save else empty
    c_all = gx.new_empty(batch, steps, hidden, dtype=F32) if save and lstm else empty
    hn_all = gx.new_empty(batch, steps, hidden, dtype=F32) if save and gru else empty
    bb, bh = blocks(batch, hidden)
    grid = (triton_cdiv(batch, bb), triton_cdiv(hidden, bh))
    act, act_c, gate = _codes(acts)
    b_i, b_h = b_ih.to(F32).contiguous(), b_hh.to(F32).contiguous()
    consts = dict(
        G=NUM_GATES[cell], CELL=CELL_CODES[cell], ACT=act, ACT_C=act_c, GATE=gate, SAVE=save,
        BB=bb, BH=bh, PREC=precision(gx.dtype), OPER=oper,
    )  # fmt: skip
    tensors = {"gx": gx, "w": w, "bi": b_i, "bh": b_h, "h0": h[0], "c0": c[0], "len": lengths}
    outputs = {"out": out, "pre": pre, "c_all": c_all, "hn_all": hn_all, "h1": h[1], "c1": c[1]}

    def launch(ts: dict[str, torch.Tensor]) -> None:
        hs, cs = [ts["h0"], ts["h1"]], [ts["c0"], ts["c1"]] if lstm else [ts["h1"]] * 2
        for t in range(steps):
            a, b = t % 2, (t + 1) % 2
            K.fwd_step[grid](
                ts["gx"], ts["bi"], ts["bh"], ts["w"], hs[a], cs[a], hs[b], cs[b], ts["out"],
                ts["pre"], ts["c_all"], ts["hn_all"], ts["len"], t, batch, steps, hidden,
                **consts,
            )  # fmt: skip
        ts["h_last"], ts["c_last"] = hs[steps % 2], cs[steps % 2]

    key = ("fwd", batch, steps, hidden, gx.dtype, w.dtype, *sorted(consts.items()))
    res = run_steps(key, launch, tensors, outputs, ("h_last", "c_last"))
    h_t = res["h_last"].to(h0.dtype)
    c_t = res["c_last"].to(c0.dtype) if lstm else gx.new_empty(0)
    return res["out"], h_t, c_t, res["pre"], res["c_all"], res["hn_all"]


def backward(cell, acts, grad_out, grad_h, grad_c, w_hh, h0, c0, out, pre, c_all, hn_all,
             lengths, gx_dtype):  # fmt: skip
    """-> dgx, dW_hh, db_ih, db_hh, dh0, dc0 (dc0 empty unless LSTM)."""
    batch, steps, hidden = out.shape
    gates = NUM_GATES[cell] * hidden
    lstm, gru = cell == "lstm", cell == "gru"
    w, oper = operands(w_hh, out.dtype)
    dh = _pair(grad_h)
    dc = _pair(grad_c) if lstm else [dh[1], dh[1]]
    dgh = out.new_empty(batch, steps, gates, dtype=F32)
    dgx = out.new_empty(batch, steps, gates, dtype=F32) if gru else dgh
    bb, bh = blocks(batch, hidden)
    grid = (triton_cdiv(batch, bb), triton_cdiv(hidden, bh))
    act, act_c, gate = _codes(acts)
    consts = dict(
        G=NUM_GATES[cell], CELL=CELL_CODES[cell], ACT=act, ACT_C=act_c, GATE=gate, BB=bb, BH=bh,
        PREC=precision(out.dtype), OPER=oper,
    )  # fmt: skip
    h0_, c0_ = h0.to(F32).contiguous(), (c0.to(F32).contiguous() if lstm else dh[1])
    tensors = {
        "go": grad_out.contiguous(), "dh0": dh[0], "dc0": dc[0], "w": w, "pre": pre,
        "c_all": c_all, "c0": c0_, "out": out.contiguous(), "h0": h0_, "hn": hn_all,
        "len": lengths,
    }  # fmt: skip
    outputs = {"dgh": dgh, "dgx": dgx, "dh1": dh[1], "dc1": dc[1]}

    def launch(ts: dict[str, torch.Tensor]) -> None:
        dhs, dcs = [ts["dh0"], ts["dh1"]], [ts["dc0"], ts["dc1"]] if lstm else [ts["dh1"]] * 2
        for n, t in enumerate(range(steps - 1, -1, -1)):
            a, b = n % 2, (n + 1) % 2
            K.bwd_step[grid](
                ts["go"], dhs[a], dcs[a], dhs[b], dcs[b], ts["w"], ts["pre"], ts["c_all"],
                ts["c0"], ts["out"], ts["h0"], ts["hn"], ts["len"], ts["dgh"], ts["dgx"], t,
                batch, steps, hidden, **consts,
            )  # fmt: skip
        ts["dh_last"], ts["dc_last"] = dhs[steps % 2], dcs[steps % 2]

    key = ("bwd", batch, steps, hidden, out.dtype, w.dtype, *sorted(consts.items()))
    res = run_steps(key, launch, tensors, outputs, ("dh_last", "dc_last"))
    dgh, dgx = res["dgh"], res["dgx"] if gru else res["dgh"]
    h_prev = torch.cat([h0_.unsqueeze(1), out[:, :-1].to(F32)], dim=1)
    if cell == "indrnn":
        dw = (dgh * h_prev).sum((0, 1))
    else:
        dw = dgh.reshape(-1, gates).t() @ h_prev.reshape(-1, hidden)
    db = dgh.sum((0, 1))
    db_ih = dgx.sum((0, 1))
    dc0 = res["dc_last"].to(c0.dtype) if lstm else out.new_empty(0)
    return (
        dgx.to(gx_dtype), dw.to(w_hh.dtype), db_ih, db, res["dh_last"].to(h0.dtype), dc0,
    )  # fmt: skip


def triton_cdiv(a: int, b: int) -> int:
    return -(-a // b)
