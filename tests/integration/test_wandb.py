"""W&B with no account on the machine: the run goes offline by itself and can be read back.

The test removes WANDB_MODE and every credential (HOME without a netrc), so the
``mode: auto`` logic, not the test environment, decides to log offline.
"""

import csv
import os
import subprocess
import sys

import pytest

from rnnlab.loggers import has_wandb_credentials, resolve_mode
from tests.helpers import FAST, ROOT
from tests.wandb_records import run_file, summarize


@pytest.mark.slow
def test_train_without_wandb_account_logs_an_offline_run(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(home), DVC_NO_ANALYTICS="1", NETRC=str(home / "missing-netrc"))
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rnnlab.train",
            "data=copy",
            "model/cell=gru",
            "model/activation=relu",
            "model/connection=residual",
            "model.num_layers=2",
            *FAST,
            "trainer.max_epochs=3",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    run = summarize(run_file(run_dir))

    model = run["config"]["model"]
    assert (model["cell"], model["activation"], model["connection"]["name"]) == (
        "gru",
        "relu",
        "residual",
    )
    # The whole composed config is there, not only the model.
    assert run["config"]["data"]["_target_"].endswith("CopyDataModule")
    assert run["config"]["trainer"]["max_epochs"] == 3

    # Per-epoch val/acc in W&B equals what the run computed (its CSV log, same values).
    wandb_val = [(row["epoch"], row["val/acc"]) for row in run["history"] if "val/acc" in row]
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        csv_val = [
            (int(r["epoch"]), float(r["val/acc"])) for r in csv.DictReader(f) if r["val/acc"]
        ]
    assert len(wandb_val) == 3
    assert [e for e, _ in wandb_val] == [e for e, _ in csv_val] == [0, 1, 2]
    assert [v for _, v in wandb_val] == pytest.approx([v for _, v in csv_val], rel=1e-6)

    # Test-time per-class table and confusion matrix; checkpoints by path, not uploaded.
    logged = set().union(*(row.keys() for row in run["history"]))
    assert any(k.startswith("test/per_class") for k in logged)
    assert any(k.startswith("test/confusion_matrix") for k in logged)
    assert run["summary"]["best_checkpoint"].endswith(".ckpt")
    assert not list(run_dir.glob("wandb/offline-run-*/files/**/*.ckpt"))
    assert run["exit_code"] == 0 and run["summary"]["status"] == "completed"
    assert "wandb sync" in proc.stdout + proc.stderr


def test_mode_auto_is_online_only_with_credentials(tmp_path):
    assert resolve_mode("auto", {"HOME": str(tmp_path)}) == "offline"
    assert resolve_mode("auto", {"HOME": str(tmp_path), "WANDB_API_KEY": "x" * 40}) == "online"
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    netrc.chmod(0o600)
    assert has_wandb_credentials({"HOME": str(tmp_path)})
    assert resolve_mode("auto", {"HOME": str(tmp_path)}) == "online"
    # An explicit WANDB_MODE always wins; unknown modes are refused with the valid ones.
    assert resolve_mode("auto", {"HOME": str(tmp_path), "WANDB_MODE": "offline"}) == "offline"
    assert resolve_mode("online", {"HOME": str(tmp_path), "WANDB_MODE": "disabled"}) == "disabled"
    with pytest.raises(ValueError, match="valid: auto, online, offline, disabled"):
        resolve_mode("sometimes", {})
