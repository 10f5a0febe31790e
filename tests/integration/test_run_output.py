"""What a newcomer sees: one line per epoch under dvc repro's settings, and no noise."""

from tests.helpers import FAST, run_cli


def test_an_epoch_line_without_progress_bar_and_no_wandb_or_litlogger_noise(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_SILENT", raising=False)  # make exports it; users do not
    proc = run_cli(
        "rnnlab.train", *FAST, "trainer.max_epochs=3", f"hydra.run.dir={tmp_path / 'run'}"
    )
    out = proc.stdout + proc.stderr
    for epoch in range(3):
        assert f"epoch {epoch}/3: " in out, out[-3000:]
    assert "val/loss=" in out and "train/loss=" in out
    assert "anonymous setting has no effect" not in out
    assert "litlogger" not in out


def test_no_epoch_line_while_a_progress_bar_is_drawn(tmp_path):
    fast = [a for a in FAST if not a.startswith("callbacks.progress_bar")]
    proc = run_cli(
        "rnnlab.train",
        *fast,
        "trainer.max_epochs=1",
        "logger=csv",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert "epoch 0/1: " not in proc.stdout + proc.stderr
