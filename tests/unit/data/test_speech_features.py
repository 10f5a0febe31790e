"""The acoustic front end: parameters, frame counts, clip length, one-thread builders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnlab.data.format import Split
from rnnlab.data.speech.features import (
    FeatureExtractor,
    FeatureParams,
    feature_moments,
    fix_length,
    normalize_splits,
    resample,
    single_thread,
)
from rnnlab.errors import DataError


def test_feature_shapes_follow_the_hop():
    fp = FeatureParams(n_mels=20)
    assert (fp.win_length, fp.hop_length, fp.n_fft, fp.dim) == (400, 160, 512, 20)
    x = torch.randn(8000) * 0.1
    assert FeatureExtractor(fp)(x).shape == (1 + 8000 // 160, 20)
    mfcc = FeatureExtractor(FeatureParams(feature="mfcc"))(torch.randn(2, 16000) * 0.1)
    assert mfcc.shape == (2, 101, 13) and mfcc.dtype == torch.float32
    assert fp.as_meta()["hop_length"] == 160 and fp.as_meta()["window"] == "hann"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"feature": "spectrogram"}, "valid: logmel, mfcc"),
        ({"n_mels": 0}, "n_mels=0"),
        ({"n_mfcc": 50}, "n_mfcc=50 must be <= n_mels=40"),
        ({"hop_ms": 30.0}, "need 0 < hop_ms <= win_ms"),
    ],
)
def test_feature_params_refuse_bad_values(kwargs, message):
    with pytest.raises(DataError, match=message):
        FeatureParams(**kwargs)


def test_fix_length_and_resample():
    wave = np.arange(10, dtype=np.float32)
    assert fix_length(wave, 4).tolist() == [3, 4, 5, 6]  # centre crop
    assert fix_length(wave[:2], 4).tolist() == [0, 0, 1, 0]  # centred pad
    assert fix_length(wave[:2], 4, offset=2).tolist() == [0, 0, 0, 1]
    assert resample(torch.zeros(8000), 8000, 16000).shape == (16000,)
    x = torch.ones(5)
    assert resample(x, 16000, 16000) is x


def test_single_thread_restores_the_thread_count():
    before = torch.get_num_threads()

    @single_thread()
    def threads() -> int:
        return torch.get_num_threads()

    assert threads() == 1 and torch.get_num_threads() == before
    with single_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_feature_moments_match_two_passes_over_the_concatenation():
    g = torch.Generator().manual_seed(0)
    lengths = [1, 2, 1, 300, 7, 1, 55] * 20  # ragged, single-frame utterances included
    xs = [torch.randn(n, 6, generator=g) * 40 + 1e3 for n in lengths]  # large offset
    frames = torch.cat(xs).double()
    mean, std = feature_moments(xs)
    torch.testing.assert_close(mean, frames.mean(0), rtol=0, atol=1e-10)
    torch.testing.assert_close(std, frames.std(0), rtol=1e-12, atol=0)


def test_normalize_splits_standardises_with_train_statistics_in_place():
    g = torch.Generator().manual_seed(1)
    splits = {
        name: Split([torch.randn(n, 4, generator=g) * 3 + 5 for n in (9, 1, 30)], [0, 1, 0])
        for name in ("train", "val", "test")
    }
    raw = {k: [x.clone() for x in v.inputs] for k, v in splits.items()}
    ids = {k: [x.data_ptr() for x in v.inputs] for k, v in splits.items()}
    stats = normalize_splits(splits, True)
    train = torch.cat(splits["train"].inputs).double()
    torch.testing.assert_close(
        train.mean(0), torch.zeros(4, dtype=torch.float64), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(train.std(0), torch.ones(4, dtype=torch.float64), atol=1e-6, rtol=0)
    mean, std = torch.tensor(stats["mean"]), torch.tensor(stats["std"])
    for k, v in splits.items():  # val/test use TRAIN's statistics; no tensor was copied
        assert [x.data_ptr() for x in v.inputs] == ids[k]
        for x, r in zip(v.inputs, raw[k], strict=True):
            torch.testing.assert_close(x, (r - mean) / std, atol=1e-5, rtol=0)
    assert normalize_splits(splits, False) is None
