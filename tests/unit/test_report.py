"""``rnnlab.report`` on hand-written sweep directories (no training)."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import matplotlib.image as mpimg
import pytest
import yaml
from PIL import Image

from rnnlab.report import ReportError, build_report, gradient_summary, main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# job -> (activation, connection, val/acc_best or None for a crashed job)
GRID = {
    "0": ("tanh", "stack", 0.70),
    "1": ("tanh", "residual", 0.90),
    "2": ("relu", "stack", 0.60),
    "3": ("relu", "residual", 0.80),
    "4": ("relu", "residual", None),
}


def write_job(
    sweep: Path,
    name: str,
    activation: str,
    connection: str,
    best: float | None,
    *,
    cell: str = "lstm",
    extra: dict[str, str] | None = None,
    metrics: dict[str, float] | None = None,
    monitor: str = "val/acc",
    mode: str = "max",
    gradient_flow: bool = False,
    epochs: int = 3,
) -> Path:
    """One job directory as train.py and Hydra write it."""
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    (job / "csv").mkdir()
    config = {
        "model": {"cell": cell, "activation": activation, "connection": {"name": connection}},
        "data": {"_target_": "rnnlab.data.probes.CopyDataModule", "seq_len": 12},
        "task": {"name": "classification", "monitor": monitor, "mode": mode},
    }
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    overrides = [f"model/activation={activation}", f"model/connection={connection}", "logger=csv"]
    overrides += [f"{k}={v}" for k, v in (extra or {}).items()]
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    hydra = {"hydra": {"runtime": {"choices": {"data": "copy", "model/cell": cell}}}}
    (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    # CSVLogger layout: one val row and one train row per epoch, plus step rows.
    rows = [["epoch", "step", "train/loss_epoch", "val/acc", "val/loss"]]
    for epoch in range(epochs):
        acc = (best or 0.5) * (epoch + 1) / epochs
        rows.append([epoch, 4 * epoch + 3, "", acc, 2.0 - acc])
        rows.append([epoch, 4 * epoch + 3, 2.1 - acc, "", ""])
        rows.append(["", 4 * epoch + 4, "", "", ""])
    with open(job / "csv" / "metrics.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    if best is None:
        (job / "train.log").write_text(
            "[2026-11-22 09:00:00,000][__main__][INFO] - starting\n"
            "[2026-11-22 09:00:01,000][__main__][ERROR] - RuntimeError: loss is NaN at step 7\n"
        )
    else:
        values = {"val/acc": best, "val/acc_best": best, "test/acc": best - 0.05}
        values |= {"test/f1_macro": best - 0.1, "train/loss": 0.5}
        record = {
            "metrics": values | (metrics or {}),
            "best_checkpoint": f"{job}/checkpoints/best.ckpt",
            "epoch": epochs,
            "global_step": 4 * epochs,
        }
        (job / "metrics.json").write_text(json.dumps(record))
    if gradient_flow:
        decay = 0.5 if activation == "tanh" else 0.9
        layers = {
            f"layer_{i}": {
                "dh_norm": [decay ** (11 - t) / (i + 1) for t in range(12)],
                "saturated_frac": 0.1,
                "dead_frac": 0.0,
                "weight_grad_norm": 0.3,
            }
            for i in range(2)
        }
        # the report draws the last record; the first one has zeros that must not matter
        first = {k: v | {"dh_norm": [0.0] * 12} for k, v in layers.items()}
        (job / "gradient_flow").mkdir()
        (job / "gradient_flow" / "gradient_flow.json").write_text(
            json.dumps(
                {
                    "probe": {"batch_size": 8, "time_steps": 12},
                    "records": [
                        {"epoch": 0, "global_step": 4, "layers": first},
                        {"epoch": epochs - 1, "global_step": 4 * epochs, "layers": layers},
                    ],
                }
            )
        )
    return job


def write_multirun_yaml(sweep: Path, task: list[str], params: dict | None = None) -> None:
    hydra = {"hydra": {"overrides": {"task": task}, "sweeper": {"params": params}}}
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(hydra))


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """A 2 activation x 2 connection sweep plus one crashed job; gradient flow in 0 and 2."""
    root = tmp_path / "multiruns" / "2026-11-22_09-00-00_123"
    root.mkdir(parents=True)
    write_multirun_yaml(root, ["model/activation=tanh,relu", "model/connection=stack,residual"])
    for name, (act, conn, best) in GRID.items():
        write_job(root, name, act, conn, best, gradient_flow=name in ("0", "2"))
    return root


def read_leaderboard(out: Path) -> list[dict[str, str]]:
    with open(out / "leaderboard.csv", newline="") as f:
        return list(csv.DictReader(f))


def assert_valid_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    with Image.open(path) as image:
        image.verify()
    pixels = mpimg.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels.std() > 0.01, f"{path} is blank"


def test_leaderboard_orders_by_best_validation_metric_and_lists_failed_last(sweep):
    report, page = build_report(sweep)
    out = sweep / "report"
    assert page == out / "report.html"
    assert report.metric == "val/acc_best" and report.mode == "max"
    rows = read_leaderboard(out)
    assert len(rows) == 5
    assert list(rows[0]) == [
        "rank",
        "job",
        "cell",
        "activation",
        "connection",
        "dataset",
        "val/acc_best",
        "test/acc",
        "test/f1_macro",
        "epochs",
        "status",
    ]
    assert [r["job"] for r in rows] == ["1", "3", "0", "2", "4"]
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4", ""]
    assert [float(r["val/acc_best"]) for r in rows[:4]] == [0.9, 0.8, 0.7, 0.6]
    top = rows[0]
    assert (top["cell"], top["activation"], top["connection"]) == ("lstm", "tanh", "residual")
    assert top["dataset"] == "copy"
    assert float(top["test/acc"]) == pytest.approx(0.85)
    assert top["epochs"] == "3" and top["status"] == "ok"
    failed = rows[-1]
    assert failed["status"].startswith("failed")
    assert "RuntimeError: loss is NaN at step 7" in failed["status"]
    assert failed["val/acc_best"] == "" and failed["rank"] == ""

    md = (out / "leaderboard.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(table) == 1 + 5  # header + one row per job
    assert table[1].startswith("| 1 | 1 | lstm | tanh | residual | copy | 0.9 |")
    assert "failed: RuntimeError: loss is NaN at step 7" in table[-1]


def test_writes_valid_pngs_and_a_self_contained_html_page(sweep):
    _, page = build_report(sweep)
    out = sweep / "report"
    for name in ("learning_curves.png", "heatmap.png", "gradient_flow.png"):
        assert_valid_png(out / name)
    text = page.read_text()
    assert text.count("data:image/png;base64,") == 3
    assert not re.search(r"""(src|href)\s*=\s*["']?https?://""", text, re.I)
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text.lower() and "<link" not in text.lower()
    # the leaderboard is an HTML table with every job
    leaderboard = text.split("<h2>Leaderboard</h2>")[1].split("</table>")[0]
    assert leaderboard.count("<tr") == 1 + 5
    assert "RuntimeError: loss is NaN at step 7" in text
    # embedded images are the PNG files byte for byte
    import base64

    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert base64.b64decode(uris[0])[:8] == PNG_SIGNATURE


