"""Cell variants: forward+backward time at (T, B, I, H) = (100, 64, 128, 256).

    python -m benchmarks.variants            # writes benchmarks/results/variants.{json,md}

Each row is an LSTM layer (IndRNN: an IndRNN layer, against the plain Elman kernel; the
GRU row against the plain GRU kernel) with one variant, in training mode, timed
interleaved with the plain rnnlab kernel (``fused=False``, tanh) and a naive per-step
autograd loop of the same variant (``benchmarks.run.naive_loop`` style: x[:, t]
indexing, a matmul per step, variant_cells' step math, the same dropout/zoneout masks).
The ``path`` column is the path that ran the variant (``RecurrentLayer.path()``). Median of ``--repeats`` after
one warm-up round; the machine is shared, so compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from rnnlab.nn import RecurrentLayer
from rnnlab.nn.variant_cells import variant_step
from rnnlab.nn.variant_masks import draw_masks
from rnnlab.nn.variants import Variant

SHAPE = (100, 64, 128, 256)
RESULTS = Path(__file__).parent / "results"
ROWS = {
    "indrnn": ("indrnn", {}, 0),
    "projection (P=128)": ("lstm", {}, 128),
    "peephole": ("lstm", {"peephole": True}, 0),
    "cifg": ("lstm", {"lstm_variant": "cifg"}, 0),
    "layer_norm": ("lstm", {"layer_norm": True}, 0),
    "recurrent_dropout": ("lstm", {"recurrent_dropout": 0.25}, 0),
    "zoneout": ("lstm", {"zoneout": 0.1}, 0),
    "recurrent_dropout (gru)": ("gru", {"recurrent_dropout": 0.25}, 0),
}


def naive(layer: RecurrentLayer, x: torch.Tensor) -> torch.Tensor:
    """The variant as a plain autograd loop (training mode: its masks included)."""
    w = layer.step_weights(0)
    variant = layer.variant
    extra = layer.variant_params[0] if layer.variant_params is not None else None
    w_hr = layer.projection(0) if layer.proj_size else None
    h = x.new_zeros(x.shape[0], w[1].shape[-1] if w[1].dim() == 2 else layer.hidden_size)
    state = (h, x.new_zeros(x.shape[0], layer.hidden_size)) if layer.cell == "lstm" else (h,)
    drop, kh, kc = draw_masks(layer.cell, variant, h, layer.hidden_size, x.shape[1], True)
    outs = []
    for t in range(x.shape[1]):
        gx = x[:, t] @ w[0].T
        h_in = state[0] * drop if drop.numel() else state[0]
        new = variant_step(layer.cell, layer.acts, variant, gx, h_in, state, w, extra, w_hr)
        if variant.zoneout:
            keeps = [k[t] for k in (kh, kc) if k.numel()]
            new = tuple(torch.where(k, s, n) for k, n, s in zip(keeps, new, state))
        state = new
        outs.append(state[0])
    return torch.stack(outs, 1)


def fwdbwd(fn, x) -> float:
    start = time.perf_counter()
    fn(x).sum().backward()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    steps, batch, inp, hidden = SHAPE
    x = torch.randn(batch, steps, inp, requires_grad=True)
    records = []
    for name, (cell, opts, proj) in ROWS.items():
        torch.manual_seed(0)
        base_cell = "rnn" if cell == "indrnn" else cell
        plain = RecurrentLayer(base_cell, inp, hidden, fused=False)
        layer = RecurrentLayer(
            cell, inp, hidden, proj_size=proj, variant=Variant(**opts), fused=False
        )
        impls = {
            "plain": lambda x, m=plain: m(x)[0],
            "variant": lambda x, m=layer: m(x)[0],
            "naive": lambda x, m=layer: naive(m, x),
        }
        times = {k: [] for k in impls}
        for _ in range(args.repeats + 1):
            for k, fn in impls.items():
                times[k].append(fwdbwd(fn, x))
        med = {k: statistics.median(v[1:]) for k, v in times.items()}
        rec = {
            "variant": name, "cell": cell, "path": layer.path(), "shape": list(SHAPE),
            "fwdbwd_ms": round(med["variant"], 1), "plain_kernel_ms": round(med["plain"], 1),
            "naive_ms": round(med["naive"], 1),
            "vs_plain_kernel": round(med["variant"] / med["plain"], 2),
            "speedup_vs_naive": round(med["naive"] / med["variant"], 2),
        }  # fmt: skip
        records.append(rec)
        print(json.dumps(rec), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "variants.json").write_text(json.dumps(records, indent=1) + "\n")
    lines = [
        f"`python -m benchmarks.variants --repeats {args.repeats}` — torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; fwd+bwd of out.sum() at (T, B, I, H) = {SHAPE}; "
        f"load average at the end {os.getloadavg()[0]:.1f} (a shared machine: compare ratios).",
        "",
        "| variant | path | fwd+bwd ms | plain kernel ms | × plain kernel | naive loop ms | speed-up vs naive |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in records:
        lines.append(
            f"| {r['variant']} | {r['path']} | {r['fwdbwd_ms']} | {r['plain_kernel_ms']} | "
            f"{r['vs_plain_kernel']}× | {r['naive_ms']} | {r['speedup_vs_naive']}× |"
        )
    (RESULTS / "variants.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
