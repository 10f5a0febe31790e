"""SIGKILL `dvc repro` while it trains; `dvc repro` again resumes the train stage from
its last.ckpt (persist: true, ckpt_path=auto) and ends where an uninterrupted run of the
same stage command ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.test_dvc import make_project, sh
from tests.reliability.test_crash_resume import _ckpt_epoch

PIPELINE = {
    "text_langid": {
        "prepare": "prepare.languages=[english,spanish,italian] prepare.max_per_language=150",
        "train": "trainer.max_epochs=3 model.hidden_size=16 model.embedding_dim=8 "
        "data.batch_size=8 logger=csv",
    }
}


@pytest.mark.slow
def test_sigkill_dvc_repro_then_dvc_repro_resumes(tmp_path):
    work = make_project(tmp_path, PIPELINE)
    train_dir = work / "results" / "text_langid" / "train"
    last = train_dir / "checkpoints" / "last.ckpt"
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "WANDB_MODE": "offline"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro"],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: kill dvc and the train stage
    )
    deadline = time.monotonic() + 600
    while _ckpt_epoch(last) is None:
        assert proc.poll() is None, "dvc repro ended before the first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint within 10 minutes"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _ckpt_epoch(last)
    assert killed_at is not None and killed_at < 2  # it died before finishing
    assert not (train_dir / "metrics.json").exists()

    second = sh(sys.executable, "-m", "dvc", "repro", cwd=work)
    assert "Running stage 'train@text_langid'" in second.stdout
    log = "".join(p.read_text() for p in train_dir.glob("*.log"))
    assert "resuming interrupted run from" in log
    resumed = yaml.safe_load((train_dir / "metrics.json").read_text())
    assert resumed["status"] == "completed" and resumed["epoch"] == 3

    # The same stage command, uninterrupted, in a fresh output dir.
    stage = yaml.safe_load((work / "dvc.yaml").read_text())["stages"]["train"]["do"]["cmd"]
    cmd = stage.replace("${key}", "text_langid").replace(
        "${item.train}", PIPELINE["text_langid"]["train"]
    )
    cmd = cmd.replace("results/text_langid/train", "results/uninterrupted")
    sh(*cmd.split(), cwd=work)
    fresh = yaml.safe_load((work / "results" / "uninterrupted" / "metrics.json").read_text())
    assert resumed["global_step"] == fresh["global_step"]
    for key, value in fresh["metrics"].items():
        assert resumed["metrics"][key] == pytest.approx(value, abs=1e-6), key
