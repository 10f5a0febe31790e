"""The acoustic front end: resampling, fixed-length clips, log-mel/MFCC features and
train-only normalisation.

A waveform ``w`` (float, [-1, 1], at ``sample_rate``) becomes frames of a short-time
Fourier transform with a Hann window of ``win_length = round(sr * win_ms / 1000)``
samples, hop ``hop_length = round(sr * hop_ms / 1000)`` and ``n_fft`` the next power of
two >= ``win_length`` (``center=True``). Then

* ``logmel``: ``log(M |STFT(w)|^2 + 1e-6)``, ``M`` a bank of ``n_mels`` mel filters;
* ``mfcc``: the first ``n_mfcc`` DCT-II coefficients of the log-mel energies.

Shapes: ``(T,) -> (frames, F)`` with ``frames = 1 + T // hop_length`` and ``F`` =
:attr:`FeatureParams.dim`; a batch ``(N, T) -> (N, frames, F)``. Every parameter is
stored in ``meta["features"]`` (:meth:`FeatureParams.as_meta`) so the same front end can
be rebuilt at inference. :func:`normalize_splits` standardises each feature with the
mean and standard deviation of the TRAIN frames only, so val/test stay unseen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torchaudio

from rnnlab.data.format import Split
from rnnlab.errors import DataError

FEATURE_KINDS = ("logmel", "mfcc")
LOG_OFFSET = 1e-6


@dataclass(frozen=True)
class FeatureParams:
    """Front-end parameters, stored verbatim in ``meta["features"]``."""

    sample_rate: int = 16000
    feature: str = "logmel"  # logmel | mfcc
    n_mels: int = 40
    n_mfcc: int = 13
    win_ms: float = 25.0
    hop_ms: float = 10.0

    def __post_init__(self) -> None:
        if self.feature not in FEATURE_KINDS:
            raise DataError(f"features.feature={self.feature!r}; valid: {', '.join(FEATURE_KINDS)}")
        for key in ("sample_rate", "n_mels", "n_mfcc"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DataError(f"features.{key}={value!r} must be an integer >= 1")
        if self.n_mfcc > self.n_mels:
            raise DataError(f"features.n_mfcc={self.n_mfcc} must be <= n_mels={self.n_mels}")
        if not 0 < self.hop_ms <= self.win_ms:
            raise DataError(
                f"features.hop_ms={self.hop_ms!r}, win_ms={self.win_ms!r}: "
                "need 0 < hop_ms <= win_ms"
            )

    @property
    def win_length(self) -> int:
        return round(self.sample_rate * self.win_ms / 1000)

    @property
    def hop_length(self) -> int:
        return round(self.sample_rate * self.hop_ms / 1000)

    @property
    def n_fft(self) -> int:
        return 1 << (self.win_length - 1).bit_length()

    @property
    def dim(self) -> int:
        return self.n_mels if self.feature == "logmel" else self.n_mfcc

    def as_meta(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "n_fft": self.n_fft,
            "win_length": self.win_length,
            "hop_length": self.hop_length,
            "dim": self.dim,
            "log_offset": LOG_OFFSET,
            "window": "hann",
            "center": True,
        }


class FeatureExtractor:
    """Waveform (float, [-1, 1], at ``params.sample_rate``) -> (frames, F) float32."""

    def __init__(self, params: FeatureParams) -> None:
        self.params = params
        mel_kwargs = dict(
            n_fft=params.n_fft,
            win_length=params.win_length,
            hop_length=params.hop_length,
            n_mels=params.n_mels,
        )
        if params.feature == "logmel":
            self.transform: torch.nn.Module = torchaudio.transforms.MelSpectrogram(
                sample_rate=params.sample_rate, **mel_kwargs
            )
        else:
            self.transform = torchaudio.transforms.MFCC(
                sample_rate=params.sample_rate,
                n_mfcc=params.n_mfcc,
                log_mels=True,
                melkwargs=mel_kwargs,
            )

    @torch.no_grad()
    def __call__(self, waves: torch.Tensor) -> torch.Tensor:
        """(T,) -> (frames, F), or (N, T) -> (N, frames, F)."""
        spec = self.transform(waves.float())
        if self.params.feature == "logmel":
            spec = torch.log(spec + LOG_OFFSET)
        return spec.transpose(-1, -2).contiguous().float()


_RESAMPLERS: dict[tuple[int, int], torchaudio.transforms.Resample] = {}


def resample(wave: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Resample along the last dim (kernels cached per rate pair: thousands of clips)."""
    if orig_sr == new_sr:
        return wave
    key = (int(orig_sr), int(new_sr))
    if key not in _RESAMPLERS:
        _RESAMPLERS[key] = torchaudio.transforms.Resample(*key)
    with torch.no_grad():
        return _RESAMPLERS[key](wave.float())


