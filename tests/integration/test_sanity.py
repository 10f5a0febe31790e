"""The README's sanity result: gates carry long dependencies, a tanh Elman RNN does not.

Full runs (recorded in the README): `python -m rnnlab.train experiment=adding_lstm` and
`experiment=adding_elman`. Here each gets a shortened but equal epoch budget.
"""

import pytest

from tests.helpers import read_metrics, run_cli

QUIET = ["print_config=false", "callbacks.progress_bar.refresh_rate=0"]
BASELINE_MSE = 0.167  # always predicting 1


@pytest.mark.slow
def test_lstm_solves_adding_problem_t100(tmp_path):
    run_cli(
        "rnnlab.train",
        "experiment=adding_lstm",
        "trainer.max_epochs=7",
        f"hydra.run.dir={tmp_path}",
        *QUIET,
        timeout=900,
    )
    assert read_metrics(tmp_path)["metrics"]["test/mse"] < 0.01


@pytest.mark.slow
def test_tanh_elman_stays_near_baseline_at_t200(tmp_path):
    run_cli(
        "rnnlab.train",
        "experiment=adding_elman",
        "trainer.max_epochs=3",
        f"hydra.run.dir={tmp_path}",
        *QUIET,
        timeout=900,
    )
    assert read_metrics(tmp_path)["metrics"]["test/mse"] > 0.8 * BASELINE_MSE
