"""Gated-feedback connection speed and memory: the autograd loop against the fast path.

    python -m benchmarks.gated_feedback                  # everything (make bench)
    python -m benchmarks.gated_feedback --shapes 0 --layers 2   # one slice, merged in

For 2 and 3 layers, cells lstm/gru/rnn, activations tanh and gelu and each shape
(T, B, I, H), it times, interleaved in one process (median of ``--repeats`` after
warm-up; forward under no_grad and forward+backward of ``out.sum()``):
(a) ``autograd_loop``: the per-step autograd loop the connection used to run (kept as
    ``_FeedbackDirection._autograd_oracle``);
(b) ``fast_path``: the gated-feedback kernel (nn/kernels/gated_feedback*);
and, as a point of reference, (c) ``nn_stack``: a plain stack of fused
``nn.LSTM/GRU/RNN`` layers (tanh) at the same shape, which has no feedback at all.
Peak memory of a training step is measured as in benchmarks/run.py (torch profiler
allocator events). Ratios are within one run; the machine is shared, compare ratios.
Writes ``benchmarks/results/gated_feedback.json`` and ``gated_feedback.md``; a run
restricted by ``--shapes``/``--layers``/``--cells`` replaces only its own records.
"""

from __future__ import annotations

import os

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # keep the profiler quiet (set before torch)

import argparse
import json

import torch

from benchmarks.run import RESULTS, Impl, measure, run_meta
from rnnlab.nn import build_stack
from rnnlab.nn.kernels import backend_for

SHAPES = [(100, 64, 128, 256), (200, 32, 64, 128)]
LAYERS = (2, 3)
CELLS = ("lstm", "gru", "rnn")
ACTIVATIONS = ("tanh", "gelu")


def implementations(cell: str, layers: int, inp: int, hidden: int) -> dict[tuple[str, str], Impl]:
    def gf(act: str):
        torch.manual_seed(0)
        spec = {
            "cell": cell,
            "activation": act,
            "hidden_size": hidden,
            "num_layers": layers,
            "connection": {"name": "gated_feedback"},
        }
        return build_stack(inp, spec)

    torch.manual_seed(0)
    plain = build_stack(
        inp,
        {
            "cell": cell,
            "hidden_size": hidden,
            "num_layers": layers,
            "connection": {"name": "stack"},
        },
    )
    impls: dict[tuple[str, str], Impl] = {}
    for act in ACTIVATIONS:
        stack = gf(act)
        direction = stack.directions[0]

        def loop(x, d=direction, s=stack):
            lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long)
            return d._autograd_oracle(x, lengths, s.dropout)[0]

        impls[("autograd_loop", act)] = loop
        impls[("fast_path", act)] = lambda x, s=stack: s(x)[0]
    impls[("nn_stack", "tanh")] = lambda x: plain(x)[0]
    return impls


def run(shapes, layer_counts, cells, repeats: int, warmup: int) -> list[dict]:
    records = []
    for shape in shapes:
        steps, batch, inp, hidden = shape
        for layers in layer_counts:
            for cell in cells:
                impls = implementations(cell, layers, inp, hidden)
                torch.manual_seed(1)
                x = torch.randn(batch, steps, inp, requires_grad=True)
                med, mems = measure(impls, x, warmup, repeats)
                plain = med[("nn_stack", "tanh")]
                for (impl, act), t in med.items():
                    loop = med[("autograd_loop", act)] if impl != "nn_stack" else None
                    loop_mem = mems[("autograd_loop", act)] if loop else None
                    rec = {
                        "cell": cell,
                        "layers": layers,
                        "impl": impl,
                        "activation": act,
                        "shape": list(shape),
                        "fwd_ms": round(t["fwd"], 3),
                        "fwdbwd_ms": round(t["fwdbwd"], 3),
                        "peak_mb": round(mems[(impl, act)], 2),
                        "speed_vs_loop_fwd": round(loop["fwd"] / t["fwd"], 3) if loop else None,
                        "speed_vs_loop_fwdbwd": (
                            round(loop["fwdbwd"] / t["fwdbwd"], 3) if loop else None
                        ),
                        "mem_vs_loop": round(mems[(impl, act)] / loop_mem, 3) if loop else None,
                        "time_vs_nn_stack_fwdbwd": round(t["fwdbwd"] / plain["fwdbwd"], 3),
                    }
                    records.append(rec)
                    vs_loop = f"(x{loop['fwdbwd'] / t['fwdbwd']:.2f} vs loop)" if loop else ""
                    print(
                        f"{cell:5s} L={layers} {str(shape):20s} {impl:13s} {act:5s} "
                        f"fwd {t['fwd']:8.1f} ms  fwd+bwd {t['fwdbwd']:8.1f} ms  {vs_loop:16s} "
                        f"peak {mems[(impl, act)]:7.1f} MB",
                        flush=True,
                    )
    return records