def test_gradient_flow_skipped_with_a_note_when_no_job_has_it(tmp_path, caplog):
    write_multirun_yaml(tmp_path, ["model/activation=tanh,relu"])
    write_job(tmp_path, "0", "tanh", "stack", 0.7)
    write_job(tmp_path, "1", "relu", "stack", 0.8)
    with caplog.at_level("INFO", logger="rnnlab.report"):
        _, page = build_report(tmp_path, out_dir=tmp_path / "elsewhere")
    out = tmp_path / "elsewhere"
    assert not (out / "gradient_flow.png").exists()
    assert "gradient_flow.png skipped" in caplog.text
    assert "gradient_flow.png skipped" in page.read_text()
    assert page.read_text().count("data:image/png;base64,") == 2
    # only the activation varies: still a heat map (one column)
    assert_valid_png(out / "heatmap.png")
    assert [r["job"] for r in read_leaderboard(out)] == ["1", "0"]


def test_metric_missing_in_some_jobs_goes_to_the_bottom_above_failed(sweep):
    (sweep / "0" / "metrics.json").write_text(
        json.dumps({"metrics": {"val/acc_best": 0.7, "test/wer": 0.2}, "epoch": 3})
    )
    (sweep / "2" / "metrics.json").write_text(
        json.dumps({"metrics": {"val/acc_best": 0.6, "test/wer": 0.4}, "epoch": 3})
    )
    report, _ = build_report(sweep, metric="test/wer")
    assert report.mode == "min"  # guessed from the name: an error rate
    rows = read_leaderboard(sweep / "report")
    assert [r["job"] for r in rows] == ["0", "2", "1", "3", "4"]
    assert [r["status"].split(":")[0] for r in rows] == [
        "ok",
        "ok",
        "missing metric",
        "missing metric",
        "failed",
    ]
    assert rows[2]["rank"] == "" and rows[2]["test/wer"] == ""
    assert "test/wer not in metrics.json" in rows[2]["status"]


