"""The embedded espeak-ng datasets: speaker-disjoint, deterministic, validated."""

from __future__ import annotations

import pytest
import torch

from rnnlab.data.format import write_processed
from rnnlab.data.speech.synthetic import build_speech_commands_synth, build_speech_digits_synth
from rnnlab.errors import DataError

SMALL = dict(
    voices=["en", "en-us"],
    variants=["m1", "f2", "m3"],
    rates=[175],
    pitches=[50],
    features={"n_mels": 20},
)


def test_commands_synth_voice_disjoint_and_deterministic(tmp_path):
    words = ["yes", "no", "stop"]
    splits, meta = build_speech_commands_synth(words=words, seed=3, **SMALL)
    spk = meta["speakers"]
    assert set(spk["train"]).isdisjoint(spk["val"])
    assert set(spk["train"]).isdisjoint(spk["test"])
    assert set(spk["val"]).isdisjoint(spk["test"])
    assert sorted(spk["train"] + spk["val"] + spk["test"]) == sorted(
        f"{v}+{var}" for v in SMALL["voices"] for var in SMALL["variants"]
    )
    total = sum(len(s) for s in splits.values())
    assert total == 6 * len(words)
    x = splits["train"].inputs[0]
    assert x.dtype == torch.float32 and x.shape == (101, 20)
    assert meta["input_dim"] == 20 and meta["labels"] == words and meta["task"] == "classification"
    assert meta["features"]["hop_length"] == 160 and meta["features"]["win_length"] == 400
    # normalisation stats come from train: train features are ~zero-mean, unit-var
    train = torch.cat(splits["train"].inputs)
    assert train.mean(0).abs().max() < 1e-3 and (train.std(0) - 1).abs().max() < 1e-2
    assert len(meta["normalization"]["mean"]) == 20
    again, meta2 = build_speech_commands_synth(words=words, seed=3, **SMALL)
    assert meta2["speakers"] == spk
    for k in splits:
        assert splits[k].targets == again[k].targets
        assert all(torch.equal(a, b) for a, b in zip(splits[k].inputs, again[k].inputs))
    other, _ = build_speech_commands_synth(words=words, seed=4, **SMALL)
    assert (
        not torch.equal(torch.cat(other["train"].inputs[:1]), torch.cat(again["train"].inputs[:1]))
        or other["train"].targets != again["train"].targets
    )
    written = write_processed(tmp_path / "sc", splits, meta)
    assert written["counts"]["test"]["total"] == len(splits["test"])


def test_commands_synth_explicit_speakers_and_errors():
    _, meta = build_speech_commands_synth(
        words=["go"], val_speakers=["en+m1"], test_speakers=["en-us+f2", "en-us+m3"], **SMALL
    )
    assert meta["speakers"]["test"] == ["en-us+f2", "en-us+m3"]
    assert "en+m1" not in meta["speakers"]["train"]
    with pytest.raises(DataError, match="en\\+m9"):
        build_speech_commands_synth(
            words=["go"], val_speakers=["en+m9"], test_speakers=["en+m1"], **SMALL
        )
    with pytest.raises(DataError, match="feature='spectrogram'"):
        build_speech_commands_synth(
            words=["go"], **{**SMALL, "features": {"feature": "spectrogram"}}
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"words": ["yes", True]}, "non-text entries"),
        ({"repeats": 0}, "repeats=0"),
        ({"clip_seconds": 0}, "clip_seconds=0"),
        ({"rates": []}, "must be non-empty"),
        ({"snr_db": [30, 5]}, "snr_db=\\[30, 5\\]"),
        ({"voices": []}, "voices=\\[\\] is empty"),
        # one fraction rule for every source: each in [0, 1), sum < 1
        ({"val_fraction": 0.6, "test_fraction": 0.5}, "sum < 1"),
        ({"test_fraction": 1.0}, "test_fraction=1.0"),
    ],
)
def test_commands_synth_refuses_bad_settings(kwargs, message):
    with pytest.raises(DataError, match=message):
        build_speech_commands_synth(**{**SMALL, "words": ["go"], **kwargs})


def test_digits_synth_ctc_targets():
    splits, meta = build_speech_digits_synth(
        utterances_per_speaker=2,
        min_digits=3,
        max_digits=5,
        **{**SMALL, "features": {"feature": "mfcc"}},
    )
    assert meta["task"] == "ctc" and meta["labels"][0] == "zero" and len(meta["labels"]) == 10
    assert meta["input_dim"] == 13
    for split in splits.values():
        for x, y in zip(split.inputs, split.targets):
            assert 3 <= len(y) <= 5 and all(0 <= d <= 9 for d in y)
            assert x.shape[1] == 13 and x.shape[0] > 10 * len(y)  # > 100 ms per digit
    assert set(meta["speakers"]["train"]).isdisjoint(meta["speakers"]["test"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_digits": 4, "max_digits": 3}, "min_digits=4"),
        ({"utterances_per_speaker": 0}, "utterances_per_speaker=0"),
        ({"pad_seconds": [0.3, 0.1]}, "pad_seconds"),
        ({"gain_db": [0.0]}, "gain_db"),
    ],
)
def test_digits_synth_refuses_bad_settings(kwargs, message):
    with pytest.raises(DataError, match=message):
        build_speech_digits_synth(**{**SMALL, **kwargs})
