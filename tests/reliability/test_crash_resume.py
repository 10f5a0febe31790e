"""SIGKILL a training run mid-epoch; the same command again resumes and ends exactly
where an uninterrupted run ends (CPU: identical metrics and weights)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import ROOT, read_metrics, run_cli

# Long enough epochs (32 steps) that the kill lands inside one; dropout and head
# dropout so the random state matters, two layers so dropout applies; the default
# callbacks (gradient-flow probe after each epoch's checkpoint draws random numbers too).
ARGS = [
    "print_config=false",
    "data.num_train=512",
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


@pytest.mark.slow
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


# --- which last.ckpt ckpt_path=auto resumes, and which it sets aside as stale ------------


def _auto_case(tmp_path, compose_cfg, *, change: str | None, processed: bool = False):
    from omegaconf import OmegaConf

    from rnnlab.checkpoints import code_fingerprint
    from rnnlab.train import resolve_ckpt_path

    data = ["data=csv", f"data.data_dir={tmp_path / 'data'}"] if processed else []
    cfg = compose_cfg(tmp_path, "trainer.max_epochs=3", "ckpt_path=auto", *data)
    run_config = OmegaConf.to_container(cfg, resolve=True)
    ckpt = {
        "epoch": 0,
        "state_dict": {},
        "hyper_parameters": {"run_config": run_config},
        "rnnlab": {"code_sha256": code_fingerprint()},
    }
    if processed:
        (tmp_path / "data").mkdir()
        sums = {"train.pt": "1" * 64, "val.pt": "2" * 64, "test.pt": "3" * 64}
        (tmp_path / "data" / "meta.json").write_text(json.dumps({"checksums": sums}))
        ckpt["ProcessedDataModule"] = {"checksums": dict(sums)}
    if change == "config":
        run_config["seed"] += 1
    elif change == "code":
        ckpt["rnnlab"]["code_sha256"] = "0" * 64
    elif change == "unrecorded_code":
        del ckpt["rnnlab"]
    elif change == "data":
        ckpt["ProcessedDataModule"]["checksums"]["train.pt"] = "f" * 64
    elif change == "finished":
        ckpt["epoch"] = 2
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.parent.mkdir()
    torch.save(ckpt, last)
    return resolve_ckpt_path(cfg), last


@pytest.mark.parametrize("processed", [False, True], ids=["synthetic", "processed"])
def test_auto_resumes_an_interrupted_run_of_the_same_config_code_and_data(
    tmp_path, compose_cfg, processed
):
    resolved, last = _auto_case(tmp_path, compose_cfg, change=None, processed=processed)
    assert resolved == str(last)


@pytest.mark.parametrize(
    "change, processed",
    [
        ("config", False),
        ("code", False),
        ("unrecorded_code", False),
        ("finished", False),
        ("data", True),
    ],
)
def test_auto_sets_stale_checkpoints_aside(tmp_path, compose_cfg, change, processed):
    """The stale-resume bug: an interrupted run's last.ckpt written by older code (or
    for a re-prepared dataset) was resumed because only the config was compared."""
    resolved, last = _auto_case(tmp_path, compose_cfg, change=change, processed=processed)
    assert resolved is None
    assert not last.exists() and (last.parent / "stale" / "last.ckpt").is_file()


def test_checkpoints_record_code_and_data_fingerprints(tmp_path, compose_cfg):
    from rnnlab.checkpoints import code_fingerprint
    from rnnlab.train import train

    train(compose_cfg(tmp_path, "trainer.max_epochs=1", "test=false"))
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["rnnlab"]["code_sha256"] == code_fingerprint()
