"""The acoustic front end: parameters, frame counts, clip length, one-thread builders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnlab.data.speech.features import (
    FeatureExtractor,
    FeatureParams,
    fix_length,
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
