"""Numerical blow-up: a relu Elman RNN without clipping at a high learning rate.

The run must stop with a message naming the step and suggesting clipping or a lower LR,
keep its last good checkpoint, and in a sweep the next job must still run while the
sweeper (Optuna included) receives a finite penalty instead of NaN.
"""

import math

import torch
import yaml

from rnnlab.checkpoints import load_checkpoint
from tests.helpers import FAST, read_metrics, run_cli
from tests.wandb_records import run_file, summarize

BLOWUP = [
    "model/cell=rnn",
    "model/activation=relu",
    "model.init=identity",
    "trainer.gradient_clip_val=0",
    "optim=sgd",
    "logger=csv",
]


def test_blowup_stops_with_clear_message_and_keeps_last_good_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    # The learning rate grows tenfold per epoch (StepLR gamma=10): the first epochs are
    # healthy and write checkpoints, then the loss overflows.
    proc = run_cli(
        "rnnlab.train",
        *FAST,
        *BLOWUP,
        "data.num_train=128",
        "data.seq_len=50",
        "model.hidden_size=32",
        "optim.optimizer.lr=0.001",
        "optim/scheduler=step",
        "optim.scheduler.step_size=1",
        "optim.scheduler.gamma=10",
        "trainer.max_epochs=8",
        f"hydra.run.dir={run_dir}",
        check=False,
    )
    assert proc.returncode == 1
    message = proc.stderr.strip().splitlines()[-1]
    assert message.startswith("rnnlab.train: training diverged: non-finite loss")
    assert "global step" in message and "epoch" in message
    assert "gradient_clip_val" in message and "optim.optimizer.lr" in message
    assert "Traceback" not in proc.stderr

    record = read_metrics(run_dir)
    assert record["status"] == "diverged"
    diverged_epoch = record["epoch"]
    assert diverged_epoch >= 1  # so there is a good checkpoint to keep

    last = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert last["epoch"] < diverged_epoch
    weights = [t for t in last["state_dict"].values() if t.is_floating_point()]
    assert weights and all(torch.isfinite(t).all() for t in weights)
    assert not list((run_dir / "checkpoints").glob("*.tmp*"))


def test_sweep_goes_on_after_a_diverged_job(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "rnnlab.train",
        "-m",
        *FAST,
        *BLOWUP,
        "logger=wandb",  # offline: each job's W&B run must be finished, the failed one too
        "trainer.max_epochs=2",
        "optim.optimizer.lr=10.0,0.001",  # job 0 diverges, job 1 is healthy
        f"hydra.sweep.dir={sweep}",
    )
    assert proc.returncode == 0
    assert read_metrics(sweep / "0")["status"] == "diverged"
    healthy = read_metrics(sweep / "1")
    assert healthy["status"] == "completed" and "test/mse" in healthy["metrics"]
    assert (
        "job diverged; val/loss=1000000.0 goes to the sweeper"
        in (sweep / "0" / "train.log").read_text()
    )
    runs = [summarize(run_file(sweep / job)) for job in ("0", "1")]
    assert runs[0]["run"]["id"] != runs[1]["run"]["id"]
    assert (runs[0]["exit_code"], runs[0]["summary"]["status"]) == (1, "diverged")
    assert (runs[1]["exit_code"], runs[1]["summary"]["status"]) == (0, "completed")


def test_optuna_gets_a_finite_penalty_for_a_diverged_trial(tmp_path):
    sweep = tmp_path / "optuna"
    run_cli(
        "rnnlab.train",
        "-m",
        "hydra/sweeper=optuna",
        "hydra/sweeper/sampler=grid",
        "hydra.sweeper.direction=minimize",
        "hydra.sweeper.n_trials=2",
        *FAST,
        *BLOWUP,
        "trainer.max_epochs=2",
        "optim.optimizer.lr=choice(10.0,0.001)",
        "diverged_value=123.0",
        f"hydra.sweep.dir={sweep}",
    )
    statuses = sorted(read_metrics(job)["status"] for job in sweep.iterdir() if job.is_dir())
    assert statuses == ["completed", "diverged"]
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert result["best_params"]["optim.optimizer.lr"] == 0.001
    assert math.isfinite(result["best_value"]) and result["best_value"] < 123.0
    logs = "".join((job / "train.log").read_text() for job in sweep.iterdir() if job.is_dir())
    assert "val/loss=123.0 goes to the sweeper" in logs
