"""The real ``python -m rnnlab.train`` / ``rnnlab.evaluate`` CLI in a temp dir."""

import pytest
import torch

from tests.helpers import FAST, read_metrics, run_cli

GRID = [
    # cell, activation, connection, data, extra
    ("lstm", "tanh", "stack", "adding", []),
    ("gru", "relu", "highway", "copy", ["model.num_layers=3"]),
    ("rnn", "gelu", "residual", "adding", ["model.num_layers=3", "model.bidirectional=true"]),
    (
        "lstm",
        "silu",
        "dense",
        "copy",
        ["model.num_layers=2", "model.connection.concat_output=true"],
    ),
    ("gru", "tanh", "gated_feedback", "adding", ["model.num_layers=2"]),
    ("rnn", "relu", "parallel", "copy", ["model.init=identity"]),
    ("lstm", "softsign", "stack", "adding", ["optim=sgd", "optim/scheduler=cosine"]),
    (
        "gru",
        "elu",
        "residual",
        "copy",
        ["optim=rmsprop", "model.pooling=mean", "trainer.gradient_clip_algorithm=value"],
    ),
    (
        "rnn",
        "hardtanh",
        "highway",
        "adding",
        ["optim=adamw", "optim/scheduler=plateau", "model.pooling=max", "optim.l2=1e-4"],
    ),
    ("lstm", "leaky_relu", "gated_feedback", "copy", ["model/activation=hard_sigmoid_gates"]),
]


@pytest.mark.parametrize(
    "cell, activation, connection, data, extra", GRID, ids=["-".join(g[:4]) for g in GRID]
)
def test_cli_fast_dev_run_composes_and_trains(tmp_path, cell, activation, connection, data, extra):
    run_cli(
        "rnnlab.train",
        f"model/cell={cell}",
        f"model/activation={activation}",
        f"model/connection={connection}",
        f"data={data}",
        "trainer.fast_dev_run=true",
        f"hydra.run.dir={tmp_path}",
        *FAST,
        *extra,
    )
    metrics = read_metrics(tmp_path)["metrics"]
    assert "test/loss" in metrics and torch.isfinite(torch.tensor(metrics["test/loss"]))
    assert "train/loss" in metrics


def test_unknown_group_option_lists_valid_choices(tmp_path):
    proc = run_cli(
        "rnnlab.train", "model/activation=relux", f"hydra.run.dir={tmp_path}", check=False
    )
    assert proc.returncode != 0
    err = proc.stderr
    assert "relux" in err
    for valid in ("tanh", "relu", "gelu", "silu"):
        assert valid in err, err


def test_unknown_activation_value_fails_at_start_listing_valid(tmp_path):
    proc = run_cli(
        "rnnlab.train", "model.activation=relux", f"hydra.run.dir={tmp_path}", *FAST, check=False
    )
    assert proc.returncode != 0
    assert "activation='relux' is not a known activation; valid:" in proc.stderr
    assert not (tmp_path / "checkpoints").exists(), "must fail before any training"


def test_unjoinable_widths_are_refused(tmp_path):
    proc = run_cli(
        "rnnlab.train",
        "model/connection=residual",
        "model.connection.start_layer=1",
        "model.connection.project=false",
        f"hydra.run.dir={tmp_path}",
        *FAST,
        check=False,
    )
    assert proc.returncode != 0
    assert "cannot join width 2 to width 8" in proc.stderr


@pytest.mark.slow
def test_train_then_resume_from_last_checkpoint_then_evaluate(tmp_path):
    first = tmp_path / "first"
    run_cli("rnnlab.train", "trainer.max_epochs=1", f"hydra.run.dir={first}", *FAST)
    last = first / "checkpoints" / "last.ckpt"
    # every run keeps checkpoints/best.ckpt (tested, evaluate's input) and last.ckpt
    assert read_metrics(first)["best_checkpoint"] == str(first / "checkpoints" / "best.ckpt")
    ckpt = torch.load(last, weights_only=True)
    steps_per_epoch = 64 // 16
    assert (ckpt["epoch"], ckpt["global_step"]) == (0, steps_per_epoch)

    resumed = tmp_path / "resumed"
    run_cli(
        "rnnlab.train",
        "trainer.max_epochs=3",
        f"ckpt_path={last}",
        f"hydra.run.dir={resumed}",
        *FAST,
    )
    ckpt = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    assert "val_mse_best.min_value" in ckpt["state_dict"], "best-so-far must survive resume"
    # continued from epoch 1: two more epochs, and the step counter kept counting
    assert (ckpt["epoch"], ckpt["global_step"]) == (2, 3 * steps_per_epoch)
    record = read_metrics(resumed)
    assert record["global_step"] == 3 * steps_per_epoch
    # the best-so-far tracker is restored, not restarted: it covers epoch 0 too
    first_best = read_metrics(first)["metrics"]["val/mse_best"]
    assert record["metrics"]["val/mse_best"] <= first_best

    # evaluate the checkpoint that training tested: the same test metrics
    evaluation = tmp_path / "eval"
    run_cli(
        "rnnlab.evaluate", f"ckpt_path={record['best_checkpoint']}", f"hydra.run.dir={evaluation}"
    )
    import json

    evaluated = json.loads((evaluation / "metrics.json").read_text())
    assert evaluated["test/mse"] == pytest.approx(record["metrics"]["test/mse"], rel=1e-6)


def test_resume_from_missing_checkpoint_names_the_path(tmp_path):
    proc = run_cli(
        "rnnlab.train",
        f"ckpt_path={tmp_path}/nope.ckpt",
        f"hydra.run.dir={tmp_path}",
        *FAST,
        check=False,
    )
    assert (
        proc.returncode != 0 and "nope.ckpt" in proc.stderr and "no such checkpoint" in proc.stderr
    )


def test_auto_resume_restarts_a_finished_run_cleanly(tmp_path):
    """Re-running a finished run (DVC after a code change) trains afresh, keeps best.ckpt."""
    args = ("trainer.max_epochs=1", "ckpt_path=auto", f"hydra.run.dir={tmp_path}", *FAST)
    run_cli("rnnlab.train", *args)
    proc = run_cli("rnnlab.train", *args)
    out = proc.stdout + proc.stderr
    assert "last.ckpt was a finished run (fit_status='completed')" in out
    assert "resuming" not in out
    assert (tmp_path / "checkpoints" / "stale" / "last.ckpt").is_file()
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("*.ckpt")) == [
        "best.ckpt",
        "last.ckpt",
    ]
    assert read_metrics(tmp_path)["best_checkpoint"].endswith("checkpoints/best.ckpt")
