"""The embedded speech datasets: words and digit strings spoken by espeak-ng voices.

A *speaker* is an espeak-ng voice plus a variant (``en-us+f2``); whole speakers go to
train, val or test (:func:`rnnlab.data.splits.split_groups`), so val/test voices are
never heard in training. Both datasets are made the same way (:func:`_build`):

1. **Plan** every clip: its target, its text, voice, rate and pitch, and a ``numpy``
   generator of its own (seeded from ``seed`` and the clip's position alone).
2. **Synthesize** each voice's clips in one fresh espeak-ng process (``workers`` at a
   time; :func:`rnnlab.data.speech.espeak.synthesize_per_voice`), so a clip's audio never
   depends on what ran before it.
3. **Render**: trim silence, resample 22.05 -> 16 kHz, place the speech in its window,
   add coloured noise at a random SNR, scale to a random gain
   (:mod:`rnnlab.data.speech.render`).
4. **Featurise** (:mod:`rnnlab.data.speech.features`) and normalise with train statistics.

The two public builders differ only in what a clip says and how it is labelled:
:func:`build_speech_commands_synth` (one word per 1 s clip, ``classification``) and
:func:`build_speech_digits_synth` (3-7 digit strings of natural length, ``ctc``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnlab.data.bad_input import BadInput
from rnnlab.data.format import Split
from rnnlab.data.speech.espeak import (
    ENGLISH_VOICES,
    PITCH_RANGE,
    RATE_RANGE,
    Job,
    Voice,
    synthesize,
    synthesize_per_voice,
    trim_silence,
)
from rnnlab.data.speech.espeak import SAMPLE_RATE as SYNTH_RATE
from rnnlab.data.speech.features import (
    FeatureExtractor,
    FeatureParams,
    resample,
    single_thread,
    speech_meta,
)
from rnnlab.data.speech.labels import CORE_WORDS, DIGITS, check_words
from rnnlab.data.speech.render import Render, render
from rnnlab.data.splits import SPLITS, require_nonempty, split_groups
from rnnlab.errors import DataError

# Five male and four female variants: a spread of formant/pitch settings that still
# sounds like speech (the whisper/robot/croak variants in espeak-ng-data are left out).
DEFAULT_VARIANTS = ("m1", "m2", "m3", "m4", "m6", "m7", "f1", "f2", "f3", "f4")
FEATURE_BATCH = 256  # fixed-length clips are featurised this many at a time


@dataclass
class _Clip:
    """One planned utterance: its target, its own generator and the espeak job."""

    target: int | list[int]
    rng: np.random.Generator
    job: Job


# --------------------------------------------------------------------------- voices
def _speakers(voices: Sequence[str], variants: Sequence[str] | None) -> list[Voice]:
    if not voices:
        raise DataError(
            f"voices=[] is empty; valid: espeak voices such as {', '.join(ENGLISH_VOICES)}"
        )
    return [Voice(v, var) for v in voices for var in (variants or [None])]


def _voices_and_splits(
    name: str,
    voices: Sequence[str],
    variants: Sequence[str] | None,
    rates: Sequence[int],
    pitches: Sequence[int],
    snr_db: Sequence[float],
    gain_db: Sequence[float],
    split: tuple,
) -> tuple[list[Voice], dict[str, list[str]]]:
    """Validate the synthesis settings (a clear error before minutes of work) and assign
    whole speakers to splits. ``split``: (val_fraction, test_fraction, seed, val_speakers,
    test_speakers), as :func:`~rnnlab.data.splits.split_groups` takes them."""
    if not rates or not pitches:
        raise DataError(
            f"{name}: rates={list(rates)!r} and pitches={list(pitches)!r} must be non-empty"
        )
    for key, bounds in (("snr_db", snr_db), ("gain_db", gain_db)):
        if len(bounds) != 2 or bounds[0] > bounds[1]:
            raise DataError(f"{name}: {key}={list(bounds)!r} must be [low, high] with low <= high")
    speakers = _speakers(voices, variants)
    for spk in speakers:
        synthesize("a", spk, rates[0], pitches[0])
    for r in rates:
        synthesize("a", speakers[0], r, pitches[0])
    for p in pitches:
        synthesize("a", speakers[0], rates[0], p)
    assignment = split_groups([s.spec for s in speakers], *split, kind="speaker")
    return speakers, {k: assignment[k] for k in SPLITS}


class _Features:
    """Features per split, in arrival order. Fixed-length clips go through the extractor
    :data:`FEATURE_BATCH` at a time (one batched STFT); others one by one. Batches are
    the consecutive clips of one split, as they always were: part of the numeric path
    that keeps the embedded datasets' processed files byte-identical."""

    def __init__(self, extractor: FeatureExtractor, batched: bool) -> None:
        self.extractor, self.batched = extractor, batched
        self.splits = {k: Split([], []) for k in SPLITS}
        self._pending: dict[str, list[np.ndarray]] = {k: [] for k in SPLITS}

    def add(self, split: str, wave: np.ndarray, target: int | list[int]) -> None:
        self.splits[split].targets.append(target)
        if not self.batched:
            self.splits[split].inputs.append(self.extractor(torch.from_numpy(wave)))
            return
        self._pending[split].append(wave)
        if len(self._pending[split]) == FEATURE_BATCH:
            self._flush(split)

    def _flush(self, split: str) -> None:
        if self._pending[split]:
            batch = self.extractor(torch.from_numpy(np.stack(self._pending[split])))
            self.splits[split].inputs.extend(f.clone() for f in batch.unbind(0))
            self._pending[split] = []

    def done(self) -> dict[str, Split]:
        for split in SPLITS:
            self._flush(split)
        return self.splits


