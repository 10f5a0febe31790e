"""Recurrent-layer speed and memory: PyTorch's fused nn.* against rnnlab's kernel.

    python -m benchmarks.run            # all shapes  (make bench)
    python -m benchmarks.run --quick    # first shape (make bench-quick)

For each cell and shape (T, B, I, H) it times, interleaved in one process (median of
``--repeats`` after warm-up, forward under no_grad and forward+backward of
``out.sum()``): (a) ``nn.LSTM/GRU/RNN`` (default activations; what ``fused=true``
runs, and ``fused=auto`` on CUDA; benchmarks/fused_auto.py measures that choice),
(b) rnnlab's kernel with the default activations (``fused=auto`` on CPU),
(c) rnnlab's kernel with relu and with gelu, (d) a naive per-step autograd loop as a
user would write it for a custom activation (gelu). Ratios are to (a) in the same run;
the machine is shared and noisy, so compare ratios, not absolute times.

GFLOP/s counts only the matrix products (forward 2*T*B*G*H*(I+H) flops, backward
twice that) against the best of a large float32 matmul measured in the same process.
Peak memory of a training step: the torch profiler's record of every CPU-allocator
allocation and free during one forward+backward; the peak of the running total
minus its starting value (inputs and weights excluded, gradients included).
Writes ``benchmarks/results/latest.json`` and ``latest.md``.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # keep the profiler quiet (set before torch)

import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from rnnlab.nn import RecurrentLayer
from rnnlab.nn.cells import NUM_GATES, CellActivations, cell_step, initial_state
from rnnlab.nn.kernels import backend_for

SHAPES = [(100, 64, 128, 256), (200, 32, 64, 128), (50, 128, 256, 512)]
CELLS = ("lstm", "gru", "rnn")
RESULTS = Path(__file__).parent / "results"
Impl = Callable[[torch.Tensor], torch.Tensor]


def naive_loop(layer: RecurrentLayer, x: torch.Tensor) -> torch.Tensor:
    """What a user writes without care: x[t] indexing and a matmul per step per weight."""
    w_ih, w_hh, b_ih, b_hh = layer.weights(0)
    state = initial_state(layer.cell, x.shape[0], layer.hidden_size, x)
    outs = []
    for t in range(x.shape[1]):
        gx = x[:, t] @ w_ih.T + b_ih
        gh = state[0] @ w_hh.T + b_hh
        state = cell_step(layer.cell, layer.acts, gx, gh, state)
        outs.append(state[0])
    return torch.stack(outs, 1)


def implementations(cell: str, inp: int, hidden: int) -> dict[tuple[str, str], Impl]:
    torch.manual_seed(0)
    ref = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell](inp, hidden, batch_first=True)

    def kernel(act: str) -> RecurrentLayer:
        return RecurrentLayer(cell, inp, hidden, activations=CellActivations(act), fused=False)

    tanh, relu, gelu = kernel("tanh"), kernel("relu"), kernel("gelu")
    naive = kernel("gelu")
    return {
        ("nn", "tanh"): lambda x: ref(x)[0],
        ("rnnlab_kernel", "tanh"): lambda x: tanh(x)[0],
        ("rnnlab_kernel", "relu"): lambda x: relu(x)[0],
        ("rnnlab_kernel", "gelu"): lambda x: gelu(x)[0],
        ("naive_loop", "gelu"): lambda x: naive_loop(naive, x),
    }


def time_once(fn: Impl, x: torch.Tensor, backward: bool) -> float:
    start = time.perf_counter()
    if backward:
        fn(x).sum().backward()
    else:
        with torch.no_grad():
            fn(x)
    return (time.perf_counter() - start) * 1000


def peak_step_mb(fn: Impl, x: torch.Tensor) -> float:
    """Peak extra CPU memory of one forward+backward, from the profiler's allocator events."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn(x).sum().backward()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(path)
        events = json.loads(Path(path).read_text())["traceEvents"]
    running, peak = 0, 0
    mem = [e for e in events if e.get("name") == "[memory]"]
    for e in sorted(mem, key=lambda e: e["ts"]):
        running += int(e["args"]["Bytes"])
        peak = max(peak, running)
    return peak / 2**20


def measure(impls: dict, x: torch.Tensor, warmup: int, repeats: int) -> tuple[dict, dict]:
    """Median fwd / fwd+bwd ms of every impl, taking turns (every impl sees the same
    machine state), after ``warmup`` rounds; and each impl's training-step peak MB."""
    times = {k: {"fwd": [], "fwdbwd": []} for k in impls}
    for _ in range(warmup):
        for fn in impls.values():
            time_once(fn, x, True)
    for _ in range(repeats):
        for key, fn in impls.items():
            times[key]["fwd"].append(time_once(fn, x, False))
            times[key]["fwdbwd"].append(time_once(fn, x, True))
    mems = {key: peak_step_mb(fn, x) for key, fn in impls.items()}
    med = {k: {m: statistics.median(v[m]) for m in v} for k, v in times.items()}
    return med, mems


