"""From synthesized speech to a training clip: placement, coloured noise, gain.

With speech ``s`` (float, at the target rate) of power ``P = mean(s^2)``:

1. **Place**: in a fixed window of ``length`` samples at a random offset
   (``offset ~ U{0..length - len(s)}``, centre-cropped if longer), or, for variable
   length, between random leading and trailing silences of ``U(pad_s)`` seconds each.
2. **Noise**: ``w = s + n * sqrt(P / 10^(snr / 10))`` with ``snr ~ U(snr_db)`` and ``n``
   unit-variance noise of a random colour (:func:`colored_noise`).
3. **Gain**: ``w <- w * 0.9 * 10^(g / 20) / max|w|`` with ``g ~ U(gain_db)`` (dB), so
   the peak is ``0.9 * 10^(g / 20)`` and never clips.

Every draw comes from the clip's own generator, in this order, so a clip depends only
on its seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rnnlab.data.speech.features import fix_length


@dataclass(frozen=True)
class Render:
    """How speech becomes a clip (see the module docstring)."""

    length: int | None  # samples of a fixed window, or None: natural length + padding
    pad_s: tuple[float, float]  # leading/trailing silence range (s) when length is None
    snr_db: Sequence[float]
    gain_db: Sequence[float]


def colored_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` samples of white-to-brown noise, unit variance, float32.

    The spectrum of white noise is divided by ``f^(a/2)``, ``a ~ U(0, 2)`` (0 = white,
    1 = pink, 2 = brown): a random spectral slope so the noise floor is not one colour.
    """
    n_fft = 1 << (n - 1).bit_length()  # a power of two: prime lengths make the FFT crawl
    spectrum = np.fft.rfft(rng.standard_normal(n_fft))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    spectrum /= f ** (rng.uniform(0.0, 2.0) / 2)
    noise = np.fft.irfft(spectrum, n_fft)[:n]
    return (noise / (noise.std() + 1e-12)).astype(np.float32)


def render(
    rng: np.random.Generator, speech: np.ndarray, how: Render, sample_rate: int
) -> np.ndarray:
    """Place ``speech`` (random shift or padding), add noise at a random SNR, apply gain."""
    speech = speech.astype(np.float32)
    if how.length is None:  # variable length: random leading/trailing silence
        lead, trail = (int(rng.uniform(*how.pad_s) * sample_rate) for _ in range(2))
        wave = np.concatenate([np.zeros(lead, np.float32), speech, np.zeros(trail, np.float32)])
    else:
        slack = max(0, how.length - len(speech))
        wave = fix_length(speech, how.length, int(rng.integers(0, slack + 1)))
    power = float(np.mean(speech**2)) + 1e-12
    snr = rng.uniform(*how.snr_db)
    noise = colored_noise(rng, len(wave)) * math.sqrt(power / 10 ** (snr / 10))
    wave = wave + noise
    peak = float(np.abs(wave).max()) + 1e-12
    wave *= 10 ** (rng.uniform(*how.gain_db) / 20) * 0.9 / peak
    return wave
