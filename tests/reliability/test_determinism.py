"""DESIGN: same config and data give the same metrics and weights on CPU; another seed
gives different ones. Every checkpoint a run writes loads with weights_only=True."""

from __future__ import annotations

import pytest
import torch

from rnnlab.checkpoints import load_checkpoint
from tests.helpers import FAST, read_metrics, run_cli


def _run(tmp_path, name: str, seed: int):
    out = tmp_path / name
    run_cli(
        "rnnlab.train",
        "trainer.max_epochs=2",
        f"seed={seed}",
        "model/activation=gelu",  # rnnlab's own kernel, not PyTorch's fused one
        "model.num_layers=2",
        "model.dropout=0.3",
        "logger=csv",
        f"hydra.run.dir={out}",
        *FAST,
    )
    ckpts = {p.name: load_checkpoint(p) for p in (out / "checkpoints").glob("*.ckpt")}
    assert "last.ckpt" in ckpts and len(ckpts) == 2, sorted(ckpts)
    return read_metrics(out), ckpts


@pytest.mark.slow
def test_same_seed_same_run_different_seed_different_run(tmp_path):
    (r1, c1), (r2, c2), (r3, c3) = (
        _run(tmp_path, "a", 1),
        _run(tmp_path, "b", 1),
        _run(tmp_path, "c", 2),
    )
    assert r1["metrics"] == r2["metrics"]
    assert (r1["epoch"], r1["global_step"]) == (r2["epoch"], r2["global_step"])
    assert c1.keys() == c2.keys()
    for name in c1:
        w1, w2 = c1[name]["state_dict"], c2[name]["state_dict"]
        assert w1.keys() == w2.keys()
        assert all(torch.equal(w1[k], w2[k]) for k in w1), name
    assert r1["metrics"]["test/mse"] != r3["metrics"]["test/mse"]
    w1, w3 = c1["last.ckpt"]["state_dict"], c3["last.ckpt"]["state_dict"]
    assert any(not torch.equal(w1[k], w3[k]) for k in w1)
