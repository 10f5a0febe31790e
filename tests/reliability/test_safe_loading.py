"""Checkpoints load with weights_only=True: a pickled code payload is refused with a
message naming the file and never runs. Configs read back from checkpoints or files may
only instantiate ``_target_``s in rnnlab, torch and the configured libraries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from rnnlab.checkpoints import load_checkpoint
from rnnlab.safety import ALLOWED_TARGET_PREFIXES, check_targets
from tests.helpers import run_cli


class _SystemPayload:
    """Unpickling this runs ``touch <marker>`` (a classic pickle exploit)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _poisoned_checkpoint(tmp_path: Path, where: str = "hyper_parameters") -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    ckpt = {"state_dict": {"w": torch.zeros(2)}, "epoch": 0, "hyper_parameters": {}}
    if where == "hyper_parameters":
        ckpt["hyper_parameters"]["x"] = _SystemPayload(marker)
    else:  # hidden deep inside an otherwise ordinary optimizer state
        ckpt["optimizer_states"] = [{"state": {0: {"step": _SystemPayload(marker)}}}]
    path = tmp_path / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path, marker


@pytest.mark.parametrize("where", ["hyper_parameters", "optimizer_states"])
def test_load_checkpoint_refuses_payload_and_never_runs_it(tmp_path, where):
    path, marker = _poisoned_checkpoint(tmp_path, where)
    with pytest.raises(ValueError, match="refused to load") as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)
    assert not marker.exists(), "the pickle payload must never run"
    # the payload is real: an unsafe load would have run it
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_plain_checkpoint_loads_and_missing_one_names_the_path(tmp_path):
    path = tmp_path / "ok.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "epoch": 3, "cfg": {"a": [1, "b"]}}, path)
    assert load_checkpoint(path)["epoch"] == 3
    with pytest.raises(FileNotFoundError, match="nope.ckpt.*no such checkpoint file"):
        load_checkpoint(tmp_path / "nope.ckpt")


def test_evaluate_refuses_pickled_payload(tmp_path):
    bad, marker = _poisoned_checkpoint(tmp_path)
    proc = run_cli(
        "rnnlab.evaluate", f"ckpt_path={bad}", f"hydra.run.dir={tmp_path}/e", check=False
    )
    assert proc.returncode != 0
    assert "refused to load" in proc.stderr and str(bad) in proc.stderr
    assert not marker.exists(), "the pickle payload must never run"


@pytest.mark.parametrize("how", ["explicit", "auto"])
def test_train_refuses_pickled_payload_when_resuming(tmp_path, compose_cfg, how):
    """ckpt_path=<file> and ckpt_path=auto (a tampered last.ckpt in the run dir) are
    checked before Lightning sees them (train() calls rnnlab.resume.resolve_ckpt_path first)."""
    from rnnlab.resume import resolve_ckpt_path

    bad, marker = _poisoned_checkpoint(tmp_path)
    cfg = compose_cfg(tmp_path, f"ckpt_path={bad if how == 'explicit' else 'auto'}")
    with pytest.raises(ValueError, match="refused to load") as err:
        resolve_ckpt_path(cfg)
    assert str(bad) in str(err.value)
    assert not marker.exists(), "the pickle payload must never run"


def test_evaluate_refuses_disallowed_target_stored_in_checkpoint(tmp_path):
    """A weights-only-valid checkpoint whose stored config names os.system as a target."""
    marker = tmp_path / "pwned"
    run_config = {
        "data": {"_target_": "os.system", "_args_": [f"touch {marker}"]},
        "task": {"name": "regression"},
        "model": {},
        "optim": {},
    }
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"run_config": run_config}}, path)
    proc = run_cli(
        "rnnlab.evaluate", f"ckpt_path={path}", f"hydra.run.dir={tmp_path}/e", check=False
    )
    assert proc.returncode != 0
    assert "data._target_='os.system' is not allowed" in proc.stderr, proc.stderr[-2000:]
    assert not marker.exists()


@pytest.mark.parametrize(
    "cfg, bad_key",
    [
        ({"_target_": "os.system"}, "cfg._target_"),
        ({"a": {"b": [{"_target_": "subprocess.run"}]}}, "cfg.a.b[0]._target_"),
        ({"_target_": "torchevil.run"}, "cfg._target_"),  # prefix match is per package
        ({"_target_": "builtins.eval"}, "cfg._target_"),
        ({"x": {"_target_": "rnnlab"}}, "cfg.x._target_"),
    ],
)
def test_check_targets_refuses_outside_the_allowed_packages(cfg, bad_key):
    with pytest.raises(ValueError, match="is not allowed") as err:
        check_targets(cfg, "cfg")
    assert f"{bad_key}=" in str(err.value)
    for prefix in ALLOWED_TARGET_PREFIXES:
        assert prefix in str(err.value)


def test_check_targets_accepts_the_project_and_configured_libraries():
    check_targets(
        {
            "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True},
            "callbacks": [{"_target_": "lightning.pytorch.callbacks.EarlyStopping"}],
            "data": {"_target_": "rnnlab.data.probes.AddingDataModule"},
            "metric": {"_target_": "torchmetrics.Accuracy"},
        },
        "cfg",
    )


def test_prepare_only_instantiates_rnnlab_data_builders(tmp_path):
    """A params/config file pointing prepare at another callable is refused by prepare."""
    marker = tmp_path / "pwned"
    proc = run_cli(
        "rnnlab.data.prepare",
        "data=csv",
        f"data.data_dir={tmp_path}/out",
        "prepare._target_=torch.save",
        f"hydra.run.dir={tmp_path}/p",
        check=False,
    )
    assert proc.returncode != 0
    assert "prepare._target_='torch.save' is not allowed" in proc.stderr, proc.stderr[-2000:]
    assert "rnnlab.data." in proc.stderr
    assert not marker.exists()