def fix_length(wave: np.ndarray, length: int, offset: int | None = None) -> np.ndarray:
    """Pad with zeros or centre-crop to ``length``; ``offset`` places a short clip."""
    if len(wave) >= length:
        start = (len(wave) - length) // 2
        return wave[start : start + length]
    out = np.zeros(length, dtype=np.float32)
    start = (length - len(wave)) // 2 if offset is None else offset
    out[start : start + len(wave)] = wave
    return out


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread: per-clip STFTs are tiny, and intra-op threads only add
    contention (measured 60x slower with 2 threads on a busy 2-core machine).

    A context manager, and a decorator when called: ``@single_thread()`` on a builder.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def normalize_splits(splits: dict[str, Split], normalize: bool) -> dict[str, Any] | None:
    """Global per-feature mean/std from TRAIN frames, applied to every split in place.

    ``x' = (x - mean_train) / max(std_train, 1e-5)`` per feature dimension, in float64
    (``std`` with Bessel's correction); returns the statistics for
    ``meta["normalization"]`` (None when ``normalize`` is off). The statistics are merged
    one utterance at a time (:func:`feature_moments`) and each utterance is rewritten in
    its own tensor, so no copy of the whole split is made: a 100-hour corpus prepares in
    about its own size of memory.
    """
    if not normalize:
        return None
    mean, std = feature_moments(splits["train"].inputs)
    std = std.clamp_min(1e-5)
    for split in splits.values():
        for x in split.inputs:
            x.copy_((x.double() - mean) / std)
    return {
        "type": "global_meanvar",
        "computed_on": "train",
        "applied": True,
        "mean": [round(v, 6) for v in mean.tolist()],
        "std": [round(v, 6) for v in std.tolist()],
    }


def feature_moments(inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and standard deviation (Bessel-corrected) over the frames of all
    ``inputs`` ((frames, F) each), in float64, merging per-utterance moments (Chan et al.'s
    pairwise update, numerically as stable as two passes over the concatenation)."""
    n, mean, m2 = 0, None, None
    for x in inputs:
        xd = x.double()
        k = xd.shape[0]
        mx = xd.mean(0)
        m2x = (xd - mx).square().sum(0)
        if mean is None:
            n, mean, m2 = k, mx, m2x
            continue
        delta, total = mx - mean, n + k
        mean = mean + delta * (k / total)
        m2 = m2 + m2x + delta.square() * (n * k / total)
        n = total
    if mean is None:
        raise ValueError("feature_moments needs at least one sequence")
    return mean, (m2 / max(n - 1, 1)).sqrt()


def speech_meta(
    task: str,
    fp: FeatureParams,
    labels: Sequence[str],
    splits: dict[str, Split],
    normalize: bool,
    speakers: dict[str, list[str]] | None,
    speaker_definition: str | None,
    targets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The meta keys every speech builder writes, in this order: ``task``, feature input
    and ``input_dim``, ``labels`` (then ``targets``: how labels are encoded, for CTC),
    ``features``, ``normalization`` (:func:`normalize_splits` is applied to ``splits``
    here), ``speakers`` per split and ``speaker_definition``."""
    return {
        "task": task,
        "input_kind": "features",
        "input_dim": fp.dim,
        "labels": list(labels),
        **(targets or {}),
        "features": fp.as_meta(),
        "normalization": normalize_splits(splits, normalize),
        "speakers": speakers,
        "speaker_definition": speaker_definition,
    }
