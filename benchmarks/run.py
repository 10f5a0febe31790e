"""Recurrent-layer speed: PyTorch's fused nn.* against rnnlab's paths, side by side.

    python -m benchmarks.run            # all shapes  (make bench)
    python -m benchmarks.run --quick    # first shape (make bench-quick)

For each cell and shape (T, B, I, H) it times, interleaved in one process (median of
``--repeats`` after warm-up): (a) ``nn.LSTM/GRU/RNN``, (b) rnnlab with default
activations (fused path), (c) rnnlab's own loop with default, relu and gelu
activations, (d) a naive per-step autograd loop as a user would write it. Ratios are
to (a) in the same run; the machine is noisy, so compare ratios, not absolute times.
Writes ``benchmarks/results/latest.json`` and ``latest.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from rnnlab.nn import RecurrentLayer
from rnnlab.nn.cells import CellActivations, cell_step, initial_state

SHAPES = [(100, 64, 128, 256), (200, 32, 64, 128), (50, 128, 256, 512)]
CELLS = ("lstm", "gru", "rnn")
RESULTS = Path(__file__).parent / "results"


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


def implementations(cell: str, inp: int, hidden: int):
    torch.manual_seed(0)
    ref = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell](inp, hidden, batch_first=True)
    fused = RecurrentLayer(cell, inp, hidden)
    loop = RecurrentLayer(cell, inp, hidden, fused=False)
    relu = RecurrentLayer(cell, inp, hidden, activations=CellActivations("relu"), fused=False)
    gelu = RecurrentLayer(cell, inp, hidden, activations=CellActivations("gelu"))
    naive = RecurrentLayer(cell, inp, hidden, fused=False)
    return {
        ("nn", "tanh"): lambda x: ref(x)[0],
        ("rnnlab_fused", "tanh"): lambda x: fused(x)[0],
        ("rnnlab_loop", "tanh"): lambda x: loop(x)[0],
        ("rnnlab_loop", "relu"): lambda x: relu(x)[0],
        ("rnnlab_loop", "gelu"): lambda x: gelu(x)[0],
        ("naive_loop", "tanh"): lambda x: naive_loop(naive, x),
    }


def time_once(fn, x: torch.Tensor, backward: bool) -> float:
    start = time.perf_counter()
    if backward:
        fn(x).sum().backward()
    else:
        with torch.no_grad():
            fn(x)
    return (time.perf_counter() - start) * 1000


def run(shapes, repeats: int, warmup: int) -> list[dict]:
    records = []
    for shape in shapes:
        steps, batch, inp, hidden = shape
        for cell in CELLS:
            impls = implementations(cell, inp, hidden)
            x = torch.randn(batch, steps, inp, requires_grad=True)
            times = {k: {"fwd": [], "fwdbwd": []} for k in impls}
            for _ in range(warmup):
                for fn in impls.values():
                    time_once(fn, x, True)
            for _ in range(repeats):  # interleaved: every impl sees the same machine state
                for key, fn in impls.items():
                    times[key]["fwd"].append(time_once(fn, x, False))
                    times[key]["fwdbwd"].append(time_once(fn, x, True))
            base = {m: statistics.median(times[("nn", "tanh")][m]) for m in ("fwd", "fwdbwd")}
            for (impl, act), t in times.items():
                fwd, fwdbwd = statistics.median(t["fwd"]), statistics.median(t["fwdbwd"])
                records.append(
                    {
                        "cell": cell,
                        "impl": impl,
                        "activation": act,
                        "shape": list(shape),
                        "fwd_ms": round(fwd, 3),
                        "fwdbwd_ms": round(fwdbwd, 3),
                        "speed_vs_nn_fwd": round(base["fwd"] / fwd, 3),
                        "speed_vs_nn_fwdbwd": round(base["fwdbwd"] / fwdbwd, 3),
                        "peak_mb": None,  # CPU peak memory is not measured yet (fast-kernel issue)
                    }
                )
                print(
                    f"{cell:5s} {str(shape):22s} {impl:13s} {act:5s} fwd {fwd:9.2f} ms  "
                    f"fwd+bwd {fwdbwd:9.2f} ms  x{base['fwdbwd'] / fwdbwd:.2f} of nn.*",
                    flush=True,
                )
    return records


def markdown(records: list[dict]) -> str:
    lines = [
        "| cell | (T, B, I, H) | impl | activation | fwd ms | fwd+bwd ms | speed vs nn.* (fwd / fwd+bwd) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in records:
        lines.append(
            f"| {r['cell']} | {tuple(r['shape'])} | {r['impl']} | {r['activation']} | "
            f"{r['fwd_ms']:.2f} | {r['fwdbwd_ms']:.2f} | "
            f"{r['speed_vs_nn_fwd']:.2f}x / {r['speed_vs_nn_fwdbwd']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the first shape")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    shapes = SHAPES[:1] if args.quick else SHAPES
    records = run(shapes, args.repeats, args.warmup)
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "repeats": args.repeats,
        "command": "python -m benchmarks.run" + (" --quick" if args.quick else ""),
    }
    (RESULTS / "latest.json").write_text(json.dumps({"meta": meta, "records": records}, indent=2))
    (RESULTS / "latest.md").write_text(
        f"`{meta['command']}` — torch {meta['torch']}, "
        f"{meta['threads']} threads\n\n" + markdown(records)
    )
    print(f"wrote {RESULTS / 'latest.json'} and latest.md")


if __name__ == "__main__":
    main()
