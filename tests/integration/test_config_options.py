"""Every shipped option of the training-strategy groups runs through the real CLI.

``logger``, ``callbacks``, ``optim``, ``optim/scheduler``, ``clip`` and the CPU
``trainer``s: the options are read from ``conf/<group>/``, so a new option file is
tested without touching this file. One Hydra multirun per group (one process, one job
per option) keeps it cheap: a 1-epoch run on 64 adding-problem sequences each.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir

from rnnlab.config import config_dir, register_resolvers
from tests.helpers import FAST, read_metrics, run_cli

CONF = Path(config_dir())
GROUPS = ("logger", "callbacks", "optim", "optim/scheduler", "clip", "trainer")
NEEDS_CUDA = {"trainer": {"gpu"}}
# trainer=ddp relaunches the command once per rank (Lightning re-runs sys.argv), which
# under a multirun would re-run the sweep: it runs alone (test_trainer_ddp_runs).
ALONE = {"trainer": {"ddp"}}
TINY = [o for o in FAST if not o.startswith("callbacks.")] + ["trainer.max_epochs=1"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _swept(group: str) -> list[str]:
    skip = ALONE.get(group, set())
    if not torch.cuda.is_available():
        skip = skip | NEEDS_CUDA.get(group, set())
    return [o for o in options(group) if o not in skip]


def _choice(job: Path, group: str) -> str:
    hydra_cfg = yaml.safe_load((job / ".hydra" / "hydra.yaml").read_text())
    return hydra_cfg["hydra"]["runtime"]["choices"][group]


def _config(job: Path) -> dict:
    return yaml.safe_load((job / ".hydra" / "config.yaml").read_text())


def _check_job(job: Path, group: str, option: str) -> None:
    """What each option must have done, beyond a completed, finite run."""
    record = read_metrics(job)
    assert record["status"] == "completed", (group, option)
    assert math.isfinite(record["metrics"]["test/loss"]), (group, option)
    assert "train/loss" in record["metrics"], (group, option)
    cfg = _config(job)
    if group == "clip":
        want = yaml.safe_load((CONF / "clip" / f"{option}.yaml").read_text())
        got = {k: cfg["trainer"][k] for k in want}
        assert got == want, (option, got)
    elif group == "logger":
        assert (job / "csv" / "metrics.csv").is_file() == (option in ("csv", "wandb"))
        assert (job / "wandb").is_dir() == (option == "wandb")
        assert ("lr-Adam" in record["metrics"]) == (option != "none")  # LR monitor
    elif group == "callbacks":
        names = sorted(p.name for p in (job / "checkpoints").glob("*.ckpt"))
        assert names == (["best.ckpt", "last.ckpt"] if option == "default" else []), names
        if option == "default":
            assert record["best_checkpoint"] == str(job / "checkpoints" / "best.ckpt")
        else:  # no rnnlab callbacks: Lightning's own checkpoint of the last epoch is tested
            assert Path(record["best_checkpoint"]).is_file()
    elif group == "optim":
        assert cfg["optim"]["optimizer"]["_target_"].lower().endswith(option)
    elif group == "trainer":
        fast_dev_run = bool(cfg["trainer"].get("fast_dev_run"))
        assert (record["best_checkpoint"] is None) == fast_dev_run, option


@pytest.mark.slow
@pytest.mark.parametrize("group", GROUPS)
def test_every_option_of_the_group_trains_and_tests(tmp_path, group):
    swept = _swept(group)
    extra = [] if group == "logger" else ["logger=csv"]
    run_cli(
        "rnnlab.train",
        "-m",
        *TINY,
        *extra,
        f"{group}={','.join(swept)}",
        f"hydra.sweep.dir={tmp_path}",
        "hydra.sweep.subdir=${hydra.job.num}",
    )
    jobs = sorted((p for p in tmp_path.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    assert sorted(_choice(job, group) for job in jobs) == sorted(swept)
    for job in jobs:
        _check_job(job, group, _choice(job, group))


@pytest.mark.slow
def test_trainer_ddp_runs(tmp_path):
    """The shipped ``trainer=ddp`` (2 processes; CPU here): one run, one metrics.json."""
    run_cli("rnnlab.train", *TINY, "logger=csv", "trainer=ddp", f"hydra.run.dir={tmp_path}")
    _check_job(tmp_path, "trainer", "ddp")
    assert (tmp_path / "train_ddp_process_1.log").is_file()  # the second rank really ran


def test_progress_bar_off_trains_and_logs_each_epoch(tmp_path):
    # Lightning refuses enable_progress_bar=false next to a progress-bar callback; the
    # run drops the callback and prints one line per epoch instead.
    run_cli(
        "rnnlab.train", *TINY, "trainer.max_epochs=2", "logger=none",
        "trainer.enable_progress_bar=false", f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    assert read_metrics(tmp_path)["status"] == "completed"
    log = (tmp_path / "train.log").read_text()
    assert "epoch 0/2:" in log and "epoch 1/2:" in log, log[-2000:]


def test_groups_cover_what_the_readme_documents():
    assert options("logger") == ["csv", "none", "wandb"]
    assert options("callbacks") == ["default", "none"]
    assert options("clip") == [
        "none",
        "norm_0.25",
        "norm_1",
        "norm_5",
        "value_0.1",
        "value_0.5",
        "value_1",
    ]
    assert {"default", "cpu", "debug", "ddp", "ddp_spawn", "gpu"} <= set(options("trainer"))


@pytest.mark.parametrize(
    "overrides, algorithm, value",
    [
        ([], "norm", 1.0),  # the default clip=norm_1: what trainer/default.yaml set before
        (["clip=none"], "norm", 0.0),
        (["clip=value_0.5"], "value", 0.5),
        (["clip=norm_5", "trainer.gradient_clip_val=2.0"], "norm", 2.0),  # dotted wins
        (["experiment=adding_elman"], "norm", 1.0),
    ],
)
def test_clip_group_sets_the_trainer_clipping(overrides, algorithm, value):
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    assert cfg.trainer.gradient_clip_algorithm == algorithm
    assert cfg.trainer.gradient_clip_val == value
