"""Forward-only (no_grad) time of one LSTM layer on the kernel per activation, interleaved
with nn.LSTM (tanh, oneDNN), at one shape: does a forward ratio under 1.0 come from the
activation or from the shape?

    python -m benchmarks.forward_by_activation [--shape T B I H] [--repeats N]

Prints one JSON line: medians (ms) after two warm-up rounds and nn.LSTM time / kernel
time per activation. Writes nothing (a diagnosis, not part of ``make bench``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from rnnlab.nn import RecurrentLayer
from rnnlab.nn.cells import CellActivations

ACTIVATIONS = ("tanh", "gelu", "relu")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", type=int, nargs=4, default=[50, 128, 256, 512])
    parser.add_argument("--repeats", type=int, default=25)
    args = parser.parse_args()
    steps, batch, inp, hidden = args.shape
    torch.manual_seed(0)
    x = torch.randn(batch, steps, inp)
    layers = {"nn.LSTM": RecurrentLayer("lstm", inp, hidden, fused=True)}
    for a in ACTIVATIONS:
        layers[a] = RecurrentLayer("lstm", inp, hidden, fused=False, activations=CellActivations(a))
    times = {k: [] for k in layers}
    with torch.no_grad():
        for _ in range(args.repeats + 2):
            for k, m in layers.items():
                start = time.perf_counter()
                m(x)
                times[k].append((time.perf_counter() - start) * 1000)
    med = {k: round(statistics.median(v[2:]), 1) for k, v in times.items()}
    ratio = {a: round(med["nn.LSTM"] / med[a], 3) for a in ACTIVATIONS}
    print(json.dumps({
        "shape": args.shape, "threads": torch.get_num_threads(), "ms": med,
        "nn_over_kernel": ratio, "load": round(os.getloadavg()[0], 1),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
