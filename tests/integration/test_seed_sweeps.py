"""Seeds as a sweep axis, end to end: a real 2-config x 3-seed Hydra multirun on
``adding`` and a DVC experiment set of 2 seeds, each read by ``rnnlab.report`` as
configurations with n seeds (mean ± std, CI, Welch's test)."""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from rnnlab.report import build_report
from tests.helpers import FAST, ROOT, run_cli
from tests.integration.test_dvc import sh
from tests.unit.test_report import assert_valid_png
from tests.wandb_records import run_file, summarize


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_two_configs_by_three_seeds_give_two_grouped_rows(tmp_path):
    sweep = tmp_path / "sweep"
    run_cli(
        "rnnlab.train",
        "-m",
        "sweep=seeds",
        "model/cell=lstm,gru",
        *FAST,
        "trainer.max_epochs=2",
        f"hydra.sweep.dir={sweep}",
    )
    jobs = sorted((p for p in sweep.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    assert [p.name for p in jobs] == [str(i) for i in range(6)]
    # W&B (offline): one group for the sweep, one job_type per configuration
    runs = [summarize(run_file(job)) for job in jobs]
    assert {r["run"]["group"] for r in runs} == {f"sweep-{sweep.name}"}
    by_type: dict[str, set] = {}
    for r in runs:
        assert r["run"]["job_type"] == f"train-{r['config']['config_hash']}"
        by_type.setdefault(r["run"]["job_type"], set()).add(
            (r["config"]["model"]["cell"], r["config"]["seed"])
        )
    assert sorted(len(v) for v in by_type.values()) == [3, 3]
    assert all(len({cell for cell, _ in v}) == 1 for v in by_type.values())

    proc = run_cli("rnnlab.report", str(sweep), "--wandb")
    assert "best configuration: " in proc.stdout and "over 3 seeds" in proc.stdout
    out = sweep / "report"
    configs = read_csv(out / "configs.csv")
    assert len(configs) == 2
    assert {r["cell"] for r in configs} == {"lstm", "gru"}
    for row in configs:
        assert row["n"] == "3" and row["seeds"].split() == ["0", "1", "2"]
        assert row["status"] == "ok" and len(row["jobs"].split()) == 3
    # the per-job table keeps every job, each with the configuration it belongs to
    jobs = read_csv(out / "leaderboard.csv")
    assert len(jobs) == 6 and {r["config"] for r in jobs} == {"1", "2"}
    assert configs[1]["verdict"] and configs[0]["verdict"] == "best"
    assert 0.0 <= float(configs[1]["p_vs_best"]) <= 1.0
    means = [float(r["val/loss_best mean"]) for r in configs]
    assert means == sorted(means)  # adding: val/loss, minimised
    for name in ("learning_curves.png", "heatmap.png", "gradient_flow.png"):
        assert_valid_png(out / name)
    page = (out / "report.html").read_text()
    assert "configurations (mean over seeds)" in page and "min-max over the seeds" in page
    # the aggregate table, logged once as a W&B table in the sweep's group
    report_run = summarize(run_file(out))
    assert report_run["run"]["job_type"] == "report"
    assert report_run["run"]["group"] == f"sweep-{sweep.name}"
    logged = set().union(*(row.keys() for row in report_run["history"]))
    assert any(k.startswith("report/configs") for k in logged)
    assert any(k.startswith("report/leaderboard") for k in logged)
    assert report_run["summary"]["best/val/loss_best/mean"] == pytest.approx(means[0])


def make_seed_repo(tmp_path: Path) -> Path:
    """A git + DVC repo whose one stage trains on a tiny ``adding`` (params.yaml: seed)."""
    work = tmp_path / "repo"
    (work / "conf" / "data").mkdir(parents=True)
    shutil.copy(ROOT / "conf" / "data" / "adding.yaml", work / "conf" / "data" / "adding.yaml")
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = {"model": base["model"], "optim": base["optim"], "seed": 0}
    params["pipeline"] = {"adding": {"train": "trainer.max_epochs=2"}}
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    overrides = " ".join(o for o in FAST if not o.startswith("model."))
    cmd = (
        f"{sys.executable} -m rnnlab.train data=adding params_file=params.yaml logger=csv "
        f"hydra.run.dir=results/adding/train model.hidden_size=8 trainer.max_epochs=2 {overrides}"
    )
    stage = {
        "cmd": cmd,
        "params": ["model", "optim", "seed", "pipeline.adding"],
        "metrics": [{"results/adding/train/metrics.json": {"cache": False}}],
    }
    (work / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": stage}}))
    (work / ".gitignore").write_text("outputs/\n/results/*/train/checkpoints/\n")
    sh("git", "init", "-q", cwd=work)
    sh(sys.executable, "-m", "dvc", "init", "-q", cwd=work)
    sh("git", "add", "-A", cwd=work)
    sh("git", "commit", "-qm", "init", cwd=work)
    return work


@pytest.mark.slow
def test_dvc_experiments_of_two_seeds_are_one_configuration(tmp_path):
    work = make_seed_repo(tmp_path)
    for seed in (1, 2):
        sh(sys.executable, "-m", "dvc", "exp", "run", "-S", f"seed={seed}", cwd=work)
    record = json.loads((work / "results" / "adding" / "train" / "metrics.json").read_text())
    assert record["status"] == "completed"
    proc = run_cli("rnnlab.report", "--dvc-exps", str(work))
    assert "over 2 seeds" in proc.stdout, proc.stdout
    out = work / "outputs" / "dvc_report"
    configs = read_csv(out / "configs.csv")
    assert len(configs) == 1
    (row,) = configs
    assert row["n"] == "2" and sorted(row["seeds"].split()) == ["1", "2"]
    assert row["dataset"] == "adding" and row["cell"] == "lstm"
    assert len(read_csv(out / "leaderboard.csv")) == 2
    # auto-detected: a DVC repository without multirun.yaml
    report, _ = build_report(work, out_dir=tmp_path / "again")
    assert report.source == "dvc" and [c.n for c in report.configs] == [2]
    # adding monitors val/loss without a _best tracker and exp show has no CSV curves:
    # the report ranks by the recorded val/loss
    assert report.metric == "val/loss" and report.mode == "min"
