"""How long ``python -m rnnlab.report`` takes on a 50-job sweep (target: under 10 s).

The sweep is written the way ``rnnlab.train -m`` writes one (the job layout of
tests/unit/test_report.py's ``write_job``): 5 activations × 2 connections × 5 seeds,
20-epoch learning curves, a gradient-flow record in every job, so the report draws
every panel it has (leaderboard, configurations with mean ± std, Welch's tests, heat
map, learning curves with bands, gradient flow, importance). The report runs as the
user runs it, a fresh ``python -m rnnlab.report`` process, so its wall time includes
the imports; the median of ``--repeats`` runs is kept.

    python -m benchmarks.report_render [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rnnlab.io import atomic_write_json, atomic_write_text
from tests.unit.test_report import write_job, write_multirun_yaml

ACTIVATIONS = ("tanh", "relu", "gelu", "silu", "elu")
CONNECTIONS = ("stack", "residual")
SEEDS = (0, 1, 2, 3, 4)
RESULTS = Path(__file__).parent / "results"


def write_sweep(root: Path) -> int:
    """The 50-job sweep under ``root``; returns the number of jobs."""
    write_multirun_yaml(
        root,
        [f"model/activation={','.join(ACTIVATIONS)}", f"model/connection={','.join(CONNECTIONS)}"],
        {"seed": ",".join(map(str, SEEDS))},
    )
    n = 0
    for a, act in enumerate(ACTIVATIONS):
        for c, conn in enumerate(CONNECTIONS):
            for seed in SEEDS:
                best = 0.6 + 0.05 * a + 0.03 * c + 0.01 * seed
                write_job(
                    root, str(n), act, conn, best, extra={"seed": str(seed)},
                    gradient_flow=True, epochs=20,
                )  # fmt: skip
                n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "multiruns" / "2026-12-01_00-00-00_1"
        root.mkdir(parents=True)
        jobs = write_sweep(root)
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "rnnlab.report", str(root)], check=True,
                           capture_output=True)  # fmt: skip
            times.append(time.perf_counter() - start)
        made = sorted(p.name for p in (root / "report").iterdir())
    median = statistics.median(times)
    load = round(os.getloadavg()[0], 1)
    record = {
        "command": f"python -m benchmarks.report_render --repeats {args.repeats}",
        "jobs": jobs,
        "wall_s": [round(t, 2) for t in times],
        "median_s": round(median, 2),
        "target_s": 10.0,
        "load_average_1min": load,
        "outputs": made,
        "machine": f"{platform.processor() or platform.machine()}, python {platform.python_version()}",
    }
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(RESULTS / "report_render.json", record)
    atomic_write_text(
        RESULTS / "report_render.md",
        f"`{record['command']}`: `python -m rnnlab.report` on a {jobs}-job sweep "
        f"(5 activations × 2 connections × 5 seeds, 20 epochs, gradient flow in every job) "
        f"took a median of **{median:.1f} s** (runs: {', '.join(f'{t:.1f}' for t in times)} s; "
        f"target < 10 s; 1-minute load average {load} on this 2-core machine), wrote {', '.join(made)}.\n",
    )
    print(json.dumps(record, indent=1))
    return 0 if median < record["target_s"] else 1


if __name__ == "__main__":
    sys.exit(main())