def test_explicit_mode_reverses_the_order(sweep):
    build_report(sweep, metric="val/acc_best", mode="min")
    assert [r["job"] for r in read_leaderboard(sweep / "report")] == ["2", "0", "3", "1", "4"]


def test_nan_metric_is_a_failed_job(sweep):
    record = json.loads((sweep / "1" / "metrics.json").read_text())
    record["metrics"]["val/acc_best"] = float("nan")
    (sweep / "1" / "metrics.json").write_text(json.dumps(record))
    report, _ = build_report(sweep)
    rows = read_leaderboard(sweep / "report")
    assert [r["job"] for r in rows] == ["3", "0", "2", "1", "4"]
    assert rows[3]["status"] == "failed: val/acc_best is nan"
    assert report.best.name == "3"


def test_best_value_from_csv_when_the_task_stores_no_best_tracker(tmp_path):
    """Regression monitors val/loss without a val/loss_best tracker: best epoch of the CSV."""
    write_multirun_yaml(tmp_path, ["model/activation=tanh,relu"])
    for name, act, best in (("0", "tanh", 0.7), ("1", "relu", 0.9)):
        job = write_job(tmp_path, name, act, "stack", best, monitor="val/loss", mode="min")
        record = json.loads((job / "metrics.json").read_text())
        record["metrics"] = {"val/loss": 5.0, "test/loss": 1.0}  # last epoch only
        (job / "metrics.json").write_text(json.dumps(record))
    report, _ = build_report(tmp_path)
    assert report.metric == "val/loss_best" and report.mode == "min"
    rows = read_leaderboard(tmp_path / "report")
    assert [r["job"] for r in rows] == ["1", "0"]
    assert float(rows[0]["val/loss_best"]) == pytest.approx(2.0 - 0.9)
    assert (
        "best epoch of val/loss in csv/metrics.csv"
        in (tmp_path / "report" / "leaderboard.md").read_text()
    )


def test_other_swept_keys_become_columns_and_the_heat_map_takes_the_best(tmp_path):
    write_multirun_yaml(
        tmp_path,
        [
            "model/activation=tanh,relu",
            "model/cell=lstm,gru",
            "optim.optimizer.lr=0.01,0.001",
            "data.spec_augment={freq_mask:8,time_mask:10}",  # one dict value, not a sweep
        ],
    )
    n = 0
    for act in ("tanh", "relu"):
        for cell in ("lstm", "gru"):
            for lr in ("0.01", "0.001"):
                best = 0.5 + 0.1 * n / 8
                extra = {"model/cell": cell, "optim.optimizer.lr": lr, "seed": "42"}
                extra["data.spec_augment"] = "{freq_mask:8,time_mask:10}"
                write_job(tmp_path, str(n), act, "stack", best, cell=cell, extra=extra)
                n += 1
    report, page = build_report(tmp_path)
    # seed and spec_augment are constant; cell is an axis column
    assert report.swept == ["optim.optimizer.lr"]
    rows = read_leaderboard(tmp_path / "report")
    assert len(rows) == 8
    assert rows[0]["optim.optimizer.lr"] == "0.001" and rows[0]["cell"] == "gru"
    assert rows[0]["job"] == "7"
    assert report.label(report.best) == "#7 gru relu optim.optimizer.lr=0.001"
    assert_valid_png(tmp_path / "report" / "heatmap.png")
    assert "optim.optimizer.lr" in page.read_text()


def test_optuna_results_are_shown(sweep):
    (sweep / "optimization_results.yaml").write_text(
        yaml.safe_dump({"name": "optuna", "best_params": {"optim.lr": 0.003}, "best_value": 0.9})
    )
    _, page = build_report(sweep)
    assert "best_params {&#x27;optim.lr&#x27;: 0.003}" in page.read_text()
    assert "best_value 0.9" in (sweep / "report" / "leaderboard.md").read_text()


