"""Two sweeps started in the same second never share an output directory; the jobs of
one sweep share its directory even when a multi-process launcher runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT, run_cli

TINY = [
    "trainer.fast_dev_run=true",
    "print_config=false",
    "logger=csv",
    "data.num_train=32",
    "data.num_val=16",
    "data.num_test=16",
    "data.seq_len=8",
    "model.hidden_size=8",
    "callbacks.progress_bar.refresh_rate=0",
]


def test_output_dirs_are_time_plus_pid():
    hydra_cfg = yaml.safe_load((ROOT / "conf" / "hydra" / "default.yaml").read_text())
    for key in ("run", "sweep"):
        assert hydra_cfg[key]["dir"].endswith("${now:%Y-%m-%d_%H-%M-%S}_${rnnlab_pid:}")


def _jobs(sweep: Path) -> dict[str, dict]:
    return {
        job.name: json.loads((job / "metrics.json").read_text())
        for job in sweep.iterdir()
        if job.is_dir() and (job / "metrics.json").is_file()
    }


def test_two_sweeps_started_together_get_their_own_directories(tmp_path):
    # the default dir with the time cut to the day: both sweeps surely start "at once"
    sweep_dir = "hydra.sweep.dir=${paths.log_dir}/multiruns/${now:%Y-%m-%d}_${rnnlab_pid:}"
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONWARNINGS": "ignore"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rnnlab.train",
                "-m",
                f"seed={seed}",
                f"paths.log_dir={tmp_path}",
                sweep_dir,
                *TINY,
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    sweeps = sorted((tmp_path / "multiruns").iterdir())
    assert len(sweeps) == 2, sweeps
    days = {s.name.rsplit("_", 1)[0] for s in sweeps}
    assert len(days) == 1, "same time stamp: only the pid tells them apart"
    assert {s.name.rsplit("_", 1)[1] for s in sweeps} == {str(p.pid) for p in procs}
    results = [_jobs(s) for s in sweeps]
    assert all(list(r) == ["0"] for r in results), results
    losses = {r["0"]["metrics"]["test/loss"] for r in results}
    assert len(losses) == 2, "each sweep wrote its own job's metrics"


@pytest.mark.slow
def test_jobs_of_one_parallel_sweep_share_its_directory(tmp_path):
    """joblib runs jobs in worker processes; they must still land in the sweep's dir
    (the pid is resolved once, by the launching process)."""
    run_cli(
        "rnnlab.train",
        "-m",
        "hydra/launcher=parallel",
        "hydra.launcher.n_jobs=2",
        "seed=1,2",
        f"paths.log_dir={tmp_path}",
        *TINY,
    )
    sweeps = list((tmp_path / "multiruns").iterdir())
    assert len(sweeps) == 1, sweeps
    assert sorted(_jobs(sweeps[0])) == ["0", "1"]
    assert (sweeps[0] / "multirun.yaml").is_file()
