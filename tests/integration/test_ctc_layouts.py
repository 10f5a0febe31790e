"""Speech recognition on your own recordings, through the real CLI, in each layout a user
may have: ``python -m rnnlab.train data=speech_transcripts prepare.<source>=…`` trains
CTC on a manifest CSV, LibriSpeech-style folders and Common Voice-style TSVs, and the
CER falls from the first epoch's to near zero on the held-out speaker.

The fixture (:mod:`tests.transcript_fixtures`) speaks a 4-letter alphabet of up/down
chirps, so the letters are learnt from time, not from one frame; clips are a few tenths
of a second, hence no frame stacking (``model.time_reduction=1``; the data's default
stacks 3 frames for real recordings)."""

import json

import pytest

from rnnlab.metrics import read_metrics_csv
from tests.helpers import read_metrics, run_cli
from tests.transcript_fixtures import (
    corpus,
    write_commonvoice,
    write_librispeech,
    write_manifest,
)

SMALL = [  # the data's recipe (biLSTM, lr 3e-3 ...) made small: 1 layer of 48
    "model.time_reduction=1",
    "model.hidden_size=48",
    "model.num_layers=1",
    "data.batch_size=16",
    "optim.optimizer.lr=5e-3",
    "trainer.max_epochs=12",
    "logger=csv",
    "callbacks.gradient_flow=null",
    "print_config=false",
    "callbacks.progress_bar.refresh_rate=0",
]


def _source(layout, root):
    """The fixture written in ``layout`` under ``root``, as its ``prepare.<source>=``."""
    utts = corpus(per_speaker=16)
    if layout == "manifest":
        return f"prepare.manifest={write_manifest(root / 'mine', utts)}"
    if layout == "librispeech":
        return f"prepare.librispeech_root={write_librispeech(root / 'LibriSpeech', utts)}"
    tsvs = write_commonvoice(root / "cv", utts)
    return f"prepare.commonvoice_tsv=[{','.join(str(t) for t in tsvs)}]"


@pytest.mark.parametrize("layout", ["manifest", "librispeech", "commonvoice"])
def test_ctc_trains_on_each_layout_and_cer_falls(tmp_path, layout):
    source = _source(layout, tmp_path)
    data_dir, run = tmp_path / "data", tmp_path / "run"
    run_cli(
        "rnnlab.train",
        "data=speech_transcripts",
        source,
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={run}",
        *SMALL,
    )
    (meta_path,) = (data_dir / "processed").glob("speech_transcripts-*/meta.json")
    meta = json.loads(meta_path.read_text())
    assert meta["source"]["layout"] == layout
    assert meta["labels"] == ["<unk>", "a", "b", "c", "d"]  # lower-cased, punctuation gone
    assert meta["split_method"] == "given" and meta["speakers"]["test"]
    assert {k: meta["counts"][k]["total"] for k in ("train", "val", "test")} == {
        "train": 64,
        "val": 16,
        "test": 16,
    }
    cer = dict(read_metrics_csv(run / "csv" / "metrics.csv")["val/cer"])
    test_cer = read_metrics(run)["metrics"]["test/cer"]
    first = cer[min(cer)]
    assert first > 0.4, cer  # the first epoch gets most letters wrong ...
    assert min(cer.values()) < 0.1 and test_cer < 0.15, (cer, test_cer)  # ... later, few
