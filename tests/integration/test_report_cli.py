"""A real 2 x 2 multirun through the CLI, then ``python -m rnnlab.report`` on it."""

import csv

import matplotlib.image as mpimg

from tests.helpers import FAST, run_cli


def test_report_of_a_real_activation_by_connection_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    run_cli(
        "rnnlab.train",
        "-m",
        "model/activation=tanh,relu",
        "model/connection=stack,residual",
        "logger=csv",
        *FAST,
        "model.num_layers=2",
        "trainer.max_epochs=2",
        f"hydra.sweep.dir={sweep}",
    )
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1", "2", "3"]

    proc = run_cli("rnnlab.report", str(sweep))
    report = sweep / "report"
    assert f"report: {report / 'report.html'}" in proc.stdout
    assert "best: job " in proc.stdout and "rerun: python -m rnnlab.train" in proc.stdout

    with open(report / "leaderboard.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4"]
    assert all(r["status"] == "ok" and r["cell"] == "lstm" for r in rows)
    assert {(r["activation"], r["connection"]) for r in rows} == {
        ("tanh", "stack"),
        ("tanh", "residual"),
        ("relu", "stack"),
        ("relu", "residual"),
    }
    # data=adding monitors val/loss (min): best first
    values = [float(r["val/loss_best"]) for r in rows]
    assert values == sorted(values)
    assert all(float(r["test/loss"]) > 0 for r in rows)
    assert len((report / "leaderboard.md").read_text().splitlines()) >= 4 + 2

    for name in ("learning_curves.png", "heatmap.png"):
        data = (report / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
        pixels = mpimg.imread(report / name)
        assert pixels.ndim == 3 and pixels.std() > 0.01, name
    page = (report / "report.html").read_text()
    assert "http://" not in page and "https://" not in page
    # gradient-flow profiles when the jobs recorded them (callbacks.gradient_flow)
    flows = list(sweep.glob("*/gradient_flow/gradient_flow.json"))
    if flows:
        assert (report / "gradient_flow.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert mpimg.imread(report / "gradient_flow.png").std() > 0.01
        assert page.count("data:image/png;base64,") == 3
    else:
        assert "gradient_flow.png skipped" in page
        assert page.count("data:image/png;base64,") == 2
