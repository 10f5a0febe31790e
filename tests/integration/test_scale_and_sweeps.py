"""Scale and sweeps through the real CLI: DDP on 2 CPU processes (gloo), ddp_spawn
inside a multirun, the joblib and submitit-local launchers, and an Optuna search."""

import pytest
import yaml
from hydra import compose, initialize_config_dir

from rnnlab.config import config_dir, register_resolvers
from tests.helpers import FAST, read_metrics, run_cli
from tests.wandb_records import run_file, summarize

SMALL = [*FAST, "data=copy", "trainer.max_epochs=2"]


def _jobs(sweep):
    return sorted(
        (p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)
    )


@pytest.mark.slow
def test_ddp_two_cpu_processes_train_test_and_log_once(tmp_path):
    run_dir = tmp_path / "ddp"
    run_cli(
        "rnnlab.train",
        *SMALL,
        "trainer=ddp",
        "trainer.devices=2",
        "trainer.accelerator=cpu",
        f"hydra.run.dir={run_dir}",
    )
    record = read_metrics(run_dir)
    assert record["status"] == "completed" and 0 <= record["metrics"]["test/acc"] <= 1
    assert (run_dir / "train_ddp_process_1.log").is_file()  # the second rank really ran
    run = summarize(run_file(run_dir))  # exactly one W&B run for two ranks
    epochs = [row["epoch"] for row in run["history"] if "val/acc" in row]
    assert epochs == [0, 1]  # each epoch logged once, not once per rank


@pytest.mark.slow
def test_multirun_jobs_with_ddp_spawn(tmp_path):
    sweep = tmp_path / "spawn"
    run_cli(
        "rnnlab.train",
        "-m",
        *SMALL,
        "logger=csv",
        "trainer=ddp_spawn",
        "trainer.devices=2",
        "trainer.accelerator=cpu",
        "trainer.max_epochs=1",
        "test=false",
        "model/cell=lstm,gru",
        f"hydra.sweep.dir={sweep}",
    )
    jobs = _jobs(sweep)
    assert [j.name for j in jobs] == ["0", "1"]
    for job in jobs:
        assert "val/acc_best" in read_metrics(job)["metrics"]


@pytest.mark.slow
def test_joblib_and_submitit_local_launchers(tmp_path):
    for launcher in ("parallel", "local"):
        sweep = tmp_path / launcher
        run_cli(
            "rnnlab.train",
            "-m",
            *SMALL,
            "logger=csv",
            "trainer.max_epochs=1",
            f"hydra/launcher={launcher}",
            "model/cell=lstm,gru",
            f"hydra.sweep.dir={sweep}",
        )
        jobs = _jobs(sweep)
        assert [j.name for j in jobs] == ["0", "1"], launcher
        cells = [
            yaml.safe_load((j / ".hydra" / "config.yaml").read_text())["model"]["cell"]
            for j in jobs
        ]
        assert cells == ["lstm", "gru"]
        assert all(read_metrics(j)["status"] == "completed" for j in jobs)
    assert (tmp_path / "local" / ".submitit").is_dir()  # submitit really launched them


def test_optuna_sweep_reports_best_configuration(tmp_path):
    sweep = tmp_path / "optuna"
    proc = run_cli(
        "rnnlab.train",
        "sweep=optuna",
        *SMALL,
        "logger=csv",
        "trainer.max_epochs=1",
        "hydra.sweeper.n_trials=4",
        f"hydra.sweep.dir={sweep}",
    )
    jobs = _jobs(sweep)
    assert len(jobs) == 4
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(result["best_params"]) == {
        "optim.optimizer.lr",
        "model/activation",
        "model/connection",
        "trainer.gradient_clip_val",
    }
    # copy monitors val/acc (max): the best value is the best job's val/acc_best
    best = max(read_metrics(j)["metrics"]["val/acc_best"] for j in jobs)
    assert result["best_value"] == best
    assert "Best value" in proc.stdout + proc.stderr


def _compose_sweep(*overrides):
    register_resolvers()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def test_sweep_configs_define_their_grids():
    grid = _compose_sweep("sweep=activation_connection").hydra.sweeper.params
    assert len(grid["model/activation"].split(",")) * len(grid["model/connection"].split(",")) == 18
    assert _compose_sweep("sweep=cells").hydra.sweeper.params["model/cell"] == "rnn,lstm,gru"
    clip = _compose_sweep("sweep=clipping")
    assert len(clip.hydra.sweeper.params["clip"].split(",")) == 7 and clip.model.cell == "rnn"
    optuna = _compose_sweep("sweep=optuna", "data=text_langid")
    assert optuna.hydra.sweeper.direction == "maximize"  # val/acc
    assert _compose_sweep("sweep=optuna").hydra.sweeper.direction == "minimize"  # val/loss
    for cfg in (clip, optuna):
        assert cfg.hydra.mode.name == "MULTIRUN"


def test_slurm_launcher_takes_nodes_and_devices_from_the_trainer():
    cfg = _compose_sweep(
        "hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)