def matmul_peak_gflops(repeats: int = 5) -> float:
    """Best float32 GFLOP/s of a 1024^3 matmul on this machine, right now."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    best = float("inf")
    for _ in range(repeats + 1):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * 1024**3 / best / 1e9


def run(shapes, repeats: int, warmup: int, peak: float) -> list[dict]:
    records = []
    for shape in shapes:
        steps, batch, inp, hidden = shape
        for cell in CELLS:
            impls = implementations(cell, inp, hidden)
            x = torch.randn(batch, steps, inp, requires_grad=True)
            med, mems = measure(impls, x, warmup, repeats)
            base = med[("nn", "tanh")]
            naive = med[("naive_loop", "gelu")]
            flops = 2 * steps * batch * NUM_GATES[cell] * hidden * (inp + hidden)
            for (impl, act), t in med.items():
                fwd, fwdbwd = t["fwd"], t["fwdbwd"]
                records.append(
                    {
                        "cell": cell,
                        "impl": impl,
                        "activation": act,
                        "shape": list(shape),
                        "fwd_ms": round(fwd, 3),
                        "fwdbwd_ms": round(fwdbwd, 3),
                        "peak_mb": round(mems[(impl, act)], 2),
                        "speed_vs_nn_fwd": round(base["fwd"] / fwd, 3),
                        "speed_vs_nn_fwdbwd": round(base["fwdbwd"] / fwdbwd, 3),
                        "speed_vs_naive_fwdbwd": round(naive["fwdbwd"] / fwdbwd, 3),
                        "mem_vs_nn": round(mems[(impl, act)] / mems[("nn", "tanh")], 3),
                        "gflops_fwd": round(flops / fwd / 1e6, 2),
                        "gflops_fwdbwd": round(3 * flops / fwdbwd / 1e6, 2),
                        "pct_of_matmul_peak_fwdbwd": round(
                            100 * 3 * flops / fwdbwd / 1e6 / peak, 1
                        ),
                    }
                )
                print(
                    f"{cell:5s} {str(shape):20s} {impl:14s} {act:5s} fwd {fwd:8.1f} ms "
                    f"(x{base['fwd'] / fwd:.2f})  fwd+bwd {fwdbwd:8.1f} ms "
                    f"(x{base['fwdbwd'] / fwdbwd:.2f})  peak {mems[(impl, act)]:7.1f} MB",
                    flush=True,
                )
    return records


def run_meta(backend: str, repeats: int, warmup: int) -> dict:
    """What a results file records about the machine and method of its run."""
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "kernel_backend": backend,
        "repeats": repeats,
        "warmup": warmup,
        "peak_mb_method": "torch.profiler CPU allocator events, one fwd+bwd, peak running total",
    }


def markdown(records: list[dict], peak: float) -> str:
    lines = [
        f"Speed ratios are nn.* time / this time (>1 = faster than nn.*); naive = naive "
        f"gelu loop time / this time. GFLOP/s: matrix products only, fwd+bwd; matmul peak "
        f"measured in the same run: {peak:.0f} GFLOP/s.",
        "",
        "| cell | (T, B, I, H) | impl | act | fwd ms | fwd+bwd ms | vs nn fwd | "
        "vs nn fwd+bwd | vs naive | GFLOP/s (% peak) | peak MB (vs nn) |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in records:
        lines.append(
            f"| {r['cell']} | {tuple(r['shape'])} | {r['impl']} | {r['activation']} | "
            f"{r['fwd_ms']:.1f} | {r['fwdbwd_ms']:.1f} | {r['speed_vs_nn_fwd']:.2f}x | "
            f"{r['speed_vs_nn_fwdbwd']:.2f}x | {r['speed_vs_naive_fwdbwd']:.2f}x | "
            f"{r['gflops_fwdbwd']:.1f} ({r['pct_of_matmul_peak_fwdbwd']:.0f}%) | "
            f"{r['peak_mb']:.1f} ({r['mem_vs_nn']:.2f}x) |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the first shape")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=None, help="default 2 (--quick: 1)")
    args = parser.parse_args()
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    shapes = SHAPES[:1] if args.quick else SHAPES
    backend = backend_for(torch.zeros(1))  # builds the C++ kernel before any timing
    peak = matmul_peak_gflops()
    print(f"kernel backend: {backend}; float32 matmul peak {peak:.0f} GFLOP/s", flush=True)
    records = run(shapes, args.repeats, args.warmup, peak)
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = run_meta(backend, args.repeats, args.warmup)
    meta["matmul_peak_gflops"] = round(peak, 1)
    meta["command"] = "python -m benchmarks.run" + (" --quick" if args.quick else "")
    (RESULTS / "latest.json").write_text(json.dumps({"meta": meta, "records": records}, indent=2))
    (RESULTS / "latest.md").write_text(
        f"`{meta['command']}` — torch {meta['torch']}, {meta['threads']} threads, "
        f"kernel backend {backend}\n\n" + markdown(records, peak)
    )
    print(f"wrote {RESULTS / 'latest.json'} and latest.md")


if __name__ == "__main__":
    main()
