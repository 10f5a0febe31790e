"""A real 2 x 2 multirun through the CLI with W&B offline, then ``python -m rnnlab.report``.

Acceptance (issue #4): 4 W&B runs with distinct configs and one shared group, 4 output
dirs; the report writes a 4-row leaderboard and valid PNGs.
"""

import csv

import matplotlib.image as mpimg
import pytest

from tests.helpers import FAST, run_cli
from tests.wandb_records import run_file, summarize


@pytest.mark.slow
def test_report_of_a_real_activation_by_connection_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    run_cli(
        "rnnlab.train",
        "-m",
        "model/activation=tanh,relu",
        "model/connection=stack,residual",
        *FAST,
        "model.num_layers=2",
        "trainer.max_epochs=2",
        f"hydra.sweep.dir={sweep}",
    )
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == ["0", "1", "2", "3"]

    runs = [summarize(run_file(sweep / job)) for job in jobs]
    assert len({r["run"]["id"] for r in runs}) == 4
    assert {r["run"]["group"] for r in runs} == {f"sweep-{sweep.name}"}
    configs = {
        (r["config"]["model"]["activation"], r["config"]["model"]["connection"]["name"])
        for r in runs
    }
    assert configs == {
        ("tanh", "stack"),
        ("tanh", "residual"),
        ("relu", "stack"),
        ("relu", "residual"),
    }
    for r in runs:
        model = r["config"]["model"]
        assert set(r["run"]["tags"]) == {
            "lstm",
            model["activation"],
            model["connection"]["name"],
            "adding",
        }
        assert r["exit_code"] == 0 and r["summary"]["status"] == "completed"

    proc = run_cli("rnnlab.report", str(sweep))
    report = sweep / "report"
    assert f"report: {report / 'report.html'}" in proc.stdout
    assert "best: job " in proc.stdout and "rerun: python -m rnnlab.train" in proc.stdout

    with open(report / "leaderboard.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4"]
    assert all(r["status"] == "ok" and r["cell"] == "lstm" for r in rows)
    assert {(r["activation"], r["connection"]) for r in rows} == configs
    # data=adding monitors val/loss (min): best first
    values = [float(r["val/loss_best"]) for r in rows]
    assert values == sorted(values)
    assert all(float(r["test/loss"]) > 0 for r in rows)
    assert len((report / "leaderboard.md").read_text().splitlines()) >= 4 + 2

    for name in ("learning_curves.png", "heatmap.png", "gradient_flow.png"):
        data = (report / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
        pixels = mpimg.imread(report / name)
        assert pixels.ndim == 3 and pixels.std() > 0.01, name
    page = (report / "report.html").read_text()
    assert "http://" not in page and "https://" not in page
    assert page.count("data:image/png;base64,") == 3
