"""``rnnlab.report`` over seeds, on hand-written sweeps: configurations (mean, std, CI,
Welch's test), statuses ranked first, importance, DVC experiments and W&B grouping."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as st

from rnnlab.loggers import config_hash
from rnnlab.report import build_report
from rnnlab.report.cli import build_dvc_reports
from rnnlab.report.importance import fanova
from rnnlab.report.plots import curve_key, loss_axis
from tests.unit.test_report import (
    assert_valid_png,
    read_leaderboard,
    write_job,
    write_multirun_yaml,
)

# (activation, connection) -> val/acc_best of seeds 0, 1, 2
SEEDS = {
    ("tanh", "residual"): [0.80, 0.82, 0.84],
    ("relu", "residual"): [0.70, 0.75, 0.80],
    ("tanh", "stack"): [0.60, 0.61, 0.62],
}


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def seed_sweep(tmp_path: Path) -> Path:
    root = tmp_path / "sweep"
    root.mkdir()
    write_multirun_yaml(root, ["model/activation=tanh,relu"], params={"seed": "0,1,2"})
    n = 0
    for (act, conn), values in SEEDS.items():
        for seed, best in enumerate(values):
            write_job(root, str(n), act, conn, best, extra={"seed": str(seed)}, gradient_flow=n < 2)
            n += 1
    return root


def test_configurations_match_hand_computed_mean_std_and_ci(seed_sweep):
    report, page = build_report(seed_sweep)
    assert report.grouped and [c.n for c in report.configs] == [3, 3, 3]
    rows = read_csv(seed_sweep / "report" / "configs.csv")
    assert [(r["activation"], r["connection"]) for r in rows] == list(SEEDS)  # by mean
    assert [r["rank"] for r in rows] == ["1", "2", "3"]
    top = rows[0]
    t = 4.302652729911275  # t_{0.975, 2}
    assert float(top["val/acc_best mean"]) == pytest.approx(0.82)
    assert float(top["val/acc_best std"]) == pytest.approx(0.02)
    assert float(top["val/acc_best ci95_low"]) == pytest.approx(0.82 - t * 0.02 / math.sqrt(3))
    assert float(top["val/acc_best ci95_high"]) == pytest.approx(0.82 + t * 0.02 / math.sqrt(3))
    assert (float(top["val/acc_best min"]), float(top["val/acc_best max"])) == (0.80, 0.84)
    # every test metric too (write_job: test/acc = best - 0.05)
    assert float(top["test/acc mean"]) == pytest.approx(0.77)
    assert float(top["test/acc std"]) == pytest.approx(0.02)
    assert top["n"] == "3" and top["seeds"] == "0 1 2" and top["verdict"] == "best"
    # Welch's t-test of the best against each runner-up, as scipy computes it
    for row, key in zip(rows[1:], list(SEEDS)[1:]):
        ref = st.ttest_ind(SEEDS[("tanh", "residual")], SEEDS[key], equal_var=False)
        assert float(row["p_vs_best"]) == pytest.approx(ref.pvalue)
    assert "not distinguishable at n=3/3" in rows[1]["verdict"]  # p ~ 0.2
    assert rows[2]["verdict"].startswith("p=") and float(rows[2]["p_vs_best"]) < 0.05
    # per-job table: every job, with its configuration
    jobs = read_leaderboard(seed_sweep / "report")
    assert len(jobs) == 9 and [r["config"] for r in jobs[:3]] == ["1", "1", "1"]
    md = (seed_sweep / "report" / "leaderboard.md").read_text()
    assert "## Configurations (3; mean over seeds)" in md and "0.82 ± 0.02" in md
    assert "not distinguishable at n=3/3" in md
    text = page.read_text()
    assert "Leaderboard: 3 configurations (mean over seeds)" in text
    assert "min-max over the seeds" in text  # the learning-curve band is named
    for name in ("learning_curves.png", "heatmap.png", "gradient_flow.png"):
        assert_valid_png(seed_sweep / "report" / name)


def test_one_seed_per_configuration_writes_no_configuration_table(tmp_path):
    write_multirun_yaml(tmp_path, ["model/activation=tanh,relu"])
    write_job(tmp_path, "0", "tanh", "stack", 0.7)
    write_job(tmp_path, "1", "relu", "stack", 0.8)
    report, page = build_report(tmp_path)
    assert not report.grouped and not (tmp_path / "report" / "configs.csv").exists()
    assert "config" not in read_leaderboard(tmp_path / "report")[0]
    assert "mean over seeds" not in page.read_text()


def _diverge(job: Path) -> None:
    record = json.loads((job / "metrics.json").read_text())
    record["status"] = "diverged"
    (job / "metrics.json").write_text(json.dumps(record))


def test_a_diverged_job_ranks_below_finished_ones_and_is_marked(tmp_path):
    write_multirun_yaml(tmp_path, ["model/activation=tanh,relu"])
    write_job(tmp_path, "0", "tanh", "stack", 0.7)
    write_job(tmp_path, "1", "relu", "stack", 0.95)  # best value, but it diverged
    write_job(tmp_path, "2", "gelu", "stack", 0.6)
    _diverge(tmp_path / "1")
    report, page = build_report(tmp_path)
    rows = read_leaderboard(tmp_path / "report")
    assert [r["job"] for r in rows] == ["0", "2", "1"]
    assert [r["rank"] for r in rows] == ["1", "2", ""]
    assert rows[2]["status"].startswith("diverged: training diverged at epoch 3")
    assert report.best.name == "0"
    assert "diverged" in (tmp_path / "report" / "leaderboard.md").read_text()


def test_a_configuration_with_a_diverged_seed_ranks_last(seed_sweep):
    _diverge(seed_sweep / "1")  # a seed of the best configuration
    report, _ = build_report(seed_sweep)
    rows = read_csv(seed_sweep / "report" / "configs.csv")
    assert [(r["activation"], r["connection"]) for r in rows][-1] == ("tanh", "residual")
    assert rows[-1]["rank"] == "" and rows[-1]["status"].startswith("diverged: 1 of 3 seeds")
    assert rows[0]["verdict"] == "best" and rows[0]["activation"] == "relu"


def test_ranking_on_a_test_metric_does_not_repeat_its_column_nor_plot_single_points(tmp_path):
    write_multirun_yaml(tmp_path, ["model/activation=tanh,relu"])
    for name, act, best in (("0", "tanh", 0.7), ("1", "relu", 0.8)):
        job = write_job(tmp_path, name, act, "stack", best)
        with open(job / "csv" / "metrics.csv", "a", newline="") as f:  # test: one row
            f.write("3,12,,,\n")
    report, page = build_report(tmp_path, metric="test/acc")
    with open(tmp_path / "report" / "leaderboard.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header.count("test/acc") == 1
    job = report.jobs[0]
    job.curves["test/acc"] = [(3, 0.75)]  # a test metric: a single point in the CSV
    assert curve_key(job, "test/acc") == "val/acc"
    assert "test/acc is measured once, after training" in page.read_text()


def test_train_loss_axis_is_logarithmic_and_clipped_when_one_run_diverges(sweep_with_blowup):
    scale, top = loss_axis([[1.0, 0.5, 0.3], [1.1, 0.6, 0.4], [1.0, 50.0, 1e6]])
    assert scale == "log" and top == pytest.approx(10 * 1.1)
    assert loss_axis([[1.0, 0.5], [0.9, 0.4]]) == ("log", None)
    assert loss_axis([[-1.0, 0.5]])[0] == "linear"
    _, page = build_report(sweep_with_blowup)
    text = page.read_text()
    assert "train loss on a log axis" in text and "y clipped at" in text


@pytest.fixture
def sweep_with_blowup(tmp_path: Path) -> Path:
    write_multirun_yaml(tmp_path, ["model/activation=tanh,relu,gelu"])
    for name, act in (("0", "tanh"), ("1", "relu"), ("2", "gelu")):
        job = write_job(tmp_path, name, act, "stack", 0.7)
        if act == "relu":
            with open(job / "csv" / "metrics.csv", "a", newline="") as f:
                f.write("3,15,1e9,,\n")
    return tmp_path


def test_fanova_recovers_a_planted_effect():
    rng = np.random.default_rng(0)
    rows, values = [], []
    for lr in ("0.1", "0.01", "0.001"):
        for act in ("tanh", "relu"):
            for conn in ("stack", "residual"):
                for _ in range(3):
                    rows.append({"lr": lr, "activation": act, "connection": conn})
                    values.append({"0.1": 0.5, "0.01": 0.7, "0.001": 0.9}[lr] + rng.normal(0, 0.01))
    scores = fanova(rows, values, ["activation", "connection", "lr"])
    assert list(scores)[0] == "lr" and scores["lr"] > 0.8
    assert sum(scores.values()) == pytest.approx(1.0)


def test_report_ranks_keys_by_importance_and_never_the_seed(tmp_path):
    write_multirun_yaml(tmp_path, ["model/activation=tanh,relu", "optim.lr=0.1,0.001"])
    n = 0
    for act in ("tanh", "relu"):
        for conn in ("stack", "residual"):
            for lr, base in (("0.1", 0.5), ("0.001", 0.9)):
                for seed in (0, 1):
                    value = base + 0.01 * seed + (0.005 if act == "relu" else 0)
                    extra = {"optim.lr": lr, "seed": str(seed)}
                    write_job(tmp_path, str(n), act, conn, value, extra=extra)
                    n += 1
    report, page = build_report(tmp_path)
    imp = report.importance
    assert imp.keys == ["activation", "connection", "optim.lr"] and "seed" not in imp.scores
    assert list(imp.scores)[0] == "optim.lr"
    assert_valid_png(tmp_path / "report" / "importance.png")
    md = (tmp_path / "report" / "importance.md").read_text()
    assert "fANOVA importance" in md and "Marginal means of val/acc_best by optim.lr" in md
    assert "Hyper-parameter importance" in page.read_text()


def test_two_varied_keys_give_marginal_means(seed_sweep):
    report, _ = build_report(seed_sweep)
    imp = report.importance
    assert imp.scores == {} and "needs 3 or more varied keys" in imp.note
    (best_act, best), (other, tanh) = imp.marginals["activation"]
    assert (best_act, other) == ("relu", "tanh")  # 0.75 beats (0.82 + 0.61) / 2
    assert best.n == 3 and best.mean == pytest.approx(0.75)
    assert tanh.n == 6
    assert tanh.mean == pytest.approx(
        np.mean(SEEDS[("tanh", "residual")] + SEEDS[("tanh", "stack")])
    )
    assert not (seed_sweep / "report" / "importance.png").exists()


def _exp(name: str, seed: int, value: float, status: str = "completed") -> dict:
    params = {"model": {"cell": "lstm", "activation": "tanh", "connection": {"name": "stack"}}}
    params |= {"optim": {"lr": 0.001}, "seed": seed}
    record = {"status": status, "epoch": 2, "metrics": {"val/acc_best": value}}
    return {
        "rev": f"{seed:040d}",
        "name": name,
        "data": {
            "params": {"params.yaml": {"data": params}},
            "metrics": {
                "results/text_langid/train/metrics.json": {"data": record},
                "results/text_langid/eval/metrics.json": {"data": {"test/acc": value - 0.01}},
            },
        },
    }


def test_dvc_exp_show_json_is_read_as_configurations(tmp_path):
    shown = [
        {
            "rev": "workspace",
            "name": None,
            **{k: v for k, v in _exp("x", 2, 0.9).items() if k == "data"},
        },
        {
            **_exp("main", 42, 0.91),
            "experiments": [
                {"revs": [_exp("exp-a", 1, 0.90)], "name": "exp-a"},
                {"revs": [_exp("exp-b", 2, 0.92)], "name": "exp-b"},
                {"revs": [_exp("exp-c", 3, 0.99, "diverged")], "name": "exp-c"},
            ],
        },
    ]
    (tmp_path / "exps.json").write_text(json.dumps(shown))
    report, _ = build_report(tmp_path / "exps.json", dvc_exps=True, out_dir=tmp_path / "out")
    assert report.source == "dvc" and report.metric == "val/acc_best"
    assert sorted(j.name for j in report.jobs) == ["exp-a", "exp-b", "exp-c", "main"]
    (config,) = report.configs
    assert config.n == 4 and config.status == "diverged" and config.summary.n == 3
    assert config.summary.mean == pytest.approx(0.91)
    assert report.jobs[-1].name == "exp-c" and report.jobs[-1].status == "diverged"
    assert report.jobs[0].metrics["test/acc"] == pytest.approx(0.91)


def _pipeline_exp(name: str, seed: int, acc: float, loss: float) -> dict:
    """One experiment of the default pipeline: a classification and a CTC dataset."""
    exp = _exp(name, seed, acc)
    ctc = {"status": "completed", "epoch": 2, "metrics": {"val/loss_best": loss}}
    exp["data"]["metrics"] |= {
        "results/speech_digits_synth/train/metrics.json": {"data": ctc},
        "results/speech_digits_synth/eval/metrics.json": {"data": {"test/cer": loss / 10}},
    }
    return exp


def test_dvc_report_compares_each_dataset_with_itself(tmp_path):
    # The pipeline's datasets have their own monitors (val/acc, val/loss): one report
    # per dataset, never one ranking across them (the CTC jobs had no val/acc: n=0).
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "conf" / "data").mkdir(parents=True)
    task = "task: {monitor: val/loss, mode: min}\n"
    (tmp_path / "conf" / "data" / "speech_digits_synth.yaml").write_text(task)
    shown = [
        {
            **_pipeline_exp("main", 42, 0.91, 0.05),
            "experiments": [
                {"revs": [_pipeline_exp("s1", 1, 0.90, 0.04)], "name": "s1"},
                {"revs": [_pipeline_exp("s2", 2, 0.92, 0.06)], "name": "s2"},
            ],
        },
    ]
    (tmp_path / "exps.json").write_text(json.dumps(shown))
    built = build_dvc_reports(tmp_path / "exps.json", out_dir=tmp_path / "out")
    by_name = {name: report for name, report, _ in built}
    assert sorted(by_name) == ["speech_digits_synth", "text_langid"]
    ctc, text = by_name["speech_digits_synth"], by_name["text_langid"]
    assert (ctc.metric, ctc.mode) == ("val/loss_best", "min")
    assert ctc.configs[0].summary.n == 3 and ctc.configs[0].summary.mean == pytest.approx(0.05)
    assert text.metric == "val/acc_best" and text.configs[0].summary.n == 3
    for name, _, page in built:
        assert page == tmp_path / "out" / name / "report.html" and page.is_file()


def test_config_hash_is_shared_by_seeds_and_differs_otherwise():
    base = {"model": {"cell": "lstm"}, "optim": {"lr": 0.001}, "seed": 0, "data": {"seed": 0}}
    base |= {
        "paths": {"output_dir": "/o/0"},
        "callbacks": {"ckpt": {"dirpath": "/o/0/checkpoints"}},
    }
    other_seed = base | {"seed": 1, "data": {"seed": 1}, "paths": {"output_dir": "/o/1"}}
    other_seed |= {"callbacks": {"ckpt": {"dirpath": "/o/1/checkpoints"}}}
    assert config_hash(base) == config_hash(other_seed)
    assert config_hash(base) != config_hash(base | {"optim": {"lr": 0.01}})
    assert len(config_hash(base)) == 8


def test_appended_group_sweep_is_one_column_and_reruns_with_its_plus(tmp_path, capsys):
    """sweep=lstm_variants sweeps ``+model/variant`` (an appended config group): the
    report must show one ``model/variant`` column (not an empty ``+model/variant`` one
    besides it) and print a rerun command that Hydra accepts (the ``+`` kept)."""
    from rnnlab.report import main

    root = tmp_path / "sweep"
    root.mkdir()
    write_multirun_yaml(
        root, ["sweep=lstm_variants"], params={"+model/variant": "vanilla,cifg", "seed": "42,43"}
    )
    values = {"vanilla": [0.80, 0.82], "cifg": [0.70, 0.72]}
    n = 0
    for variant, bests in values.items():
        for seed, best in zip((42, 43), bests):
            extra = {"+model/variant": variant, "seed": str(seed)}
            write_job(root, str(n), "tanh", "stack", best, extra=extra)
            n += 1
    assert main([str(root), "--out", str(root / "r")]) == 0
    out = capsys.readouterr().out
    rows = read_csv(root / "r" / "configs.csv")
    assert [r["model/variant"] for r in rows] == ["vanilla", "cifg"]
    assert not any(k.startswith("+") for k in rows[0])
    assert "best configuration: model/variant=vanilla" in out
    assert "rerun: python -m rnnlab.train -m model/activation=tanh model/connection=stack " in out
    assert "+model/variant=vanilla seed=42,43" in out
