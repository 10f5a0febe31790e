"""Bad configuration is caught at start — before data preparation or training — with a
message naming the key, the bad value and what is valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnlab.config import check_run_config, config_dir
from rnnlab.data.sampling import BucketBatchSampler
from rnnlab.errors import DataError
from rnnlab.nn import build_stack
from rnnlab.nn.model import ModelIO, build_model, check_model_config
from tests.helpers import FAST, run_cli

CONF = Path(config_dir())
ACTS = "elu, gelu, hardtanh, leaky_relu, relu, sigmoid, silu, softsign, tanh"

# (model keys, the message it must give); each message names key, value and what is valid
BAD_MODELS = [
    ({"num_layers": 0}, "model.num_layers=0 must be an integer >= 1"),
    ({"num_layers": -2}, "model.num_layers=-2 must be an integer >= 1"),
    ({"num_layers": "2"}, "model.num_layers='2' must be an integer >= 1"),
    ({"num_layers": 2.5}, "model.num_layers=2.5 must be an integer >= 1"),
    ({"num_layers": True}, "model.num_layers=True must be an integer >= 1"),
    ({"hidden_size": 0}, "model.hidden_size=0 must be an integer >= 1"),
    ({"hidden_size": -8}, "model.hidden_size=-8 must be an integer >= 1"),
    ({"hidden_size": None}, "model.hidden_size=None must be an integer >= 1"),
    ({"embedding_dim": 0}, "model.embedding_dim=0 must be an integer >= 1"),
    ({"dropout": 1.0}, "model.dropout=1.0 must be a number in [0, 1)"),
    ({"dropout": -0.1}, "model.dropout=-0.1 must be a number in [0, 1)"),
    ({"dropout": "high"}, "model.dropout='high' must be a number"),
    ({"head_dropout": 2}, "model.head_dropout=2 must be a number in [0, 1)"),
    ({"bidirectional": "yes"}, "model.bidirectional='yes' must be true or false"),
    ({"forget_bias": "one"}, "model.forget_bias='one' must be a number"),
    ({"fused": "sometimes"}, "model.fused='sometimes' is not valid; valid: auto, true, false"),
    ({"cell": "transformer"}, "model.cell='transformer' is not valid; valid: rnn, lstm, gru"),
    ({"activation": "relux"}, f"model.activation='relux' is not a known activation; valid: {ACTS}"),
    (
        {"cell_activation": "x"},
        f"model.cell_activation='x' is not a known activation; valid: {ACTS}",
    ),
    (
        {"gate_activation": "tanh"},
        "model.gate_activation='tanh' is not a known gate activation; valid: hard_sigmoid, sigmoid",
    ),
    ({"init": "xavier"}, "model.init='xavier' is not valid; valid: default, orthogonal, identity"),
    ({"pooling": "median"}, "model.pooling='median' is not valid; valid: last, mean, max"),
    ({"hiden_size": 8}, "model: unknown key(s) ['hiden_size']; valid: activation, bidirectional"),
    (
        {"connection": {"name": "skip"}},
        "model.connection.name='skip' is not a known connection; valid: stack, residual, highway, "
        "dense, gated_feedback, parallel",
    ),
    ({"connection": "residual"}, "model.connection='residual' must be a mapping with a name"),
    (
        {"connection": {"name": "residual", "start_layer": 0}},
        "model.connection.start_layer=0 must be an integer >= 1",
    ),
    (
        {"connection": {"name": "residual", "project": "no"}},
        "model.connection.project='no' must be true or false",
    ),
    (
        {"connection": {"name": "highway", "gate_bias": "low"}},
        "model.connection.gate_bias='low' must be a number",
    ),
    (
        {"connection": {"name": "dense", "concat_output": "maybe"}},
        "model.connection.concat_output='maybe' must be true or false",
    ),
    (
        {"connection": {"name": "dense", "growth": 4}},
        "model.connection (dense): unknown key(s) ['growth']; valid: concat_output",
    ),
    (
        {"connection": {"name": "parallel", "branches": []}},
        "model.connection.branches=[] must be a non-empty list of branch configs",
    ),
    (
        {"connection": {"name": "parallel", "branches": [{"cell": "gru"}, {"num_layers": 0}]}},
        "model.connection.branches[1].num_layers=0 must be an integer >= 1",
    ),
    (
        {"connection": {"name": "parallel", "branches": [3]}},
        "model.connection.branches[0]=3 must be a mapping of model keys",
    ),
]


@pytest.mark.parametrize("bad, message", BAD_MODELS, ids=[str(b) for b, _ in BAD_MODELS])
def test_bad_model_keys_are_refused_before_building(bad, message):
    with pytest.raises(ValueError) as err:
        check_model_config({"hidden_size": 8, **bad})
    assert message in str(err.value)
    # building refuses the same way
    with pytest.raises(ValueError) as err:
        build_model({"hidden_size": 8, **bad}, ModelIO("tokens", 10, 3))
    assert message in str(err.value)


@pytest.mark.parametrize("connection", ["residual", "highway"])
def test_widths_a_connection_cannot_join_are_refused_naming_them(connection):
    cfg = {"hidden_size": 8, "connection": {"name": connection, "project": False}}
    if connection == "residual":
        cfg["connection"]["start_layer"] = 1
    with pytest.raises(ValueError, match="cannot join width 5 to width 8 with project=false"):
        build_stack(5, cfg)
    build_stack(8, cfg)  # equal widths join without a projection


def test_every_shipped_config_passes_the_start_checks(tmp_path):
    """The checks must not refuse anything the project ships."""
    from hydra import compose, initialize_config_dir

    datasets = sorted(p.stem for p in (CONF / "data").glob("*.yaml"))
    experiments = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
    cases = [[f"data={d}"] for d in datasets] + [[f"experiment={e}"] for e in experiments]
    cases += [[f"model/connection={c.stem}"] for c in (CONF / "model" / "connection").glob("*")]
    cases += [[f"trainer={t.stem}"] for t in (CONF / "trainer").glob("*.yaml")]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for overrides in cases:
            cfg = compose("config", overrides=[*overrides, f"paths.output_dir={tmp_path}"])
            check_run_config(cfg)


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.batch_size=0", "data.batch_size=0 must be an integer >= 1"),
        ("data.num_train=-5", "data.num_train=-5 must be an integer >= 1"),
        ("data.num_workers=-1", "data.num_workers=-1 must be an integer >= 0"),
        ("data.seq_len=1.5", "data.seq_len=1.5 must be an integer >= 1"),
        ("seed=-1", "seed=-1 must be an integer >= 0"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0 must be an integer >= 1 (or -1"),
        ("model.num_layers=0", "model.num_layers=0 must be an integer >= 1"),
    ],
)
def test_run_config_checks_name_the_key(tmp_path, override, message):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[override, f"paths.output_dir={tmp_path}"])
    with pytest.raises(ValueError) as err:
        check_run_config(cfg)
    assert message in str(err.value)


def test_bucket_pool_must_be_positive():
    with pytest.raises(DataError, match="data.pool=0 must be an integer >= 1"):
        BucketBatchSampler([3, 4], 2, shuffle=True, pool=0)


# --- through the real CLI: the run stops before preparing data or training ---------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.num_layers=0"], "model.num_layers=0 must be an integer >= 1"),
        # a dataset that would need preparing: the model error comes first
        (
            ["data=csv", "prepare.path=/nonexistent.csv", "model.hidden_size=-1"],
            "model.hidden_size=-1 must be an integer >= 1",
        ),
    ],
)
def test_cli_refuses_bad_config_at_start(tmp_path, overrides, message):
    fast = ["print_config=false"] if overrides[0].startswith("data=") else FAST
    proc = run_cli(
        "rnnlab.train",
        f"hydra.run.dir={tmp_path}",
        "logger=csv",
        *fast,
        *overrides,
        check=False,
    )
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr[-2000:]
    # train() seeds right after preparing data: no seed, no preparation, no training
    assert "Seed set to" not in proc.stderr, "must fail before data preparation"
    assert "file not found" not in proc.stderr
    assert not (tmp_path / "checkpoints").exists()