@pytest.mark.parametrize("kind", ["missing", "empty", "single_run"])
def test_not_a_sweep_dir_is_a_clear_error(tmp_path, kind):
    target = tmp_path / "runs" / "x"
    if kind != "missing":
        target.mkdir(parents=True)
    if kind == "single_run":
        (target / ".hydra").mkdir()
    with pytest.raises(ReportError) as err:
        build_report(target)
    message = str(err.value)
    assert str(target) in message
    assert "multirun" in message
    expected = {"missing": "no such directory", "empty": "no job directories"}
    assert expected.get(kind, "single run") in message


def test_bad_mode_names_the_valid_ones(sweep):
    with pytest.raises(ReportError, match=r"--mode='best' is not valid; valid: max, min"):
        build_report(sweep, mode="best")


def test_cli_prints_report_path_and_best_configuration(sweep, capsys):
    assert main([str(sweep), "--out", str(sweep / "r")]) == 0
    out = capsys.readouterr().out
    assert f"report: {sweep / 'r' / 'report.html'}" in out
    assert "best: job 1: cell=lstm activation=tanh connection=residual dataset=copy" in out
    assert "val/acc_best=0.9 (max)" in out
    assert "rerun: python -m rnnlab.train model/activation=tanh model/connection=residual" in out


def test_cli_error_exit_code_and_message(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert f"error: {tmp_path / 'nope'}: no such directory" in err


def test_gradient_flow_panels_use_the_last_record(sweep):
    report, _ = build_report(sweep)
    flows = {j.name: j.gradient_flow for j in report.jobs if j.gradient_flow}
    assert sorted(flows) == ["0", "2"]
    last = flows["0"]["records"][-1]["layers"]["layer_0"]["dh_norm"]
    assert all(v > 0 and math.isfinite(v) for v in last)
    assert_valid_png(sweep / "report" / "gradient_flow.png")


def test_gradient_summary_measures_vanishing_per_layer(sweep):
    report, page = build_report(sweep)
    rows = {(r["job"], r["layer"]): r for r in gradient_summary(report)}
    assert sorted(rows) == [("0", "layer_0"), ("0", "layer_1"), ("2", "layer_0"), ("2", "layer_1")]
    # tanh job: dh_norm = 0.5 ** (11 - t): 11 * log10(2) orders of magnitude lost
    assert rows[("0", "layer_0")]["log10(|dh_T|/|dh_0|)"] == pytest.approx(11 * math.log10(2))
    assert rows[("2", "layer_0")]["log10(|dh_T|/|dh_0|)"] == pytest.approx(-11 * math.log10(0.9))
    assert rows[("0", "layer_1")]["epoch"] == 2
    assert "Gradient flow summary" in page.read_text()


def test_all_jobs_failed_still_writes_a_report(tmp_path, capsys):
    write_multirun_yaml(tmp_path, ["model/activation=tanh,relu"])
    write_job(tmp_path, "0", "tanh", "stack", None)
    write_job(tmp_path, "1", "relu", "stack", None)
    (tmp_path / "1" / "train.log").write_text("[2026-11-22][x][INFO] - starting\n")
    assert main([str(tmp_path)]) == 0
    assert "best: none (no job has a finite val/acc)" in capsys.readouterr().out
    rows = read_leaderboard(tmp_path / "report")
    assert [r["status"] for r in rows] == [
        "failed: RuntimeError: loss is NaN at step 7",
        "failed: no metrics.json (the job did not finish; Hydra printed its error to the console)",
    ]
    assert not (tmp_path / "report" / "heatmap.png").exists()
    assert_valid_png(tmp_path / "report" / "learning_curves.png")
    assert "heatmap.png skipped" in (tmp_path / "report" / "report.html").read_text()


def test_ties_keep_job_number_order(tmp_path):
    write_multirun_yaml(tmp_path, ["seed=range(0,11)"])
    for n in (10, 2, 0):
        write_job(tmp_path, str(n), "tanh", "stack", 0.5, extra={"seed": str(n)})
    report, _ = build_report(tmp_path)
    assert [j.name for j in report.jobs] == ["0", "2", "10"]
    assert report.swept == ["seed"]
    assert [r["seed"] for r in read_leaderboard(tmp_path / "report")] == ["0", "2", "10"]
