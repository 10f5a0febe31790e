"""GPU speed and memory: cuDNN nn.* against rnnlab's Triton and torch-ops backends.

    PYTHONPATH=src python -m benchmarks.gpu              # make bench-gpu
    PYTHONPATH=src python -m benchmarks.gpu --repeats 5 --shapes 0 --dtypes float32

Needs a CUDA device, torch and Triton only (no Hydra, DVC or W&B): without CUDA it
says so in one line and exits with status 2. For float32 and bfloat16, cells
lstm/gru/rnn and (T, B, I, H) in ``SHAPES`` it times, interleaved (every impl takes
its turn in each repeat, so all see the same GPU state), the median of ``--repeats``
(>= 20 by default) after ``--warmup`` rounds (which also compile the Triton kernels
and capture the CUDA graphs), with CUDA events, forward under no_grad and
forward+backward of ``out.sum()``:
  - ``cudnn``: nn.LSTM/GRU/RNN (tanh, the fixed design);
  - ``triton``: rnnlab's kernel on the Triton backend, tanh, relu and gelu;
  - ``torch_ops``: rnnlab's kernel on the torch-ops backend (relu), the path every
    custom activation took on GPUs before the Triton backend;
and, for the gated-feedback connection (2 layers, gelu, the first two shapes), the
stack on ``triton`` against ``torch_ops``; for the cell variants (``VARIANTS``, the
first shape, training mode so dropout/zoneout draw their masks) the Triton variant
kernel (``triton``) against the per-step autograd loop (``variant_loop``, what ran on
GPUs before it), and for gated-feedback stacks with variants (``FEEDBACK_VARIANTS``)
the Triton gated-feedback variant kernel against the variant loop; their
``activation`` column names the variant. Peak memory of a training step: one
forward+backward after ``torch.cuda.reset_peak_memory_stats``,
``max_memory_allocated`` minus what was allocated before (inputs, weights excluded).
Writes ``benchmarks/results/gpu.json`` (device, versions, one record per cell, impl,
activation, dtype and shape with fwd_ms, fwdbwd_ms, peak_mb and the ratios) and
``gpu.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

SHAPES = [
    (100, 64, 128, 256),
    (200, 32, 64, 128),
    (50, 128, 256, 512),
    (100, 64, 512, 1024),
    (1000, 16, 128, 256),
]
CELLS = ("lstm", "gru", "rnn")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
# name -> (cell, Variant options, proj_size): the variant rows (first shape only).
VARIANTS = {
    "cifg+peephole": ("lstm", {"lstm_variant": "cifg", "peephole": True}, 0),
    "layer_norm": ("lstm", {"layer_norm": True}, 0),
    "dropout+zoneout": ("lstm", {"recurrent_dropout": 0.25, "zoneout": 0.1}, 0),
    "proj128": ("lstm", {}, 128),
    "gru layer_norm+zoneout": ("gru", {"layer_norm": True, "zoneout": 0.1}, 0),
}
# gated-feedback stacks (2 layers) with variants, on the Triton gated-feedback variant
# kernel against the variant loop: name -> (cell, build_stack options)
FEEDBACK_VARIANTS = {
    "gated_feedback layer_norm": ("lstm", {"layer_norm": True}),
    "gated_feedback cifg+dropout+zoneout": (
        "lstm",
        {"lstm_variant": "cifg", "recurrent_dropout": 0.25, "zoneout": 0.1},
    ),  # fmt: skip
}
RESULTS = Path(__file__).parent / "results"
TORCH = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
Impl = Callable[[torch.Tensor], torch.Tensor]
NO_CUDA = "benchmarks.gpu: no CUDA device (torch.cuda.is_available() is False); nothing measured"


def on_backend(backend: str, module: nn.Module) -> Impl:
    """``module(x)[0]`` with ``RNNLAB_KERNEL=backend`` for the call."""

    def run(x: torch.Tensor) -> torch.Tensor:
        os.environ["RNNLAB_KERNEL"] = backend
        return module(x)[0]

    return run


def layer_impls(cell: str, inp: int, hidden: int, dtype) -> dict[tuple[str, str], Impl]:
    from rnnlab.nn import RecurrentLayer
    from rnnlab.nn.cells import CellActivations

    dev = torch.device("cuda")
    torch.manual_seed(0)
    impls = {("cudnn", "tanh"): TORCH[cell](inp, hidden, batch_first=True).to(dev, dtype)}
    impls = {k: (lambda x, m=m: m(x)[0]) for k, m in impls.items()}
    for backend, acts in (("triton", ("tanh", "relu", "gelu")), ("torch_ops", ("relu",))):
        for act in acts:
            layer = RecurrentLayer(cell, inp, hidden, activations=CellActivations(act), fused=False)
            name = "python" if backend == "torch_ops" else backend
            impls[(backend, act)] = on_backend(name, layer.to(dev, dtype))
    return impls


def feedback_impls(cell: str, inp: int, hidden: int, dtype) -> dict[tuple[str, str], Impl]:
    from rnnlab.nn import build_stack

    torch.manual_seed(0)
    spec = {"cell": cell, "activation": "gelu", "hidden_size": hidden, "num_layers": 2}
    stack = build_stack(inp, {**spec, "connection": {"name": "gated_feedback"}})
    stack = stack.to("cuda", dtype)
    return {
        (b, "gelu"): on_backend(n, stack)
        for b, n in (("triton", "triton"), ("torch_ops", "python"))
    }


def variant_impls(name: str, inp: int, hidden: int, dtype) -> dict[tuple[str, str], Impl]:
    """``VARIANTS[name]`` on the Triton variant kernel and on the variant loop."""
    from rnnlab.nn import RecurrentLayer
    from rnnlab.nn.variants import Variant

    cell, opts, proj = VARIANTS[name]
    torch.manual_seed(0)
    layer = RecurrentLayer(cell, inp, hidden, proj_size=proj, variant=Variant(**opts), fused=False)
    layer = layer.to("cuda", dtype).train()
    return {
        (b, name): on_backend(n, layer)
        for b, n in (("triton", "triton"), ("variant_loop", "python"))
    }


def feedback_variant_impls(name: str, inp: int, hidden: int, dtype) -> dict[tuple[str, str], Impl]:
    """``FEEDBACK_VARIANTS[name]`` on the Triton gated-feedback variant kernel and on
    the variant loop (training mode: the masks are drawn)."""
    from rnnlab.nn import build_stack

    cell, opts = FEEDBACK_VARIANTS[name]
    torch.manual_seed(0)
    spec = {"cell": cell, "hidden_size": hidden, "num_layers": 2, **opts}
    stack = build_stack(inp, {**spec, "connection": {"name": "gated_feedback"}})
    stack = stack.to("cuda", dtype).train()
    return {
        (b, name): on_backend(n, stack)
        for b, n in (("triton", "triton"), ("variant_loop", "python"))
    }


def time_once(fn: Impl, x: torch.Tensor, backward: bool) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    if backward:
        fn(x).float().sum().backward()
    else:
        with torch.no_grad():
            fn(x)
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end)


def peak_mb(fn: Impl, x: torch.Tensor) -> float:
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn(x).float().sum().backward()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def measure(impls: dict, x: torch.Tensor, warmup: int, repeats: int) -> dict:
    """Interleaved medians (ms) of fwd and fwd+bwd, and the training-step peak MB."""
    times = {k: {"fwd": [], "fwdbwd": []} for k in impls}
    for _ in range(warmup):
        for fn in impls.values():
            time_once(fn, x, False)
            time_once(fn, x, True)
    for _ in range(repeats):
        for key, fn in impls.items():
            times[key]["fwd"].append(time_once(fn, x, False))
            times[key]["fwdbwd"].append(time_once(fn, x, True))
    return {
        k: {
            "fwd_ms": round(statistics.median(v["fwd"]), 4),
            "fwdbwd_ms": round(statistics.median(v["fwdbwd"]), 4),
            "peak_mb": round(peak_mb(impls[k], x), 2),
        }
        for k, v in times.items()
    }


def records_for(
    cell, shape, dtype_name, impls, args, connection="none", ops_key=None
) -> list[dict]:
    steps, batch, inp, _ = shape
    x = torch.randn(batch, steps, inp, device="cuda", dtype=DTYPES[dtype_name])
    res = measure(impls, x, args.warmup, args.repeats)
    base = res.get(("cudnn", "tanh"))
    ops = res[ops_key or ("torch_ops", "relu" if connection == "none" else "gelu")]
    out = []
    for (impl, act), r in res.items():
        rec = {"cell": cell, "impl": impl, "activation": act, "dtype": dtype_name}
        rec.update({"shape": list(shape), "connection": connection, **r})
        if base:
            rec["speed_vs_cudnn_fwd"] = round(base["fwd_ms"] / r["fwd_ms"], 3)
            rec["speed_vs_cudnn_fwdbwd"] = round(base["fwdbwd_ms"] / r["fwdbwd_ms"], 3)
            rec["mem_vs_cudnn"] = round(r["peak_mb"] / max(base["peak_mb"], 1e-9), 3)
        rec["speed_vs_torch_ops_fwd"] = round(ops["fwd_ms"] / r["fwd_ms"], 3)
        rec["speed_vs_torch_ops_fwdbwd"] = round(ops["fwdbwd_ms"] / r["fwdbwd_ms"], 3)
        out.append(rec)
        print(json.dumps(rec), flush=True)
    return out


def meta(args) -> dict:
    import triton

    return {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "cuda": torch.version.cuda,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "timing": "CUDA events, interleaved, median",
        "peak_mb_method": "torch.cuda.max_memory_allocated over one fwd+bwd minus the start",
        "command": "python -m benchmarks.gpu " + " ".join(sys.argv[1:]),
    }


def markdown(m: dict, records: list[dict]) -> str:
    lines = [
        f"{m['device']}; torch {m['torch']}, Triton {m['triton']}, CUDA {m['cuda']}; "
        f"median of {m['repeats']} interleaved repeats. Ratios: cuDNN (or torch-ops; for the "
        "variant rows, whose act column names the variant: the variant loop) time / this "
        "time (>1 = faster).",
        "",
        "| cell | conn | dtype | (T, B, I, H) | impl | act | fwd ms | fwd+bwd ms | peak MB | "
        "vs cuDNN fwd | vs cuDNN fwd+bwd | mem vs cuDNN | vs torch_ops fwd+bwd |",
        "| --- | --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in records:

        def ratio(k, r=r):
            return f"{r[k]:.2f}x" if k in r else "-"

        lines.append(
            f"| {r['cell']} | {r['connection']} | {r['dtype']} | {tuple(r['shape'])} | "
            f"{r['impl']} | {r['activation']} | {r['fwd_ms']:.2f} | {r['fwdbwd_ms']:.2f} | "
            f"{r['peak_mb']:.1f} | {ratio('speed_vs_cudnn_fwd')} | "
            f"{ratio('speed_vs_cudnn_fwdbwd')} | {ratio('mem_vs_cudnn')} | "
            f"{ratio('speed_vs_torch_ops_fwdbwd')} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--shapes", type=int, nargs="*", default=list(range(len(SHAPES))))
    p.add_argument("--dtypes", nargs="*", default=list(DTYPES), choices=list(DTYPES))
    p.add_argument("--cells", nargs="*", default=list(CELLS), choices=list(CELLS))
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument(
        "--no-variants",
        dest="variants",
        action="store_false",
        help="skip the cell-variant rows (Triton variant kernel vs the loop)",
    )
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print(NO_CUDA)
        return 2
    records = []
    for dtype_name in args.dtypes:
        for i in args.shapes:
            shape = SHAPES[i]
            for cell in args.cells:
                impls = layer_impls(cell, shape[2], shape[3], DTYPES[dtype_name])
                records += records_for(cell, shape, dtype_name, impls, args)
                if i < 2 and cell != "rnn":
                    impls = feedback_impls(cell, shape[2], shape[3], DTYPES[dtype_name])
                    records += records_for(cell, shape, dtype_name, impls, args, "gated_feedback")
            if i == 0 and args.variants:
                for name, (cell, _, _) in VARIANTS.items():
                    impls = variant_impls(name, shape[2], shape[3], DTYPES[dtype_name])
                    key = ("variant_loop", name)
                    records += records_for(cell, shape, dtype_name, impls, args, ops_key=key)
                for name, (cell, _) in FEEDBACK_VARIANTS.items():
                    impls = feedback_variant_impls(name, shape[2], shape[3], DTYPES[dtype_name])
                    key = ("variant_loop", name)
                    records += records_for(
                        cell, shape, dtype_name, impls, args, "gated_feedback", ops_key=key
                    )
    m = meta(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu.json").write_text(json.dumps({"meta": m, "records": records}, indent=1))
    (args.out / "gpu.md").write_text(markdown(m, records))
    print(f"wrote {args.out / 'gpu.json'} and gpu.md ({len(records)} records)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
