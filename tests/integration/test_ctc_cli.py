"""CTC recognition through the real CLI: train on synthesized connected digits (the
dataset's own recipe: biLSTM, time_reduction 4), CER falls; evaluate decodes greedy and
beam in one test pass and writes hypotheses.csv."""

import csv
import json

from rnnlab.evaluate import HYPOTHESES_COLUMNS
from rnnlab.metrics import read_metrics_csv
from tests.helpers import read_metrics, run_cli

QUIET = ["print_config=false", "callbacks.progress_bar.refresh_rate=0"]


def test_ctc_trains_on_synth_digits_and_evaluate_writes_greedy_and_beam(tmp_path):
    run = tmp_path / "run"
    run_cli(
        "rnnlab.train",
        "data=speech_digits_synth",
        "prepare.voices=[en,en-us,en-gb-x-rp]",
        "prepare.variants=[m1,f1,m3,f3]",
        "prepare.utterances_per_speaker=10",
        "prepare.max_digits=4",
        f"paths.data_dir={tmp_path / 'data'}",
        "data.batch_size=4",
        "model.hidden_size=48",
        "optim.optimizer.lr=1e-2",
        "trainer.max_epochs=20",
        "logger=csv",
        "callbacks.gradient_flow=null",
        f"hydra.run.dir={run}",
        *QUIET,
    )
    record = read_metrics(run)
    assert record["metrics"]["test/cer"] == record["metrics"]["test/cer"]  # not NaN
    cer = dict(read_metrics_csv(run / "csv" / "metrics.csv")["val/cer"])
    first, last = cer[min(cer)], min(cer.values())
    assert first > 0.9 and last < 0.6, cer  # blanks only at first, then it transcribes

    out = tmp_path / "eval"
    run_cli(
        "rnnlab.evaluate",
        f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}",
        "decoder.beam_size=8",
        f"hydra.run.dir={out}",
        "trainer.enable_progress_bar=false",
    )
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("test/cer", "test/wer", "test/cer_beam", "test/wer_beam", "test/ser"):
        assert 0 <= metrics[key] <= 1.5, (key, metrics)
    with open(out / "hypotheses.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == HYPOTHESES_COLUMNS
    meta = json.loads((tmp_path / "data/processed/speech_digits_synth/meta.json").read_text())
    assert len(rows) == meta["counts"]["test"]["total"]
    digits = set(meta["labels"])
    assert all(set(r["reference"].split()) <= digits and r["beam"] is not None for r in rows)
