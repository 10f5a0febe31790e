"""The measurement behind ``model.fused=auto``: PyTorch's fused module or rnnlab's kernel?

    python -m benchmarks.fused_auto     # writes benchmarks/results/fused_auto.{json,md}

A layer with PyTorch's own activations (tanh, sigmoid gates) can run either path with
the same weights: ``fused=true`` (``nn.LSTM/GRU/RNN``; a padded batch goes through
``pack_padded_sequence``, PyTorch's per-step packed path) or ``fused=false`` (the C++
kernel, which reads lengths directly). For each cell at the CPU benchmark shapes of
``benchmarks.run``, and a bidirectional LSTM, this times both ``RecurrentLayer`` paths
interleaved in one process on an unpadded batch and on a padded one (lengths spread
evenly from T down to T/2, as in a length-bucketed text batch or a speech batch):
forward under no_grad and forward+backward of ``out.sum()``, median of ``--repeats``
after a warm-up. ``fused=auto`` follows the winner (``rnnlab.nn.kernels.backend.
kernel_preferred``); the table says, per row, what that rule picks. An LSTM with
``proj_size`` is a row too: its kernel path is the variant kernel.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

import torch

from benchmarks.run import SHAPES, time_once
from rnnlab.nn import RecurrentLayer
from rnnlab.nn.kernels.backend import kernel_preferred

RESULTS = Path(__file__).parent / "results"
# (cell, shape, bidirectional, proj_size)
ROWS = [(cell, shape, False, 0) for shape in SHAPES for cell in ("lstm", "gru", "rnn")]
ROWS += [("lstm", SHAPES[0], True, 0), ("lstm", SHAPES[0], False, SHAPES[0][3] // 2)]
# The shapes of this repo's default runs: text_langid (about 42 characters, embeddings
# 64, H 128), speech_commands_synth (101 frames of 40 log-mels), the adding problem's
# LSTM (T 100, B 50, H 64) and tanh Elman (T 200): small layers too.
ROWS += [
    ("lstm", (50, 64, 64, 128), False, 0), ("lstm", (101, 64, 40, 128), False, 0),
    ("lstm", (100, 50, 2, 64), False, 0), ("rnn", (200, 50, 2, 64), False, 0),
]  # fmt: skip


def padded_lengths(steps: int, batch: int) -> torch.Tensor:
    """Lengths from T down to T/2, evenly spread over the batch."""
    return torch.linspace(steps, steps // 2, batch).round().long()


def measure_row(cell: str, shape, bidirectional: bool, proj: int, repeats: int) -> list[dict]:
    steps, batch, inp, hidden = shape
    torch.manual_seed(0)
    opts = {"bidirectional": bidirectional, "proj_size": proj}
    fused = RecurrentLayer(cell, inp, hidden, fused=True, **opts)
    kernel = RecurrentLayer(cell, inp, hidden, fused=False, **opts)
    kernel.load_state_dict(fused.state_dict())
    x = torch.randn(batch, steps, inp, requires_grad=True)
    records = []
    for padded in (False, True):
        lengths = padded_lengths(steps, batch) if padded else None
        impls = {
            "fused": lambda x, m=fused, n=lengths: m(x, n)[0],
            "kernel": lambda x, m=kernel, n=lengths: m(x, n)[0],
        }
        times = {k: {"fwd": [], "fwdbwd": []} for k in impls}
        for rep in range(repeats + 1):  # round 0 is the warm-up
            for key, fn in impls.items():
                fwd, fwdbwd = time_once(fn, x, False), time_once(fn, x, True)
                if rep:
                    times[key]["fwd"].append(fwd)
                    times[key]["fwdbwd"].append(fwdbwd)
        med = {k: {m: statistics.median(v) for m, v in t.items()} for k, t in times.items()}
        rec = {
            "cell": cell, "shape": list(shape), "bidirectional": bidirectional,
            "proj_size": proj, "padded": padded, "kernel_path": kernel.path(),
            **{f"{k}_{m}_ms": round(med[k][m], 2) for k in impls for m in ("fwd", "fwdbwd")},
            "kernel_speedup_fwd": round(med["fused"]["fwd"] / med["kernel"]["fwd"], 2),
            "kernel_speedup_fwdbwd": round(med["fused"]["fwdbwd"] / med["kernel"]["fwdbwd"], 2),
            "auto_picks": "kernel" if kernel_preferred(x) else "fused",
        }  # fmt: skip
        records.append(rec)
        print(json.dumps(rec), flush=True)
    return records


def markdown(records: list[dict], repeats: int) -> str:
    lines = [
        f"`python -m benchmarks.fused_auto --repeats {repeats}` — torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, load average at the end "
        f"{os.getloadavg()[0]:.1f}. Speed-up = fused time / kernel time (>1: the kernel is "
        "faster); padded: lengths from T down to T/2.",
        "",
        "| cell | (T, B, I, H) | padded | fused fwd ms | kernel fwd ms | speed-up fwd "
        "| fused fwd+bwd ms | kernel fwd+bwd ms | speed-up fwd+bwd | fused=auto picks |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in records:
        name = r["cell"] + (" (bidirectional)" if r["bidirectional"] else "")
        name += f" (proj_size={r['proj_size']})" if r["proj_size"] else ""
        lines.append(
            f"| {name} | {tuple(r['shape'])} | {'yes' if r['padded'] else 'no'} "
            f"| {r['fused_fwd_ms']} | {r['kernel_fwd_ms']} | {r['kernel_speedup_fwd']}x "
            f"| {r['fused_fwdbwd_ms']} | {r['kernel_fwdbwd_ms']} | {r['kernel_speedup_fwdbwd']}x "
            f"| {r['auto_picks']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    records = []
    for cell, shape, bidirectional, proj in ROWS:
        records += measure_row(cell, shape, bidirectional, proj, args.repeats)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fused_auto.json").write_text(json.dumps(records, indent=1) + "\n")
    (RESULTS / "fused_auto.md").write_text(markdown(records, args.repeats))


if __name__ == "__main__":
    main()
