"""Checkpoints written before the data package moved still evaluate (rnnlab.compat)."""

import json
from pathlib import Path

import pytest

from rnnlab.compat import TARGET_ALIASES, upgrade_targets
from tests.helpers import run_cli

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "adding_v0.3.ckpt"


def test_every_alias_names_a_callable_that_exists():
    from hydra.utils import get_object

    for old, new in TARGET_ALIASES.items():
        assert callable(get_object(new)), new
        with pytest.raises(ImportError):
            get_object(old)  # no import shim: only the table bridges old paths


def test_upgrade_rewrites_nested_targets_and_nothing_else():
    cfg = {"data": {"_target_": "rnnlab.data.synthetic.AddingDataModule", "seq_len": 3}}
    cfg["optim"] = {"_target_": "torch.optim.Adam", "list": [{"_target_": "x.y"}]}
    out = upgrade_targets(cfg)
    assert out["data"] == {"_target_": "rnnlab.data.probes.AddingDataModule", "seq_len": 3}
    assert out["optim"] == cfg["optim"]


def test_an_old_checkpoint_evaluates_with_the_same_metrics(tmp_path):
    """adding_v0.3.ckpt: 1 epoch of data=adding from the code before the move (its config
    names rnnlab.data.synthetic.AddingDataModule); its test/mse was 1.6533258 then."""
    proc = run_cli(
        "rnnlab.evaluate",
        f"ckpt_path={FIXTURE}",
        f"hydra.run.dir={tmp_path}",
    )
    assert "rnnlab.data.synthetic.AddingDataModule was renamed" in proc.stdout + proc.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test/mse"] == pytest.approx(1.6533258, rel=1e-4)
