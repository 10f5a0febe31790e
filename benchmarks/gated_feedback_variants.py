"""Cell variants inside gated feedback: the variant kernel against the plain kernel and
the variant loop.

    python -m benchmarks.gated_feedback_variants   # (make bench runs it)
    # writes benchmarks/results/gated_feedback_variants.{json,md}

A 2-layer gated-feedback stack at (T, B, I, H) = (100, 64, 128, 256) (the shape of
benchmarks/variants.py and of #14's targets), training mode,
forward+backward of out.sum(). Each row is one variant (LSTM unless named): its stack on
the path it runs by default (the gated-feedback variant kernel,
nn/kernels/gated_feedback_variants*), timed interleaved with the plain stack of the same
cell (the gated-feedback kernel) and the same variant stack forced onto the variant loop
(nn/connections/gated_feedback_variants.py, the per-step autograd loop it replaces, with
the same masks). Median of ``--repeats`` after one warm-up round; the machine is shared,
so compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from rnnlab.nn import build_stack
from rnnlab.nn.connections.gated_feedback_variants import feedback_variant_direction

SHAPE = (100, 64, 128, 256)  # the single-layer variants' benchmark shape
RESULTS = Path(__file__).parent / "results"
ROWS = {
    "projection (P=128)": ("lstm", {"proj_size": 128}),
    "peephole": ("lstm", {"peephole": True}),
    "cifg": ("lstm", {"lstm_variant": "cifg"}),
    "layer_norm": ("lstm", {"layer_norm": True}),
    "recurrent_dropout": ("lstm", {"recurrent_dropout": 0.25}),
    "zoneout": ("lstm", {"zoneout": 0.1}),
    "layer_norm (gru)": ("gru", {"layer_norm": True}),
}


def _stack(cell: str, **variant) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = {"cell": cell, "hidden_size": SHAPE[3], "num_layers": 2}
    cfg |= {"connection": {"name": "gated_feedback"}, **variant}
    return build_stack(SHAPE[2], cfg).train()


def _loop(stack: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The variant stack on the per-step loop (one direction: the stack has one)."""
    lengths = torch.full((x.shape[0],), x.shape[1])
    return feedback_variant_direction(stack.directions[0], x, lengths, stack.dropout)[0]


def fwdbwd(fn, x) -> float:
    start = time.perf_counter()
    fn(x).sum().backward()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    steps, batch, inp, _ = SHAPE
    x = torch.randn(batch, steps, inp)
    records = []
    for name, (cell, opts) in ROWS.items():
        plain, stack = _stack(cell), _stack(cell, **opts)
        impls = {
            "plain": lambda x, m=plain: m(x)[0],
            "variant": lambda x, m=stack: m(x)[0],
            "loop": lambda x, m=stack: _loop(m, x),
        }
        times = {k: [] for k in impls}
        for _ in range(args.repeats + 1):
            for k, fn in impls.items():
                times[k].append(fwdbwd(fn, x))
        med = {k: statistics.median(v[1:]) for k, v in times.items()}
        path = f"gated_feedback {stack.directions[0].path_name}"
        rec = {
            "variant": name, "cell": cell, "path": path, "shape": list(SHAPE),
            "fwdbwd_ms": round(med["variant"], 1), "plain_kernel_ms": round(med["plain"], 1),
            "loop_ms": round(med["loop"], 1),
            "vs_plain_kernel": round(med["variant"] / med["plain"], 2),
            "speedup_vs_loop": round(med["loop"] / med["variant"], 2),
        }  # fmt: skip
        records.append(rec)
        print(json.dumps(rec), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gated_feedback_variants.json").write_text(json.dumps(records, indent=1) + "\n")
    lines = [
        f"`OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')} python -m "
        f"benchmarks.gated_feedback_variants --repeats {args.repeats}` — torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads; 2-layer gated-feedback "
        f"stacks, fwd+bwd of out.sum() at (T, B, I, H) = {SHAPE}; load average at the end "
        f"{os.getloadavg()[0]:.1f} (a shared machine: compare ratios).",
        "",
        "| variant | path | fwd+bwd ms | plain gated-feedback kernel ms | × plain kernel "
        "| variant loop ms | speed-up vs loop |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in records:
        lines.append(
            f"| {r['variant']} | {r['path']} | {r['fwdbwd_ms']} | {r['plain_kernel_ms']} | "
            f"{r['vs_plain_kernel']}× | {r['loop_ms']} | {r['speedup_vs_loop']}× |"
        )
    (RESULTS / "gated_feedback_variants.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