# --------------------------------------------------------------------------- one builder
def _build(
    name: str,
    task: str,
    labels: Sequence[str],
    fp: FeatureParams,
    how: Render,
    *,
    voice: tuple[Sequence[str], Sequence[str] | None, Sequence[int], Sequence[int]],
    split: tuple,
    plan: Callable[[list[Voice]], list[list[_Clip]]],
    source: dict[str, Any],
    normalize: bool,
    workers: int | None,
) -> tuple[dict[str, Split], dict[str, Any]]:
    """The one synthetic-dataset builder: voices and speaker splits, ``plan(speakers)``
    (each speaker's clips), synthesis and rendering, features, meta.

    ``voice``: (voices, variants, rates, pitches); ``split``: (val_fraction,
    test_fraction, seed, val_speakers, test_speakers); ``source``: the dataset's own
    settings for ``meta["source"]``.
    """
    voices, variants, rates, pitches = voice
    speakers, assignment = _voices_and_splits(
        name, voices, variants, rates, pitches, how.snr_db, how.gain_db, split
    )
    splits, bad = _synthesize_clips(name, speakers, assignment, plan(speakers), how, fp, workers)
    require_nonempty(
        {k: len(v) for k, v in splits.items()}, name, "add voices or variants, or change fractions"
    )
    bad.log_summary()
    return splits, {
        **speech_meta(task, fp, labels, splits, normalize, assignment, "espeak-ng voice+variant"),
        "skipped": bad.counts,
        "source": {
            "synthesizer": "espeak-ng (espeakng_loader)",
            "voices": list(voices),
            "variants": list(variants or []),
            "rates": list(rates),
            "pitches": list(pitches),
            **source,
            "snr_db": list(how.snr_db),
            "gain_db": list(how.gain_db),
            "seed": split[2],
        },
    }


def _synthesize_clips(
    name: str,
    speakers: list[Voice],
    assignment: dict[str, list[str]],
    plans: list[list[_Clip]],
    how: Render,
    fp: FeatureParams,
    workers: int | None,
) -> tuple[dict[str, Split], BadInput]:
    """Synthesize, render and featurise the planned clips (``plans[i]``: speaker i's);
    an utterance that comes out silent is skipped and counted (``empty_synthesis``)."""
    split_of = {s: k for k, ss in assignment.items() for s in ss}
    bad = BadInput("skip", name)
    features = _Features(FeatureExtractor(fp), batched=how.length is not None)
    jobs = [[clip.job for clip in plan] for plan in plans]
    for spk, plan, audios in zip(speakers, plans, synthesize_per_voice(speakers, jobs, workers)):
        for clip, raw in zip(plan, audios):
            audio = trim_silence(raw)
            if audio.size == 0:
                bad("empty_synthesis", f"{name}: {spk.spec}", f"no audio for {clip.job[0]!r}")
                continue
            speech = resample(
                torch.from_numpy(audio.astype(np.float32) / 32768.0), SYNTH_RATE, fp.sample_rate
            ).numpy()
            wave = render(clip.rng, speech, how, fp.sample_rate)
            features.add(split_of[spk.spec], wave, clip.target)
    return features.done(), bad


