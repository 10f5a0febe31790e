"""Run the real CLI in a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAST = [
    "print_config=false",
    "data.num_train=64",
    "data.num_val=32",
    "data.num_test=32",
    "data.batch_size=16",
    "data.seq_len=12",
    "model.hidden_size=8",
    "callbacks.progress_bar.refresh_rate=0",
]


def run_cli(
    module: str, *overrides: str, cwd: Path | None = None, check: bool = True, timeout: int = 600
) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "DVC_NO_ANALYTICS": "1",
        "PYTHONWARNINGS": "ignore",
        "HYDRA_FULL_ERROR": "0",
    }
    proc = subprocess.run(
        [sys.executable, "-m", module, *overrides],
        cwd=cwd or ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{module} {' '.join(overrides)} failed ({proc.returncode}):\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())
