"""Acceptance (issue #4): on the adding problem at T=200 the gradient reaching early
steps vanishes in a tanh Elman RNN while an LSTM's profile stays far flatter.

Both models are probed by the callback of a real training run; the LSTM uses the
standard forget-gate bias of 1 (Jozefowicz et al. 2015). Without it the forget gate
starts at sigmoid(0) = 0.5 and an untrained LSTM decays as fast as Elman.
"""

import json

import matplotlib.image as mpimg
import pytest

from tests.helpers import FAST, run_cli

T = 200


def _profile(tmp_path, *overrides):
    run_dir = tmp_path / "_".join(o.split("=")[-1] for o in overrides[:1])
    run_cli(
        "rnnlab.train",
        *FAST,
        "logger=csv",
        f"data.seq_len={T}",
        "data.batch_size=32",
        "model.hidden_size=32",
        "trainer.max_epochs=1",
        "test=false",
        *overrides,
        f"hydra.run.dir={run_dir}",
    )
    doc = json.loads((run_dir / "gradient_flow" / "gradient_flow.json").read_text())
    assert [r["global_step"] for r in doc["records"]] == [0, 2]  # before training, epoch 0
    png = run_dir / "gradient_flow" / "gradient_flow.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and mpimg.imread(png).std() > 0.01
    profile = doc["records"][-1]["layers"]["layer_0"]["dh_norm"]
    assert len(profile) == T and doc["probe"]["time_steps"] == T
    peak = max(profile)
    # fraction of the largest ‖∂L/∂h_t‖ that reaches k steps back from the end
    log = (run_dir / "train.log").read_text()
    return {k: profile[T - 1 - k] / peak for k in (10, 50, 100, 199)}, log


@pytest.mark.slow
def test_elman_gradient_vanishes_while_lstm_stays_flatter(tmp_path):
    elman, elman_log = _profile(tmp_path, "model/cell=rnn", "model/activation=tanh")
    lstm, _ = _profile(tmp_path, "model/cell=lstm", "model.forget_bias=1.0")

    assert elman[100] < 1e-20  # orders of magnitude gone (often underflows to 0)
    assert lstm[100] > 1e-12
    for k in (50, 100, 199):
        assert lstm[k] > 1e6 * elman[k], (k, lstm[k], elman[k])
    assert "vanishing gradients in layer_0" in elman_log
