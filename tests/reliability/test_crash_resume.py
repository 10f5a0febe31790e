"""SIGKILL a training run right after an epoch that did not improve the monitored metric;
the same command again resumes from that epoch (not from the best one) and ends exactly
where an uninterrupted run ends (CPU: identical metrics and weights)."""

from __future__ import annotations

import csv
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

EPOCHS = 4
# Long enough epochs (32 steps) that the kill lands inside one; dropout and head
# dropout so the random state matters, two layers so dropout applies; the default
# callbacks (the gradient-flow probe at each epoch's end draws random numbers too).
# lr=0.01 makes val/mse move up and down (measured: epoch 1 is worse than epoch 0).
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
    "optim.optimizer.lr=0.01",
    "callbacks.progress_bar.refresh_rate=0",
    f"trainer.max_epochs={EPOCHS}",
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


def _val_epochs(out: Path, key: str = "val/mse") -> list[tuple[int, float]]:
    """(epoch, value) of every validation row in the run's CSV log, in file order."""
    path = out / "csv" / "metrics.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [(int(r["epoch"]), float(r[key])) for r in csv.DictReader(f) if r.get(key)]


def _first_non_improving_epoch(values: list[tuple[int, float]]) -> int:
    """The first epoch (not the last one) whose value is no better than an earlier one."""
    for i, (epoch, value) in enumerate(values[1:-1], start=1):
        if value >= min(v for _, v in values[:i]):
            return epoch
    raise AssertionError(f"every epoch but the last improved val/mse: {values}; raise the lr")


@pytest.mark.slow
def test_sigkill_after_a_non_improving_epoch_resumes_from_it_to_identical_result(tmp_path):
    reference = tmp_path / "reference"
    run_cli("rnnlab.train", *ARGS, f"hydra.run.dir={reference}")
    curve = _val_epochs(reference)
    assert [e for e, _ in curve] == list(range(EPOCHS))
    kill_at = _first_non_improving_epoch(curve)

    crashed = tmp_path / "crashed"
    assert kill_after_checkpoint(crashed, epoch=kill_at) == kill_at
    # last.ckpt is the last completed epoch, not a copy of the (earlier) best one
    best_epoch = _ckpt_epoch(crashed / "checkpoints" / "best.ckpt")
    assert best_epoch is not None and best_epoch < kill_at

    proc = run_cli("rnnlab.train", *ARGS, f"hydra.run.dir={crashed}")
    out = proc.stderr + proc.stdout
    assert "resuming interrupted run from" in out
    assert f"epoch {kill_at} was its last completed epoch" in out, out[-3000:]
    assert f"training continues with epoch {kill_at + 1}" in out
    # The resumed process trained exactly the epochs after the kill, with the reference's
    # values, and metrics.csv still holds the epochs before the kill: the whole curve
    # equals the uninterrupted run's (Lightning's own CSVLogger would have deleted them).
    resumed_curve = _val_epochs(crashed)
    assert [e for e, _ in resumed_curve] == list(range(EPOCHS))
    for (_, got_value), (_, want_value) in zip(resumed_curve, curve):
        assert abs(got_value - want_value) <= 1e-6

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
    assert Path(got["best_checkpoint"]).name == Path(want["best_checkpoint"]).name == "best.ckpt"
    assert _ckpt_epoch(crashed / "checkpoints" / "best.ckpt") == _ckpt_epoch(
        reference / "checkpoints" / "best.ckpt"
    )


# --- which last.ckpt ckpt_path=auto resumes, and which it sets aside as stale ------------


def _auto_case(tmp_path, compose_cfg, *, change: str | None, processed: bool = False):
    from omegaconf import OmegaConf

    from rnnlab.checkpoints import code_fingerprint
    from rnnlab.resume import resolve_ckpt_path

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
    elif change in ("completed", "diverged"):  # recorded by the run, at any epoch
        ckpt["rnnlab"]["fit_status"] = change
    elif change == "old_targets":  # written before rnnlab.data moved (rnnlab.compat)
        run_config["data"]["_target_"] = "rnnlab.data.synthetic.AddingDataModule"
    elif change == "last_epoch":  # killed after the last epoch's save, before the record
        ckpt["epoch"] = 2
    elif change == "early_stopped":  # ditto, after early stopping stopped it
        ckpt["callbacks"] = {"EarlyStopping{'monitor': 'val/loss'}": {"stopped_epoch": 1}}
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


