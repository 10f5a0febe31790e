"""SIGKILL a training run mid-epoch; the same command again resumes and ends exactly
where an uninterrupted run ends (CPU: identical metrics and weights)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from tests.helpers import ROOT, read_metrics, run_cli

# Long enough epochs (64 steps) that the kill lands inside one; dropout and head
# dropout so the random state matters, two layers so dropout applies.
ARGS = [
    "print_config=false",
    "data.num_train=1024",
    "data.num_val=64",
    "data.num_test=64",
    "data.batch_size=16",
    "data.seq_len=12",
    "model.hidden_size=16",
    "model.num_layers=2",
    "model.dropout=0.2",
    "model.head_dropout=0.2",
    "callbacks.progress_bar.refresh_rate=0",
    "trainer.max_epochs=3",
    "ckpt_path=auto",
    "logger=csv",
]


def _env() -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "offline", "PYTHONWARNINGS": "ignore"}


def _ckpt_epoch(path: Path) -> int | None:
    """The epoch stored in a checkpoint, or None while it is absent or unreadable."""
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
    except Exception:  # noqa: BLE001 - absent, or (without atomic saves) torn
        return None


def kill_after_checkpoint(out: Path, epoch: int, timeout: float = 300) -> int:
    """Start training, SIGKILL it as soon as last.ckpt of ``epoch`` is readable
    (the run is then inside epoch ``epoch + 1``); return the epoch last.ckpt holds after."""
    last = out / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnnlab.train", *ARGS, f"hydra.run.dir={out}"],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    try:
        while _ckpt_epoch(last) != epoch:
            assert proc.poll() is None, f"training ended before the kill: {proc.stderr.read()}"
            assert time.monotonic() < deadline, "no checkpoint within the timeout"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "metrics.json").exists(), "the killed run must not have finished"
    stored = _ckpt_epoch(last)
    assert stored is not None, "last.ckpt must survive the kill intact"
    return stored


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def test_sigkill_mid_epoch_then_same_command_resumes_to_identical_result(tmp_path):
    reference = tmp_path / "reference"
    run_cli("rnnlab.train", *ARGS, f"hydra.run.dir={reference}")

    crashed = tmp_path / "crashed"
    stored_epoch = kill_after_checkpoint(crashed, epoch=0)
    assert stored_epoch < 2, "killed after the last epoch: nothing left to resume"
    proc = run_cli("rnnlab.train", *ARGS, f"hydra.run.dir={crashed}")
    assert "resuming interrupted run" in proc.stderr + proc.stdout

    want, got = read_metrics(reference), read_metrics(crashed)
    assert (got["epoch"], got["global_step"]) == (want["epoch"], want["global_step"])
    assert got["metrics"].keys() == want["metrics"].keys()
    for key, value in want["metrics"].items():
        assert abs(got["metrics"][key] - value) <= 1e-6, (key, got["metrics"][key], value)
    w_ref, w_res = _weights(reference), _weights(crashed)
    assert w_ref.keys() == w_res.keys()
    for key in w_ref:
        assert torch.allclose(w_ref[key].float(), w_res[key].float(), rtol=0, atol=1e-6), key
    # the best-so-far tracker covers the epochs before the crash too
    assert got["metrics"]["val/mse_best"] == want["metrics"]["val/mse_best"]
    assert Path(got["best_checkpoint"]).name == Path(want["best_checkpoint"]).name