def markdown(records: list[dict]) -> str:
    lines = [
        "vs loop = autograd-loop time / this time (>1 = faster than the loop it replaced), "
        "same activation; mem = peak MB of one training step / the loop's; vs nn stack = "
        "this fwd+bwd time / a plain stack of fused nn.* layers (tanh, no feedback).",
        "",
        "| cell | L | (T, B, I, H) | impl | act | fwd ms | fwd+bwd ms | vs loop fwd | "
        "vs loop fwd+bwd | peak MB (vs loop) | fwd+bwd / nn stack |",
        "| --- | ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def ratio(v):
        return f"{v:.2f}x" if v is not None else "—"

    for r in records:
        mem = f"{r['peak_mb']:.1f}" + (f" ({r['mem_vs_loop']:.2f}x)" if r["mem_vs_loop"] else "")
        lines.append(
            f"| {r['cell']} | {r['layers']} | {tuple(r['shape'])} | {r['impl']} | "
            f"{r['activation']} | {r['fwd_ms']:.1f} | {r['fwdbwd_ms']:.1f} | "
            f"{ratio(r['speed_vs_loop_fwd'])} | {ratio(r['speed_vs_loop_fwdbwd'])} | {mem} | "
            f"{r['time_vs_nn_stack_fwdbwd']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def merge(old: list[dict], new: list[dict]) -> list[dict]:
    """Replace the old records of the (shape, layers, cell) groups this run measured."""
    key = lambda r: (tuple(r["shape"]), r["layers"], r["cell"])  # noqa: E731
    fresh = {key(r) for r in new}
    merged = [r for r in old if key(r) not in fresh] + new
    order = {"lstm": 0, "gru": 1, "rnn": 2}
    return sorted(merged, key=lambda r: (r["shape"][0], r["layers"], order[r["cell"]]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", type=int, nargs="*", help="indices into SHAPES")
    parser.add_argument("--layers", type=int, nargs="*", choices=LAYERS)
    parser.add_argument("--cells", nargs="*", choices=CELLS)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    shapes = [SHAPES[i] for i in args.shapes] if args.shapes else SHAPES
    layer_counts = args.layers or LAYERS
    cells = args.cells or CELLS
    backend = backend_for(torch.zeros(1))  # builds the C++ kernel before any timing
    print(f"kernel backend: {backend}; {torch.get_num_threads()} threads", flush=True)
    records = run(shapes, layer_counts, cells, args.repeats, args.warmup)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "gated_feedback.json"
    partial = bool(args.shapes or args.layers or args.cells)
    if partial and path.exists():
        records = merge(json.loads(path.read_text())["records"], records)
    else:
        records = merge([], records)
    meta = run_meta(backend, args.repeats, args.warmup)
    meta["command"] = "python -m benchmarks.gated_feedback"
    path.write_text(json.dumps({"meta": meta, "records": records}, indent=2))
    (RESULTS / "gated_feedback.md").write_text(
        f"`{meta['command']}` — torch {meta['torch']}, {meta['threads']} threads, "
        f"kernel backend {backend}, median of {args.repeats} after {args.warmup} warm-up\n\n"
        + markdown(records)
    )
    print(f"wrote {path} and gated_feedback.md")


if __name__ == "__main__":
    main()
