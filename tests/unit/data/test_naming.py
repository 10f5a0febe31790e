"""Named bring-your-own datasets: each source prepares into its own processed directory."""

from __future__ import annotations

import csv
import json
import os

from hydra import compose, initialize_config_dir

from rnnlab.config import config_dir, register_resolvers
from rnnlab.data.naming import data_name, source_stem
from rnnlab.data.prepare import prepare


def compose_prepare(*overrides: str):
    register_resolvers()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("prepare", overrides=list(overrides))


def test_data_name_from_source_paths(tmp_path):
    a, b = tmp_path / "my reviews.csv", tmp_path / "other" / "my reviews.csv"
    assert data_name("csv") == data_name("csv", None, None) == "csv"
    name = data_name("csv", str(a))
    assert name.startswith("csv-my_reviews-") and len(name.rsplit("-", 1)[1]) == 8
    assert data_name("csv", str(a)) == name != data_name("csv", str(b))
    assert data_name("csv", None, [str(a)]) == name  # None skipped, lists flattened
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        assert data_name("csv", "my reviews.csv") == name  # relative = absolute
    finally:
        os.chdir(cwd)
    assert source_stem("/x/LibriSpeech/dev-clean") == "dev-clean"
    assert source_stem("/x/archive.tar.gz") == "archive"


def _write_csv(path, labels):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(60):
            w.writerow([f"word{i % 7} thing{i}", labels[i % len(labels)]])


def test_two_csv_datasets_keep_separate_processed_dirs(tmp_path):
    first, second = tmp_path / "a" / "data.csv", tmp_path / "b" / "data.csv"
    first.parent.mkdir(), second.parent.mkdir()
    _write_csv(first, ["x", "y"])
    _write_csv(second, ["p", "q", "r"])
    dirs = []
    for path in (first, second):
        cfg = compose_prepare("data=csv", f"prepare.path={path}", f"paths.data_dir={tmp_path}/d")
        prepare(cfg)
        dirs.append(cfg.data.data_dir)
    assert dirs[0] != dirs[1]
    metas = [
        json.loads((tmp_path / "d" / "processed" / n / "meta.json").read_text())
        for n in (os.path.basename(d) for d in dirs)
    ]
    assert metas[0]["labels"] == ["x", "y"] and metas[1]["labels"] == ["p", "q", "r"]
    cfg = compose_prepare("data=csv", f"prepare.path={first}", "data.name=my_reviews")
    assert cfg.data.data_dir.endswith("processed/my_reviews")