def test_auto_compares_a_stored_config_after_renaming_its_old_targets(tmp_path, compose_cfg):
    resolved, last = _auto_case(tmp_path, compose_cfg, change="old_targets")
    assert resolved == str(last)


@pytest.mark.parametrize("change", ["last_epoch", "early_stopped"])
def test_auto_takes_finished_from_the_run_record_not_from_epoch_numbers(
    tmp_path, compose_cfg, change
):
    """A last.ckpt without a recorded fit_status is an interrupted run, whatever its
    epoch or early-stopping state (Lightning then ends the fit at once and tests)."""
    resolved, last = _auto_case(tmp_path, compose_cfg, change=change)
    assert resolved == str(last)


@pytest.mark.parametrize(
    "change, processed",
    [
        ("config", False),
        ("code", False),
        ("unrecorded_code", False),
        ("completed", False),
        ("diverged", False),
        ("data", True),
    ],
)
def test_auto_sets_stale_checkpoints_aside(tmp_path, compose_cfg, change, processed):
    """The stale-resume bug: an interrupted run's last.ckpt written by older code (or
    for a re-prepared dataset) was resumed because only the config was compared. A run
    that recorded the end of its fit (completed or diverged) is finished at any epoch."""
    resolved, last = _auto_case(tmp_path, compose_cfg, change=change, processed=processed)
    assert resolved is None
    assert not last.exists() and (last.parent / "stale" / "last.ckpt").is_file()


def test_checkpoints_record_code_and_data_fingerprints(tmp_path, compose_cfg):
    from rnnlab.checkpoints import code_fingerprint
    from rnnlab.train import train

    train(compose_cfg(tmp_path, "trainer.max_epochs=1", "test=false"))
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["rnnlab"]["code_sha256"] == code_fingerprint()


def test_finished_run_records_it_in_last_ckpt_and_auto_starts_fresh(tmp_path, compose_cfg):
    """The issue's measurement: a finished run whose best epoch is not its last was taken
    for an interrupted one and resumed from the best epoch, retraining the epochs after it.
    Now last.ckpt is the last epoch, carries fit_status, and a re-run starts fresh."""
    from rnnlab.resume import resolve_ckpt_path
    from rnnlab.train import train

    cfg = compose_cfg(tmp_path, "trainer.max_epochs=3", "ckpt_path=auto", "test=false")
    train(cfg)
    ckpts = tmp_path / "checkpoints"
    assert sorted(p.name for p in ckpts.glob("*.ckpt")) == ["best.ckpt", "last.ckpt"]
    last = torch.load(ckpts / "last.ckpt", weights_only=True)
    assert last["epoch"] == 2 and last["rnnlab"]["fit_status"] == "completed"
    best = torch.load(ckpts / "best.ckpt", weights_only=True)
    assert best["epoch"] <= 2 and "fit_status" not in best["rnnlab"]
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "completed" and record["best_checkpoint"].endswith("best.ckpt")

    assert resolve_ckpt_path(cfg) is None
    assert sorted(p.name for p in (ckpts / "stale").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert not list(ckpts.glob("*.ckpt"))


def test_auto_sets_aside_a_best_ckpt_left_without_last_ckpt(tmp_path, compose_cfg):
    """Killed between epoch 0's best.ckpt and last.ckpt: the fresh run must not find a
    best.ckpt in its way (Lightning would write best-v1.ckpt)."""
    from rnnlab.resume import resolve_ckpt_path

    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    torch.save({"epoch": 0}, ckpts / "best.ckpt")
    assert resolve_ckpt_path(compose_cfg(tmp_path, "ckpt_path=auto")) is None
    assert (ckpts / "stale" / "best.ckpt").is_file() and not (ckpts / "best.ckpt").exists()
