"""Bring your own data: one documented command trains on a user's CSV."""

import csv
import json
import random

from tests.helpers import read_metrics, run_cli

QUIET = ["print_config=false", "callbacks.progress_bar.refresh_rate=0"]


def test_csv_trains_with_one_command_and_counts_bad_rows(tmp_path):
    rng = random.Random(0)
    words = {"sport": ["goal", "match", "team", "score"], "tech": ["chip", "code", "cpu", "app"],
             "food": ["bread", "soup", "salt", "rice"]}
    path = tmp_path / "my data.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["review", "topic"])
        for i in range(150):
            label = list(words)[i % 3]
            w.writerow([" ".join(rng.choices(words[label], k=6)) + f" n{i}", label])
        w.writerow(["", "tech"])  # empty text: skipped, counted
        w.writerow(["no label here", ""])  # missing label: skipped, counted
    data_dir = tmp_path / "data"
    run_cli("rnnlab.train", "data=csv", f"prepare.path={path}", "prepare.text_column=review",
            "prepare.label_column=topic", f"paths.data_dir={data_dir}", "trainer.max_epochs=10", "optim.optimizer.lr=0.01",
            "model.hidden_size=16", "data.batch_size=16", f"hydra.run.dir={tmp_path / 'run'}",
            *QUIET)
    meta = json.loads((data_dir / "processed" / "csv" / "meta.json").read_text())
    assert meta["labels"] == ["food", "sport", "tech"]
    assert sum(meta["skipped"].values()) == 2
    assert sum(c["total"] for c in meta["counts"].values()) == 150
    assert read_metrics(tmp_path / "run")["metrics"]["test/acc"] > 0.9
