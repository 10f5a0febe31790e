"""Forward-only (no_grad) LSTM on the kernel with the input product computed in time
chunks, interleaved with nn.LSTM and the kernel in one call (what the layer ran before it
chunked evaluation itself, nn/recurrent.py INFERENCE_CHUNK_BYTES): how much of the forward is
the page-faulting of one big ``x W_ih^T`` tensor?

    python -m benchmarks.forward_chunked [--shape T B I H] [--repeats N]

At (50, 128, 256, 512) ``x W_ih^T`` is (B, T, 4H) = 52 MB, above glibc's largest dynamic
mmap threshold (32 MB), so malloc maps it fresh on every forward and every page faults
on first touch. The chunked path runs ``x[:, t0:t1] W_ih^T`` (each chunk under 32 MB,
reused by malloc from its heap) and the kernel per chunk with the state carried over,
which gives bitwise the same outputs (checked here). Prints one JSON line: medians (ms)
after two warm-up rounds, nn.LSTM time / each time, the largest difference from the
unchunked kernel. Writes nothing (a diagnosis, not part of ``make bench``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from rnnlab.nn import RecurrentLayer
from rnnlab.nn.kernels import recurrence

ACTS = ("tanh", "tanh", "sigmoid")


def chunked(layer: RecurrentLayer, x: torch.Tensor, steps: int) -> torch.Tensor:
    w_ih, w_hh, b_ih, b_hh = layer.weights(0)
    batch, hidden = x.shape[0], w_hh.shape[1]
    h, c = x.new_zeros(batch, hidden), x.new_zeros(batch, hidden)
    outs = []
    for t0 in range(0, x.shape[1], steps):
        gx = torch.matmul(x[:, t0 : t0 + steps], w_ih.t())
        lengths = torch.full((batch,), gx.shape[1])
        out, (h, c) = recurrence("lstm", ACTS, gx, w_hh, b_hh, h, c, lengths, b_ih)
        outs.append(out)
    return torch.cat(outs, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", type=int, nargs=4, default=[50, 128, 256, 512])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    steps, batch, inp, hidden = args.shape
    torch.manual_seed(0)
    x = torch.randn(batch, steps, inp)
    layer = RecurrentLayer("lstm", inp, hidden, fused=False)
    ref = torch.nn.LSTM(inp, hidden, batch_first=True)
    gx_mb = batch * steps * 4 * hidden * 4 / 2**20
    sizes = sorted({max(1, steps // k) for k in (2, 3, 5)}, reverse=True)
    # one call: the whole product at once (the layer itself now chunks evaluation)
    impls = {"nn.LSTM": lambda: ref(x)[0], "kernel": lambda: chunked(layer, x, steps)}
    impls |= {f"chunks of {n} steps": (lambda n=n: chunked(layer, x, n)) for n in sizes}
    times: dict[str, list[float]] = {k: [] for k in impls}
    with torch.no_grad():
        whole = chunked(layer, x, steps)
        diff = max((chunked(layer, x, n) - whole).abs().max().item() for n in sizes)
        for _ in range(args.repeats + 2):
            for name, fn in impls.items():
                start = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - start) * 1000)
    med = {k: round(statistics.median(v[2:]), 1) for k, v in times.items()}
    record = {
        "shape": args.shape, "threads": torch.get_num_threads(), "gx_mb": round(gx_mb, 1),
        "ms": med, "nn_over": {k: round(med["nn.LSTM"] / v, 3) for k, v in med.items()},
        "max_diff_vs_kernel": diff, "load": round(os.getloadavg()[0], 1),
    }  # fmt: skip
    print(json.dumps(record))


if __name__ == "__main__":
    main()
