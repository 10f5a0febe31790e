"""Speech datasets: audio I/O, acoustic features, SpecAugment and the dataset builders.

Every builder returns ``(splits, meta)`` for :func:`rnnlab.data.format.write_processed`:
``Split.inputs`` are float32 ``(frames, F)`` feature tensors, and ``meta`` records the
feature parameters (so the same front end can be rebuilt at inference), the normalisation
statistics (computed on TRAIN only, so val/test stay unseen), the speakers of each split
(so a reviewer can check that they are disjoint) and what was skipped and why.

Audio is read with ``soundfile``: torchaudio >= 2.9 ``load`` needs torchcodec + FFmpeg.
torchaudio is used for resampling, features and masking only.

Builders:

* :func:`build_speech_commands_synth` — the ten Speech Commands core words spoken by
  espeak-ng voices (keyword spotting, ``classification``); split by synthetic speaker.
* :func:`build_speech_digits_synth` — spoken digit strings (``ctc``).
* :func:`build_audio_folder` — your own ``<root>/<label>/*.wav`` or a manifest CSV.
* :func:`build_speech_commands` — the real Google Speech Commands v2 (download).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import soundfile as sf
import torch
import torchaudio

from rnnlab.data.format import Split
from rnnlab.data.synth import (
    ENGLISH_VOICES,
    Job,
    Voice,
    synthesize,
    synthesize_batch,
    trim_silence,
)
from rnnlab.data.synth import SAMPLE_RATE as SYNTH_RATE
from rnnlab.errors import DataError

log = logging.getLogger(__name__)

CORE_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FEATURE_KINDS = ("logmel", "mfcc")
BAD_INPUT_MODES = ("skip", "error")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
SPEECH_COMMANDS_URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
# Five male and four female variants: a spread of formant/pitch settings that still
# sounds like speech (the whisper/robot/croak variants in espeak-ng-data are left out).
DEFAULT_VARIANTS = ("m1", "m2", "m3", "m4", "m6", "m7", "f1", "f2", "f3", "f4")
SPLIT_NAMES = ("train", "val", "test")
F = TypeVar("F", bound=Callable[..., Any])


def _one_thread(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with single_thread():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# --------------------------------------------------------------------------- features
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
            "log_offset": 1e-6,
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
            spec = torch.log(spec + 1e-6)
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


def spec_augment(
    features: torch.Tensor,
    freq_mask: int = 8,
    time_mask: int = 10,
    num_masks: int = 2,
    mask_value: float | None = None,
) -> torch.Tensor:
    """SpecAugment (Park et al. 2019) time and frequency masking for TRAIN batches.

    ``features``: (frames, F) or (B, frames, F). Each of ``num_masks`` rounds masks up to
    ``freq_mask`` consecutive feature bins and up to ``time_mask`` frames (each item of a
    batch gets its own masks). Masked cells take ``mask_value`` (default: the utterance's
    mean, which is neutral whether or not features were normalised). Returns a new tensor
    of the same shape; uses torch's global RNG, which the DataModule seeds.
    """
    for key, value in (
        ("freq_mask", freq_mask),
        ("time_mask", time_mask),
        ("num_masks", num_masks),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise DataError(f"data.spec_augment.{key}={value!r} must be an integer >= 0")
    if features.dim() not in (2, 3):
        raise DataError(
            f"spec_augment: features of shape {tuple(features.shape)}; "
            "valid: (frames, F) or (batch, frames, F)"
        )
    if features.dim() == 3:
        return torch.stack(
            [spec_augment(x, freq_mask, time_mask, num_masks, mask_value) for x in features]
        )
    out = features.t().clone()  # torchaudio masks expect (..., freq, time)
    value = float(out.mean()) if mask_value is None else float(mask_value)
    fmask = torchaudio.transforms.FrequencyMasking(min(freq_mask, out.shape[0]))
    tmask = torchaudio.transforms.TimeMasking(min(time_mask, out.shape[1]))
    for _ in range(num_masks):
        if freq_mask > 0:
            out = fmask(out, value)
        if time_mask > 0:
            out = tmask(out, value)
    return out.t().contiguous()


# --------------------------------------------------------------------------- helpers
@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread: per-clip STFTs are tiny, and intra-op threads only add
    contention (measured 60x slower with 2 threads on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _check_words(where: str, words: Sequence[Any]) -> None:
    bad = [w for w in words if not isinstance(w, str) or not w.strip()]
    if bad:
        raise DataError(
            f"{where}: words={list(words)!r} has non-text entries {bad}; quote them in YAML "
            '(yes/no/on/off are booleans unquoted), e.g. ["yes", "no", "on", "off"]'
        )
    if not words or len(set(words)) != len(words):
        raise DataError(f"{where}: words={list(words)!r} must be non-empty and unique")


def _check_choice(name: str, value: Any, valid: Sequence[Any]) -> None:
    if value not in valid:
        raise DataError(f"{name}={value!r}; valid: {', '.join(map(str, valid))}")


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DataError(
            f"val_fraction={val_fraction!r}, test_fraction={test_fraction!r}: each must be in "
            "(0, 1) and their sum < 1"
        )


def split_speakers(
    speakers: Iterable[str],
    val_fraction: float,
    test_fraction: float,
    seed: int,
    val_speakers: Sequence[str] | None = None,
    test_speakers: Sequence[str] | None = None,
) -> dict[str, list[str]]:
    """Assign whole speakers to train/val/test (seeded), or use explicit val/test lists."""
    all_speakers = sorted(set(speakers))
    for name, given in (("val_speakers", val_speakers), ("test_speakers", test_speakers)):
        unknown = sorted(set(given or ()) - set(all_speakers))
        if unknown:
            raise DataError(
                f"{name}: unknown speaker(s) {unknown}; valid: {', '.join(all_speakers)}"
            )
    if val_speakers or test_speakers:
        if not (val_speakers and test_speakers):
            raise DataError("val_speakers and test_speakers must be given together (or neither)")
        overlap = sorted(set(val_speakers) & set(test_speakers))
        if overlap:
            raise DataError(f"speakers {overlap} are in both val_speakers and test_speakers")
        held = set(val_speakers) | set(test_speakers)
        return {
            "train": [s for s in all_speakers if s not in held],
            "val": sorted(val_speakers),
            "test": sorted(test_speakers),
        }
    _check_fractions(val_fraction, test_fraction)
    if len(all_speakers) < 3:
        raise DataError(
            f"need at least 3 speakers for a speaker-disjoint split, got {all_speakers}"
        )
    order = [all_speakers[i] for i in np.random.default_rng(seed).permutation(len(all_speakers))]
    n_test = max(1, round(test_fraction * len(order)))
    n_val = max(1, round(val_fraction * len(order)))
    n_test = min(n_test, len(order) - 2)
    n_val = min(n_val, len(order) - n_test - 1)
    return {
        "test": sorted(order[:n_test]),
        "val": sorted(order[n_test : n_test + n_val]),
        "train": sorted(order[n_test + n_val :]),
    }


def _hash_split(key: str, val_fraction: float, test_fraction: float) -> str:
    """Stable per-item split (adding files never moves existing ones), like Speech Commands."""
    x = int(hashlib.sha1(key.encode()).hexdigest(), 16) % 1_000_000 / 1_000_000
    if x < test_fraction:
        return "test"
    return "val" if x < test_fraction + val_fraction else "train"


def normalize_splits(splits: dict[str, Split], normalize: bool) -> dict[str, Any] | None:
    """Global per-feature mean/std from TRAIN frames, applied to every split in place."""
    if not normalize:
        return None
    frames = torch.cat(splits["train"].inputs, 0).double()
    mean = frames.mean(0)
    std = frames.std(0).clamp_min(1e-5)
    for split in splits.values():
        split.inputs = [((x.double() - mean) / std).float() for x in split.inputs]
    return {
        "type": "global_meanvar",
        "computed_on": "train",
        "applied": True,
        "mean": [round(v, 6) for v in mean.tolist()],
        "std": [round(v, 6) for v in std.tolist()],
    }


def _nonempty(splits: dict[str, Split], where: str) -> None:
    empty = [k for k in SPLIT_NAMES if len(splits[k]) == 0]
    if empty:
        sizes = {k: len(splits[k]) for k in SPLIT_NAMES}
        raise DataError(
            f"{where}: split(s) {empty} are empty (sizes {sizes}); add data or speakers, "
            "or change val/test fractions"
        )


# --------------------------------------------------------------------------- synthesis
def _speakers(voices: Sequence[str], variants: Sequence[str] | None) -> list[Voice]:
    if not voices:
        raise DataError(
            f"voices=[] is empty; valid: espeak voices such as {', '.join(ENGLISH_VOICES)}"
        )
    return [Voice(v, var) for v in voices for var in (variants or [None])]


def _synthesize_per_voice(
    speakers: Sequence[Voice], jobs: Sequence[Sequence[Job]], workers: int | None
) -> list[list[np.ndarray]]:
    """One fresh espeak-ng process per voice (all its variants): reproducible, and a worker's
    ~0.3 s start-up is paid 8 times instead of once per speaker. Returns audio per speaker."""
    groups: dict[str, list[int]] = {}
    for i, spk in enumerate(speakers):
        groups.setdefault(spk.name, []).append(i)
    batches = [[job for i in idx for job in jobs[i]] for idx in groups.values()]
    out: list[list[np.ndarray]] = [[] for _ in speakers]
    for idx, audios in zip(groups.values(), synthesize_batch(batches, workers)):
        pos = 0
        for i in idx:
            out[i] = audios[pos : pos + len(jobs[i])]
            pos += len(jobs[i])
    return out


def _colored_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """White-to-brown noise: a random spectral slope so the noise floor is not one colour."""
    n_fft = 1 << (n - 1).bit_length()  # a power of two: prime lengths make the FFT crawl
    spectrum = np.fft.rfft(rng.standard_normal(n_fft))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    spectrum /= f ** (rng.uniform(0.0, 2.0) / 2)
    noise = np.fft.irfft(spectrum, n_fft)[:n]
    return (noise / (noise.std() + 1e-12)).astype(np.float32)


def _render(
    rng: np.random.Generator,
    speech: np.ndarray,
    length: int | None,
    pad_s: tuple[float, float],
    snr_db: Sequence[float],
    gain_db: Sequence[float],
    sample_rate: int,
) -> np.ndarray:
    """Place speech (random shift or padding), apply gain and add noise at a random SNR."""
    speech = speech.astype(np.float32)
    if length is None:  # variable length: random leading/trailing silence
        lead, trail = (int(rng.uniform(*pad_s) * sample_rate) for _ in range(2))
        wave = np.concatenate([np.zeros(lead, np.float32), speech, np.zeros(trail, np.float32)])
    else:
        slack = max(0, length - len(speech))
        wave = fix_length(speech, length, int(rng.integers(0, slack + 1)))
    power = float(np.mean(speech**2)) + 1e-12
    snr = rng.uniform(*snr_db)
    noise = _colored_noise(rng, len(wave)) * math.sqrt(power / 10 ** (snr / 10))
    wave = wave + noise
    peak = float(np.abs(wave).max()) + 1e-12
    wave *= 10 ** (rng.uniform(*gain_db) / 20) * 0.9 / peak
    return wave


def _synth_common(
    kind: str,
    voices: Sequence[str],
    variants: Sequence[str] | None,
    rates: Sequence[int],
    pitches: Sequence[int],
    snr_db: Sequence[float],
    gain_db: Sequence[float],
    val_fraction: float,
    test_fraction: float,
    val_speakers: Sequence[str] | None,
    test_speakers: Sequence[str] | None,
    seed: int,
) -> tuple[list[Voice], dict[str, list[str]]]:
    if not rates or not pitches:
        raise DataError(
            f"{kind}: rates={list(rates)!r} and pitches={list(pitches)!r} must be non-empty"
        )
    for name, rng_ in (("snr_db", snr_db), ("gain_db", gain_db)):
        if len(rng_) != 2 or rng_[0] > rng_[1]:
            raise DataError(f"{kind}: {name}={list(rng_)!r} must be [low, high] with low <= high")
    speakers = _speakers(voices, variants)
    # Validate voices/rates/pitches up front (a clear error before minutes of work).
    for spk in speakers:
        synthesize("a", spk, rates[0], pitches[0])
    for r in rates:
        synthesize("a", speakers[0], r, pitches[0])
    for p in pitches:
        synthesize("a", speakers[0], rates[0], p)
    assignment = split_speakers(
        [s.spec for s in speakers], val_fraction, test_fraction, seed, val_speakers, test_speakers
    )
    return speakers, assignment


def _synth_meta(
    task: str,
    labels: Sequence[str],
    fp: FeatureParams,
    assignment: dict,
    skipped: Counter,
    normalization: dict | None,
    source: dict,
) -> dict[str, Any]:
    return {
        "task": task,
        "input_kind": "features",
        "input_dim": fp.dim,
        "labels": list(labels),
        "features": fp.as_meta(),
        "normalization": normalization,
        "speakers": {k: assignment[k] for k in SPLIT_NAMES},
        "speaker_definition": "espeak-ng voice+variant",
        "skipped": dict(sorted(skipped.items())),
        "source": source,
    }


@_one_thread
def build_speech_commands_synth(
    out_dir: str | Path | None = None,
    raw_dir: str | Path | None = None,
    words: Sequence[str] = CORE_WORDS,
    voices: Sequence[str] = ENGLISH_VOICES,
    variants: Sequence[str] | None = DEFAULT_VARIANTS,
    rates: Sequence[int] = (130, 175, 220),
    pitches: Sequence[int] = (35, 65),
    repeats: int = 1,
    rate_jitter: int = 10,
    pitch_jitter: int = 5,
    clip_seconds: float = 1.0,
    snr_db: Sequence[float] = (5.0, 30.0),
    gain_db: Sequence[float] = (-12.0, 0.0),
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    val_speakers: Sequence[str] | None = None,
    test_speakers: Sequence[str] | None = None,
    seed: int = 0,
    features: dict[str, Any] | None = None,
    normalize: bool = True,
    workers: int | None = None,
) -> tuple[dict[str, Split], dict[str, Any]]:
    """Keyword spotting on synthesized Speech Commands words, split by synthetic speaker.

    Every (speaker, word, rate, pitch, repeat) is one clip: espeak-ng speech (rate/pitch
    jittered a little so repeats differ), trimmed, resampled to 16 kHz, placed at a random
    offset in a ``clip_seconds`` window, scaled by a random gain and mixed with coloured
    noise at a random SNR. Each clip draws from its own ``numpy`` generator seeded with
    ``(seed, clip index)`` and each voice is synthesized in a fresh espeak-ng process
    (``workers`` at a time), so the result is identical across runs.
    ``out_dir``/``raw_dir`` are accepted for the prepare stage and unused (nothing to cache).
    """
    fp = FeatureParams(**(features or {}))
    _check_words("speech_commands_synth", words)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise DataError(f"speech_commands_synth: repeats={repeats!r} must be an integer >= 1")
    if not clip_seconds > 0:
        raise DataError(f"speech_commands_synth: clip_seconds={clip_seconds!r} must be > 0")
    speakers, assignment = _synth_common(
        "speech_commands_synth",
        voices,
        variants,
        rates,
        pitches,
        snr_db,
        gain_db,
        val_fraction,
        test_fraction,
        val_speakers,
        test_speakers,
        seed,
    )
    split_of = {s: k for k, ss in assignment.items() for s in ss}
    length = round(clip_seconds * fp.sample_rate)
    extractor = FeatureExtractor(fp)
    waves: dict[str, list[np.ndarray]] = {k: [] for k in SPLIT_NAMES}
    targets: dict[str, list[int]] = {k: [] for k in SPLIT_NAMES}
    skipped: Counter = Counter()
    # Plan every clip first (its own generator seeded with (seed, index)), synthesize one
    # fresh worker process per speaker (reproducible, parallel), then render.
    plans: list[list[tuple[int, np.random.Generator]]] = []
    jobs: list[list[tuple[str, str, int, int]]] = []
    index = 0
    for spk in speakers:
        plans.append([])
        jobs.append([])
        for label, word in enumerate(words):
            for rate in rates:
                for pitch in pitches:
                    for _ in range(repeats):
                        rng = np.random.default_rng([seed, index])
                        index += 1
                        r = int(
                            np.clip(rate + rng.integers(-rate_jitter, rate_jitter + 1), 80, 450)
                        )
                        p = int(
                            np.clip(pitch + rng.integers(-pitch_jitter, pitch_jitter + 1), 0, 99)
                        )
                        plans[-1].append((label, rng))
                        jobs[-1].append((word, spk.spec, r, p))
    for spk, plan, audios in zip(speakers, plans, _synthesize_per_voice(speakers, jobs, workers)):
        for (label, rng), raw in zip(plan, audios):
            audio = trim_silence(raw)
            if audio.size == 0:
                skipped["empty_synthesis"] += 1
                continue
            speech = resample(
                torch.from_numpy(audio.astype(np.float32) / 32768.0), SYNTH_RATE, fp.sample_rate
            ).numpy()
            wave = _render(rng, speech, length, (0, 0), snr_db, gain_db, fp.sample_rate)
            waves[split_of[spk.spec]].append(wave)
            targets[split_of[spk.spec]].append(label)
    splits = {}
    for k in SPLIT_NAMES:
        feats: list[torch.Tensor] = []
        for i in range(0, len(waves[k]), 256):  # batched STFT: fixed-length clips
            feats.extend(extractor(torch.from_numpy(np.stack(waves[k][i : i + 256]))).unbind(0))
        splits[k] = Split([f.clone() for f in feats], targets[k])
    _nonempty(splits, "speech_commands_synth")
    normalization = normalize_splits(splits, normalize)
    source = {
        "synthesizer": "espeak-ng (espeakng_loader)",
        "voices": list(voices),
        "variants": list(variants or []),
        "rates": list(rates),
        "pitches": list(pitches),
        "repeats": repeats,
        "rate_jitter": rate_jitter,
        "pitch_jitter": pitch_jitter,
        "clip_seconds": clip_seconds,
        "snr_db": list(snr_db),
        "gain_db": list(gain_db),
        "seed": seed,
    }
    return splits, _synth_meta(
        "classification", words, fp, assignment, skipped, normalization, source
    )


@_one_thread
def build_speech_digits_synth(
    out_dir: str | Path | None = None,
    raw_dir: str | Path | None = None,
    voices: Sequence[str] = ENGLISH_VOICES,
    variants: Sequence[str] | None = DEFAULT_VARIANTS,
    rates: Sequence[int] = (130, 175, 220),
    pitches: Sequence[int] = (35, 50, 65),
    utterances_per_speaker: int = 30,
    min_digits: int = 3,
    max_digits: int = 7,
    pad_seconds: Sequence[float] = (0.05, 0.3),
    snr_db: Sequence[float] = (5.0, 30.0),
    gain_db: Sequence[float] = (-12.0, 0.0),
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    val_speakers: Sequence[str] | None = None,
    test_speakers: Sequence[str] | None = None,
    seed: int = 0,
    features: dict[str, Any] | None = None,
    normalize: bool = True,
    workers: int | None = None,
) -> tuple[dict[str, Split], dict[str, Any]]:
    """Connected-digit recognition (CTC): random 3–7 digit strings, split by synthetic speaker.

    Targets are label-id lists over ``labels = ["zero", ..., "nine"]`` (the CTC blank is
    the model's business). Utterances keep their natural length plus random silence.
    """
    fp = FeatureParams(**(features or {}))
    if not 1 <= min_digits <= max_digits:
        raise DataError(
            f"speech_digits_synth: min_digits={min_digits!r}, max_digits={max_digits!r}: "
            "need 1 <= min_digits <= max_digits"
        )
    if (
        isinstance(utterances_per_speaker, bool)
        or not isinstance(utterances_per_speaker, int)
        or utterances_per_speaker < 1
    ):
        raise DataError(
            f"speech_digits_synth: utterances_per_speaker={utterances_per_speaker!r} "
            "must be an integer >= 1"
        )
    if len(pad_seconds) != 2 or not 0 <= pad_seconds[0] <= pad_seconds[1]:
        raise DataError(
            f"speech_digits_synth: pad_seconds={list(pad_seconds)!r} must be [low, high], "
            "0 <= low <= high"
        )
    speakers, assignment = _synth_common(
        "speech_digits_synth",
        voices,
        variants,
        rates,
        pitches,
        snr_db,
        gain_db,
        val_fraction,
        test_fraction,
        val_speakers,
        test_speakers,
        seed,
    )
    split_of = {s: k for k, ss in assignment.items() for s in ss}
    extractor = FeatureExtractor(fp)
    splits = {k: Split([], []) for k in SPLIT_NAMES}
    skipped: Counter = Counter()
    plans: list[list[tuple[list[int], np.random.Generator]]] = []
    jobs: list[list[tuple[str, str, int, int]]] = []
    for si, spk in enumerate(speakers):
        plans.append([])
        jobs.append([])
        for u in range(utterances_per_speaker):
            rng = np.random.default_rng([seed, si, u])
            digits = rng.integers(0, 10, int(rng.integers(min_digits, max_digits + 1))).tolist()
            rate, pitch = int(rng.choice(rates)), int(rng.choice(pitches))
            plans[-1].append((digits, rng))
            jobs[-1].append((" ".join(DIGITS[d] for d in digits), spk.spec, rate, pitch))
    for spk, plan, audios in zip(speakers, plans, _synthesize_per_voice(speakers, jobs, workers)):
        for (digits, rng), raw in zip(plan, audios):
            audio = trim_silence(raw)
            if audio.size == 0:
                skipped["empty_synthesis"] += 1
                continue
            speech = resample(
                torch.from_numpy(audio.astype(np.float32) / 32768.0), SYNTH_RATE, fp.sample_rate
            ).numpy()
            wave = _render(rng, speech, None, tuple(pad_seconds), snr_db, gain_db, fp.sample_rate)
            split = splits[split_of[spk.spec]]
            split.inputs.append(extractor(torch.from_numpy(wave)))
            split.targets.append(digits)
    _nonempty(splits, "speech_digits_synth")
    normalization = normalize_splits(splits, normalize)
    source = {
        "synthesizer": "espeak-ng (espeakng_loader)",
        "voices": list(voices),
        "variants": list(variants or []),
        "rates": list(rates),
        "pitches": list(pitches),
        "utterances_per_speaker": utterances_per_speaker,
        "min_digits": min_digits,
        "max_digits": max_digits,
        "pad_seconds": list(pad_seconds),
        "snr_db": list(snr_db),
        "gain_db": list(gain_db),
        "seed": seed,
    }
    return splits, _synth_meta("ctc", DIGITS, fp, assignment, skipped, normalization, source)


# --------------------------------------------------------------------------- real audio
class BadAudio(Exception):
    """An audio file that cannot be used; ``reason`` is the key counted in meta["skipped"]."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def read_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Read any soundfile-supported file as mono float32 at ``sample_rate``; raise BadAudio."""
    if not path.is_file():
        raise BadAudio("missing", "file not found")
    if path.stat().st_size == 0:
        raise BadAudio("empty", "file is empty (0 bytes)")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile raises LibsndfileError/RuntimeError for corrupt data
        raise BadAudio("unreadable", f"cannot decode audio ({e})") from e
    if data.shape[0] == 0:
        raise BadAudio("empty", "no audio frames")
    if not np.isfinite(data).all():
        raise BadAudio("non_finite", "audio contains NaN or infinite samples")
    mono = data.mean(axis=1)
    return resample(torch.from_numpy(np.ascontiguousarray(mono)), int(sr), sample_rate).numpy()


@dataclass
class _Item:
    path: Path
    label: str
    speaker: str | None = None
    split: str | None = None
    where: str = ""  # for error messages: "manifest.csv line 7" or the path


def _scan_folder(
    root: Path, extensions: Sequence[str], labels: Sequence[str] | None
) -> list[_Item]:
    if not root.is_dir():
        raise DataError(
            f"audio_folder.root={str(root)!r} is not a directory; expected <root>/<label>/*.wav"
        )
    dirs = sorted(d for d in root.iterdir() if d.is_dir())
    if labels is None:  # `_background_noise_` and hidden dirs are not classes
        dirs = [d for d in dirs if not d.name.startswith(("_", "."))]
    else:
        missing = sorted(set(labels) - {d.name for d in dirs})
        if missing:
            raise DataError(
                f"{root}: label folder(s) {missing} not found; present: "
                f"{', '.join(d.name for d in dirs)}"
            )
        dirs = [d for d in dirs if d.name in set(labels)]
    exts = {e.lower() for e in extensions}
    items = [
        _Item(p, d.name, where=str(p))
        for d in dirs
        for p in sorted(d.iterdir())
        if p.is_file() and p.suffix.lower() in exts
    ]
    if not items:
        raise DataError(
            f"{root}: no audio files ({', '.join(sorted(exts))}) in <root>/<label>/ folders"
        )
    return items


def _read_manifest(manifest: Path) -> list[_Item]:
    if not manifest.is_file():
        raise DataError(f"audio_folder.manifest={str(manifest)!r} not found")
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise DataError(
            f"{manifest}: empty manifest; expected a header path,label[,speaker][,split]"
        )
    header = [h.strip().lower() for h in rows[0]]
    if "path" not in header or "label" not in header:
        raise DataError(
            f"{manifest}: header {rows[0]} must contain 'path' and 'label' "
            "(optional: 'speaker', 'split')"
        )
    col = {h: i for i, h in enumerate(header)}
    items = []
    for n, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise DataError(f"{manifest} line {n}: {len(row)} fields, header has {len(header)}")
        cells = {h: (row[i].strip() or None) for h, i in col.items()}
        path = Path(cells["path"] or "")
        split = cells.get("split")
        if split is not None and split not in SPLIT_NAMES:
            raise DataError(
                f"{manifest} line {n}: split={split!r}; valid: {', '.join(SPLIT_NAMES)}"
            )
        if not cells["label"]:
            raise DataError(f"{manifest} line {n}: empty label")
        if not cells["path"]:
            raise DataError(f"{manifest} line {n}: empty path")
        items.append(
            _Item(
                path if path.is_absolute() else manifest.parent / path,
                cells["label"],
                cells.get("speaker"),
                split,
                f"{manifest} line {n} ({path})",
            )
        )
    return items


def _featurize_items(
    items: Sequence[_Item],
    fp: FeatureParams,
    clip_seconds: float | None,
    on_bad_input: str,
    skipped: Counter,
) -> list[tuple[_Item, torch.Tensor]]:
    """Features of every usable item; bad files are skipped (counted) or raise DataError."""
    extractor = FeatureExtractor(fp)
    length = None if clip_seconds is None else round(clip_seconds * fp.sample_rate)
    out = []
    for item in items:
        try:
            wave = read_audio(item.path, fp.sample_rate)
            if length is not None:
                wave = fix_length(wave, length)
            if len(wave) < fp.win_length:
                raise BadAudio("too_short", f"{len(wave)} samples < one {fp.win_ms} ms window")
        except BadAudio as e:
            if on_bad_input == "error":
                raise DataError(
                    f"{item.where}: {e.reason}: {e} (set on_bad_input=skip to skip such files)"
                ) from e
            log.warning("skipping %s: %s (%s)", item.where, e.reason, e)
            skipped[e.reason] += 1
            continue
        out.append((item, extractor(torch.from_numpy(np.ascontiguousarray(wave)))))
    return out


def _group(pairs: Sequence[tuple[_Item, torch.Tensor]], labels: Sequence[str]) -> dict[str, Split]:
    label_id = {name: i for i, name in enumerate(labels)}
    splits = {k: Split([], []) for k in SPLIT_NAMES}
    for item, feats in pairs:
        splits[item.split].inputs.append(feats)
        splits[item.split].targets.append(label_id[item.label])
    return splits


def _assign_splits(
    items: list[_Item],
    speaker_pattern: str | None,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    on_bad_input: str,
    skipped: Counter,
    where: str,
) -> tuple[list[_Item], dict[str, list[str]] | None]:
    """Fill item.split: given, else speaker-disjoint (if speakers are known), else by hash."""
    if speaker_pattern:
        try:
            regex = re.compile(speaker_pattern)
        except re.error as e:
            raise DataError(
                f"{where}: speaker_pattern={speaker_pattern!r} is not a valid regex ({e})"
            ) from e
        kept = []
        for item in items:
            if item.speaker is None:
                m = regex.search(item.path.name)
                if not m:
                    if on_bad_input == "error":
                        raise DataError(
                            f"{item.where}: file name does not match "
                            f"speaker_pattern={speaker_pattern!r}"
                        )
                    skipped["no_speaker_match"] += 1
                    continue
                item.speaker = m.groupdict().get("speaker") or (
                    m.group(1) if regex.groups else m.group(0)
                )
            kept.append(item)
        items = kept
    with_speaker = [it for it in items if it.speaker is not None]
    if with_speaker and len(with_speaker) != len(items):
        missing = next(it for it in items if it.speaker is None)
        raise DataError(
            f"{missing.where}: no speaker, but other entries have one; give every "
            "entry a speaker or none"
        )
    speakers: dict[str, list[str]] | None = None
    if with_speaker:
        unsplit = sorted({it.speaker for it in items if it.split is None})
        given = {it.speaker: it.split for it in items if it.split is not None}
        mixed = sorted(set(unsplit) & set(given))
        if mixed:
            raise DataError(
                f"{where}: speaker(s) {mixed[:5]} have entries with and without a split"
            )
        if unsplit:
            assignment = split_speakers(unsplit, val_fraction, test_fraction, seed)
            split_of = {s: k for k, ss in assignment.items() for s in ss}
            for it in items:
                if it.split is None:
                    it.split = split_of[it.speaker]
        speakers = {k: sorted({it.speaker for it in items if it.split == k}) for k in SPLIT_NAMES}
        shared = {
            (a, b): sorted(set(speakers[a]) & set(speakers[b]))
            for a, b in (("train", "val"), ("train", "test"), ("val", "test"))
        }
        leaks = {f"{a}/{b}": s[:5] for (a, b), s in shared.items() if s}
        if leaks:
            log.warning("%s: the given splits share speakers %s", where, leaks)
    else:
        _check_fractions(val_fraction, test_fraction)
        for it in items:
            if it.split is None:
                it.split = _hash_split(f"{it.label}/{it.path.name}", val_fraction, test_fraction)
    return items, speakers


@_one_thread
def build_audio_folder(
    out_dir: str | Path | None = None,
    raw_dir: str | Path | None = None,
    root: str | Path | None = None,
    manifest: str | Path | None = None,
    labels: Sequence[str] | None = None,
    speaker_pattern: str | None = None,
    extensions: Sequence[str] = AUDIO_EXTENSIONS,
    clip_seconds: float | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    on_bad_input: str = "skip",
    features: dict[str, Any] | None = None,
    normalize: bool = True,
) -> tuple[dict[str, Split], dict[str, Any]]:
    """Bring your own audio: ``<root>/<label>/*.wav`` or a manifest CSV.

    Manifest columns: ``path,label[,speaker][,split]``; relative paths are resolved against
    the manifest's directory. Any rate, mono or stereo (mixed to mono, resampled). Splits
    are speaker-disjoint when speakers are known (manifest column or ``speaker_pattern``,
    a regex on the file name whose group 1 or ``(?P<speaker>...)`` is the speaker, e.g.
    ``^([0-9a-f]+)_nohash_`` for Speech Commands), else a stable hash of label/file name.
    Bad files are skipped and counted in ``meta["skipped"]`` by reason
    (``on_bad_input=skip``) or raise a DataError naming the file (``error``).
    """
    _check_choice("audio_folder.on_bad_input", on_bad_input, BAD_INPUT_MODES)
    if (root is None) == (manifest is None):
        raise DataError(
            f"audio_folder: give exactly one of root= (<root>/<label>/*.wav) or "
            f"manifest= (CSV path,label[,speaker][,split]); got root={root!r}, "
            f"manifest={manifest!r}"
        )
    fp = FeatureParams(**(features or {}))
    where = str(manifest or root)
    items = (
        _scan_folder(Path(root), extensions, labels)
        if root is not None
        else _read_manifest(Path(manifest))
    )
    skipped: Counter = Counter()
    if labels is not None and manifest is not None:
        unknown = sorted({it.label for it in items} - set(labels))
        if unknown:
            if on_bad_input == "error":
                raise DataError(f"{where}: label(s) {unknown} not in labels={list(labels)}")
            skipped["unlisted_label"] += sum(it.label not in set(labels) for it in items)
            items = [it for it in items if it.label in set(labels)]
    label_list = list(labels) if labels is not None else sorted({it.label for it in items})
    # Read first, split after: a speaker whose files are all unreadable must not take a slot.
    pairs = _featurize_items(items, fp, clip_seconds, on_bad_input, skipped)
    items, speakers = _assign_splits(
        [it for it, _ in pairs],
        speaker_pattern,
        val_fraction,
        test_fraction,
        seed,
        on_bad_input,
        skipped,
        where,
    )
    kept = {id(it) for it in items}
    splits = _group([(it, x) for it, x in pairs if id(it) in kept], label_list)
    _nonempty(splits, where)
    normalization = normalize_splits(splits, normalize)
    return splits, {
        "task": "classification",
        "input_kind": "features",
        "input_dim": fp.dim,
        "labels": label_list,
        "features": fp.as_meta(),
        "normalization": normalization,
        "speakers": speakers,
        "speaker_definition": "manifest/speaker_pattern" if speakers else None,
        "split_method": "speaker" if speakers else "hash",
        "skipped": dict(sorted(skipped.items())),
        "source": {
            "root": str(root) if root else None,
            "manifest": str(manifest) if manifest else None,
            "clip_seconds": clip_seconds,
        },
    }


@_one_thread
def build_speech_commands(
    out_dir: str | Path | None = None,
    raw_dir: str | Path = "data/raw",
    url: str = SPEECH_COMMANDS_URL,
    sha256: str | None = None,
    words: Sequence[str] = CORE_WORDS,
    include_unknown: bool = False,
    include_silence: bool = False,
    silence_fraction: float = 0.1,
    unknown_fraction: float = 0.1,
    clip_seconds: float = 1.0,
    seed: int = 0,
    on_bad_input: str = "skip",
    features: dict[str, Any] | None = None,
    normalize: bool = True,
) -> tuple[dict[str, Split], dict[str, Any]]:
    """Google Speech Commands v2 (Warden 2018), with the archive's official splits.

    Downloads (cached in ``raw_dir``) and extracts the archive, then keeps ``words``; files
    named in ``validation_list.txt``/``testing_list.txt`` go to val/test, the rest to train
    (the lists are speaker-disjoint by construction). Optional classes: ``_unknown_`` (other
    words, ``unknown_fraction`` of each split's size, drawn deterministically) and
    ``_silence_`` (1 s slices of ``_background_noise_``, ``silence_fraction`` of each split).
    """
    from rnnlab.data.download import fetch, safe_extract

    _check_choice("speech_commands.on_bad_input", on_bad_input, BAD_INPUT_MODES)
    _check_words("speech_commands", words)
    fp = FeatureParams(**(features or {}))
    raw = Path(raw_dir)
    archive = fetch(url, sha256, raw / Path(url.split("?")[0]).name)
    target = raw / "speech_commands_v0.02"
    marker = target / ".extracted"
    stat = archive.stat()
    stamp = f"{archive.name} {stat.st_size} {stat.st_mtime_ns}"  # re-extract a changed archive
    if not marker.is_file() or marker.read_text().strip() != stamp:
        safe_extract(archive, target)
        marker.write_text(stamp)
    # The official archive has no top-level folder; tolerate one (a re-packed archive).
    candidates = [target, *sorted(d for d in target.iterdir() if d.is_dir())]
    root = next((d for d in candidates if (d / "testing_list.txt").is_file()), None)
    if root is None or not (root / "validation_list.txt").is_file():
        raise DataError(
            f"{archive}: no testing_list.txt/validation_list.txt found after extraction; "
            "is this the Speech Commands archive?"
        )
    listed = {}
    for split, name in (("val", "validation_list.txt"), ("test", "testing_list.txt")):
        for line in (root / name).read_text().splitlines():
            if line.strip():
                listed[line.strip().replace("\\", "/")] = split
    word_dirs = sorted(
        d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(("_", "."))
    )
    missing = sorted(set(words) - set(word_dirs))
    if missing:
        raise DataError(
            f"{root}: word folder(s) {missing} not in the archive; present: {', '.join(word_dirs)}"
        )
    labels = (
        list(words)
        + (["_unknown_"] if include_unknown else [])
        + (["_silence_"] if include_silence else [])
    )
    items: list[_Item] = []
    unknown: list[_Item] = []
    for d in word_dirs:
        if d not in words and not include_unknown:
            continue
        for p in sorted((root / d).glob("*.wav")):
            rel = f"{d}/{p.name}"
            m = re.match(r"^([0-9a-fA-F]+)_nohash_", p.name)
            item = _Item(
                p,
                d if d in words else "_unknown_",
                m.group(1) if m else None,
                listed.get(rel, "train"),
                str(p),
            )
            (items if d in words else unknown).append(item)
    if include_unknown:
        rng = np.random.default_rng(seed)
        for split in SPLIT_NAMES:
            pool = [it for it in unknown if it.split == split]
            n = min(len(pool), round(unknown_fraction * sum(it.split == split for it in items)))
            items += [pool[i] for i in sorted(rng.choice(len(pool), n, replace=False))]
    skipped: Counter = Counter()
    pairs = _featurize_items(items, fp, clip_seconds, on_bad_input, skipped)
    items = [it for it, _ in pairs]
    splits = _group(pairs, labels)
    if include_silence:
        _add_silence(
            root, splits, labels.index("_silence_"), fp, clip_seconds, silence_fraction, seed
        )
    _nonempty(splits, str(root))
    normalization = normalize_splits(splits, normalize)
    speakers = {
        k: sorted({it.speaker for it in items if it.split == k and it.speaker}) for k in SPLIT_NAMES
    }
    return splits, {
        "task": "classification",
        "input_kind": "features",
        "input_dim": fp.dim,
        "labels": labels,
        "features": fp.as_meta(),
        "normalization": normalization,
        "speakers": speakers,
        "speaker_definition": "Speech Commands speaker hash (<speaker>_nohash_<n>.wav)",
        "split_method": "official validation_list.txt/testing_list.txt",
        "skipped": dict(sorted(skipped.items())),
        "source": {
            "url": url,
            "sha256": sha256,
            "archive": archive.name,
            "clip_seconds": clip_seconds,
        },
    }


def _add_silence(
    root: Path,
    splits: dict[str, Split],
    label: int,
    fp: FeatureParams,
    clip_seconds: float,
    fraction: float,
    seed: int,
) -> None:
    """Append ``_silence_`` clips cut at seeded offsets from the background-noise recordings."""
    noise_files = sorted((root / "_background_noise_").glob("*.wav"))
    if not noise_files:
        raise DataError(
            f"{root}/_background_noise_: no .wav files; needed for include_silence=true"
        )
    noises = [read_audio(p, fp.sample_rate) for p in noise_files]
    length = round(clip_seconds * fp.sample_rate)
    extractor = FeatureExtractor(fp)
    rng = np.random.default_rng([seed, 1])
    for split in SPLIT_NAMES:
        for _ in range(round(fraction * len(splits[split]))):
            noise = noises[int(rng.integers(len(noises)))]
            start = int(rng.integers(0, max(1, len(noise) - length)))
            clip = fix_length(noise[start : start + length], length) * rng.uniform(0, 1)
            splits[split].inputs.append(extractor(torch.from_numpy(clip.astype(np.float32))))
            splits[split].targets.append(label)
