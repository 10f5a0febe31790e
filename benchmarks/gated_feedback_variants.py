"""Cell variants inside gated feedback: the variant loop against the plain kernel.

    python -m benchmarks.gated_feedback_variants   # writes benchmarks/results/gated_feedback_variants.md

A 2-layer gated-feedback LSTM at (T, B, I, H) = (50, 32, 64, 128), training mode,
forward+backward of out.sum(): the plain stack (the gated-feedback kernel) against the
same stack with ``zoneout=0.1`` (the gated-feedback variant loop,
nn/connections/gated_feedback_variants.py). Median of 15 interleaved repeats after 3
warm-ups; the machine is shared, so compare the ratio.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from rnnlab.nn import build_stack

SHAPE = (50, 32, 64, 128)
RESULTS = Path(__file__).parent / "results"


def _stack(**variant) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = {"cell": "lstm", "hidden_size": SHAPE[3], "num_layers": 2}
    cfg |= {"connection": {"name": "gated_feedback"}, **variant}
    return build_stack(SHAPE[2], cfg).train()


def main() -> None:
    steps, batch, inp, _ = SHAPE
    impls = {
        "plain (gated-feedback kernel)": _stack(),
        "zoneout=0.1 (variant loop)": _stack(zoneout=0.1),
    }
    x = torch.randn(batch, steps, inp)

    def run(stack: torch.nn.Module) -> float:
        stack.zero_grad(set_to_none=True)
        start = time.perf_counter()
        stack(x)[0].sum().backward()
        return (time.perf_counter() - start) * 1000

    for stack in impls.values():
        for _ in range(3):
            run(stack)
    times: dict[str, list[float]] = {k: [] for k in impls}
    for _ in range(15):
        for name, stack in impls.items():
            times[name].append(run(stack))
    med = {k: statistics.median(v) for k, v in times.items()}
    plain, loop = med.values()
    lines = [
        "`python -m benchmarks.gated_feedback_variants` — torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads; 2-layer gated-feedback LSTM, "
        f"fwd+bwd at (T, B, I, H) = {SHAPE}; median of 15 interleaved",
        "",
        "| stack | fwd+bwd ms | × plain |",
        "| --- | ---: | ---: |",
        *(f"| {k} | {v:.1f} | {v / plain:.2f}× |" for k, v in med.items()),
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gated_feedback_variants.md").write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"ratio {loop / plain:.2f}x")


if __name__ == "__main__":
    main()