def _positive_int(name: str, key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DataError(f"{name}: {key}={value!r} must be an integer >= 1")


# --------------------------------------------------------------------------- the datasets
def _plan_words(
    speakers: Sequence[Voice],
    words: Sequence[str],
    rates: Sequence[int],
    pitches: Sequence[int],
    repeats: int,
    jitter: tuple[int, int],
    seed: int,
) -> list[list[_Clip]]:
    """Every (speaker, word, rate, pitch, repeat), rate/pitch jittered by the clip's own
    generator ``default_rng([seed, clip index])``."""
    rate_jitter, pitch_jitter = jitter
    plans: list[list[_Clip]] = []
    index = 0
    for spk in speakers:
        plans.append([])
        for (label, word), rate, pitch, _ in itertools.product(
            enumerate(words), rates, pitches, range(repeats)
        ):
            rng = np.random.default_rng([seed, index])
            index += 1
            r = int(np.clip(rate + rng.integers(-rate_jitter, rate_jitter + 1), *RATE_RANGE))
            p = int(np.clip(pitch + rng.integers(-pitch_jitter, pitch_jitter + 1), *PITCH_RANGE))
            plans[-1].append(_Clip(label, rng, (word, spk.spec, r, p)))
    return plans


@single_thread()
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
    jittered a little so repeats differ), placed at a random offset in a ``clip_seconds``
    window (see the module docstring). Each clip draws from its own ``numpy`` generator
    seeded with ``(seed, clip index)`` and each voice is synthesized in a fresh espeak-ng
    process (``workers`` at a time), so the result is identical across runs.
    ``out_dir``/``raw_dir`` are accepted for the prepare stage and unused (nothing to cache).
    """
    name = "speech_commands_synth"
    fp = FeatureParams(**(features or {}))
    check_words(name, words)
    _positive_int(name, "repeats", repeats)
    if not clip_seconds > 0:
        raise DataError(f"{name}: clip_seconds={clip_seconds!r} must be > 0")
    how = Render(round(clip_seconds * fp.sample_rate), (0, 0), snr_db, gain_db)
    return _build(
        name,
        "classification",
        words,
        fp,
        how,
        voice=(voices, variants, rates, pitches),
        split=(val_fraction, test_fraction, seed, val_speakers, test_speakers),
        plan=lambda speakers: _plan_words(
            speakers, words, rates, pitches, repeats, (rate_jitter, pitch_jitter), seed
        ),
        source=dict(
            repeats=repeats,
            rate_jitter=rate_jitter,
            pitch_jitter=pitch_jitter,
            clip_seconds=clip_seconds,
        ),
        normalize=normalize,
        workers=workers,
    )


def _plan_digits(
    speakers: Sequence[Voice],
    rates: Sequence[int],
    pitches: Sequence[int],
    utterances: int,
    digit_range: tuple[int, int],
    seed: int,
) -> list[list[_Clip]]:
    """``utterances`` random digit strings per speaker, each from its own generator
    ``default_rng([seed, speaker index, utterance index])``: length, digits, rate, pitch."""
    low, high = digit_range
    plans: list[list[_Clip]] = []
    for si, spk in enumerate(speakers):
        plans.append([])
        for u in range(utterances):
            rng = np.random.default_rng([seed, si, u])
            digits = rng.integers(0, 10, int(rng.integers(low, high + 1))).tolist()
            rate, pitch = int(rng.choice(rates)), int(rng.choice(pitches))
            text = " ".join(DIGITS[d] for d in digits)
            plans[-1].append(_Clip(digits, rng, (text, spk.spec, rate, pitch)))
    return plans


@single_thread()
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
    the model's business). Utterances keep their natural length plus random silence of
    ``pad_seconds`` before and after.
    """
    name = "speech_digits_synth"
    fp = FeatureParams(**(features or {}))
    if not 1 <= min_digits <= max_digits:
        raise DataError(
            f"{name}: min_digits={min_digits!r}, max_digits={max_digits!r}: "
            "need 1 <= min_digits <= max_digits"
        )
    _positive_int(name, "utterances_per_speaker", utterances_per_speaker)
    if len(pad_seconds) != 2 or not 0 <= pad_seconds[0] <= pad_seconds[1]:
        raise DataError(
            f"{name}: pad_seconds={list(pad_seconds)!r} must be [low, high], 0 <= low <= high"
        )
    return _build(
        name,
        "ctc",
        DIGITS,
        fp,
        Render(None, tuple(pad_seconds), snr_db, gain_db),
        voice=(voices, variants, rates, pitches),
        split=(val_fraction, test_fraction, seed, val_speakers, test_speakers),
        plan=lambda speakers: _plan_digits(
            speakers, rates, pitches, utterances_per_speaker, (min_digits, max_digits), seed
        ),
        source=dict(
            utterances_per_speaker=utterances_per_speaker,
            min_digits=min_digits,
            max_digits=max_digits,
            pad_seconds=list(pad_seconds),
        ),
        normalize=normalize,
        workers=workers,
    )
