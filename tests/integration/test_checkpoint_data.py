"""Checkpoints know their data: two CSV datasets never share files, and a checkpoint
whose data directory was prepared again differently is refused, by evaluate and by a
resume, with both checksums and the fix; the fix (the checkpoint's own prepare
settings) prepares the data again and the run resumes."""

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

    # resume from that checkpoint on the other data: refused the same way, naming the
    # checkpoint's own prepare settings (not Lightning's raw size mismatch on restore)
    last = tmp_path / "shared_a" / "checkpoints" / "last.ckpt"
    resume = [*shared, f"ckpt_path={last}", "trainer.max_epochs=2", "model.hidden_size=8"]
    resume += ["data.batch_size=16", *QUIET]
    proc = run_cli(
        "rnnlab.train",
        "data=csv",
        f"prepare.path={b}",
        *resume,
        f"hydra.run.dir={tmp_path / 'resume_b'}",
        check=False,
    )
    err = proc.stderr + proc.stdout
    assert proc.returncode != 0
    assert f"{last}: was trained on other data" in err, err[-3000:]
    assert "train.pt: checkpoint " in err and ", data now " in err
    assert f"prepare.path='{a}' (this run: '{b}')" in err and "ckpt_path=null" in err
    assert "size mismatch" not in err

    # the fix: the checkpoint's own prepare settings; the data is prepared again, it resumes
    proc = run_cli(
        "rnnlab.train",
        "data=csv",
        f"prepare.path={a}",
        *resume,
        f"hydra.run.dir={tmp_path / 'resume_a'}",
    )
    assert f"Restoring states from the checkpoint path at {last}" in proc.stdout + proc.stderr
    assert read_metrics(tmp_path / "resume_a")["epoch"] == 2
