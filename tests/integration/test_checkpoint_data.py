"""Checkpoints know their data: two CSV datasets never share files, and a checkpoint
whose data directory was prepared again differently is refused with both checksums."""

import csv

from tests.helpers import read_metrics, run_cli

QUIET = ["print_config=false", "callbacks.progress_bar.refresh_rate=0", "logger=csv"]
TINY = ["trainer.max_epochs=1", "model.hidden_size=8", "data.batch_size=16", *QUIET]


def _csv(path, words, n=60):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(n):
            label = list(words)[i % len(words)]
            w.writerow([f"{words[label]} {i}", label])


def test_two_csv_datasets_both_evaluate_and_a_reprepared_dir_is_refused(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    _csv(a, {"x": "alpha beta", "y": "gamma delta"})
    _csv(b, {"p": "one two three", "q": "four five", "r": "six seven eight nine"})
    data = f"paths.data_dir={tmp_path / 'data'}"
    for name, path in (("a", a), ("b", b)):
        run_cli(
            "rnnlab.train",
            "data=csv",
            f"prepare.path={path}",
            data,
            f"hydra.run.dir={tmp_path / name}",
            *TINY,
        )
    assert len(list((tmp_path / "data" / "processed").glob("csv-*/meta.json"))) == 2
    for name in ("a", "b"):  # each checkpoint still evaluates on its own data
        run_cli(
            "rnnlab.evaluate",
            f"ckpt_path={tmp_path / name / 'checkpoints/best.ckpt'}",
            f"hydra.run.dir={tmp_path / ('eval_' + name)}",
        )
        assert "test/acc" in read_metrics(tmp_path / ("eval_" + name))

    # one user-given name for both: the second prepare replaces the first one's files
    shared = ["data.name=shared", data]
    run_cli(
        "rnnlab.train",
        "data=csv",
        f"prepare.path={a}",
        *shared,
        f"hydra.run.dir={tmp_path / 'shared_a'}",
        *TINY,
    )
    run_cli(
        "rnnlab.data.prepare",
        "data=csv",
        f"prepare.path={b}",
        *shared,
        f"hydra.run.dir={tmp_path / 'prep_b'}",
    )
    proc = run_cli(
        "rnnlab.evaluate",
        f"ckpt_path={tmp_path / 'shared_a' / 'checkpoints/best.ckpt'}",
        f"hydra.run.dir={tmp_path / 'eval_shared'}",
        check=False,
    )
    err = proc.stderr + proc.stdout
    assert proc.returncode != 0
    assert "was trained on other data" in err and "checkpoint " in err and "data now " in err
    assert "size mismatch" not in err
