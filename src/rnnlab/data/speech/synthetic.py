"""The embedded speech datasets: words and digit strings spoken by espeak-ng voices.

A *speaker* is an espeak-ng voice plus a variant (``en-us+f2``); whole speakers go to
train, val or test (:func:`rnnlab.data.splits.split_groups`), so val/test voices are
never heard in training. Both datasets are made by one builder (:func:`_build_synth`):

1. **Plan** every clip: its target, its text, voice, rate and pitch, and a ``numpy``
   generator of its own (seeded from ``seed`` and the clip's position alone).
2. **Synthesize** each voice's clips in one fresh espeak-ng process (``workers`` at a
   time; :func:`rnnlab.data.speech.espeak.synthesize_per_voice`), so a clip's audio never
   depends on what ran before it.
3. **Render**: trim silence, resample 22.05 -> 16 kHz, place the speech in its window,
   add coloured noise at a random SNR, scale to a random gain
   (:mod:`rnnlab.data.speech.render`).
4. **Featurise** (:mod:`rnnlab.data.speech.features`) and normalise with train statistics.

The two public builders are that builder with a different *kind* (what a clip says,
how it is labelled): :func:`build_speech_commands_synth` (:class:`WordClips`, one word
per 1 s clip, ``classification``) and :func:`build_speech_digits_synth`
(:class:`DigitStrings`, 3-7 digits of natural length, ``ctc``); they share the option
groups :class:`SynthVoices`, ``Fractions`` and ``SpeechOptions``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from rnnlab.data.bad_input import BadInput
from rnnlab.data.format import Split
from rnnlab.data.options import Fractions, dataset_builder
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
from rnnlab.data.speech.options import SpeechOptions
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
@dataclass(frozen=True)
class SynthVoices:
    """Who speaks, and how the clips sound: the options both synthetic datasets share.

    A speaker is a voice plus a variant (every pair of ``voices`` x ``variants``);
    ``rates`` (words per minute) and ``pitches`` (0..99, 50 = the voice's default) are
    what a clip is spoken with; ``snr_db`` and ``gain_db`` ([low, high]) the noise and
    level of :mod:`~rnnlab.data.speech.render`. ``val_speakers``/``test_speakers``
    (given together) override the fractions; ``workers`` espeak-ng processes at a time.
    """

    voices: Sequence[str] = ENGLISH_VOICES
    variants: Sequence[str] | None = DEFAULT_VARIANTS
    rates: Sequence[int] = (130, 175, 220)
    pitches: Sequence[int] = (35, 65)
    snr_db: Sequence[float] = (5.0, 30.0)
    gain_db: Sequence[float] = (-12.0, 0.0)
    val_speakers: Sequence[str] | None = None
    test_speakers: Sequence[str] | None = None
    workers: int | None = None

    def validate(self, where: str) -> None:
        if not self.voices:
            raise DataError(
                f"{where}: voices=[] is empty; valid: espeak voices such as "
                f"{', '.join(ENGLISH_VOICES)}"
            )
        if not self.rates or not self.pitches:
            raise DataError(
                f"{where}: rates={list(self.rates)!r} and pitches={list(self.pitches)!r} "
                "must be non-empty"
            )
        for key, bounds in (("snr_db", self.snr_db), ("gain_db", self.gain_db)):
            if len(bounds) != 2 or bounds[0] > bounds[1]:
                raise DataError(
                    f"{where}: {key}={list(bounds)!r} must be [low, high] with low <= high"
                )

    def speakers(self) -> list[Voice]:
        """Every voice+variant, each checked once with espeak-ng (a clear error before
        minutes of work), as are every rate and pitch."""
        speakers = [Voice(v, var) for v in self.voices for var in (self.variants or [None])]
        rate, pitch = self.rates[0], self.pitches[0]
        for spk in speakers:
            synthesize("a", spk, rate, pitch)
        for r in self.rates:
            synthesize("a", speakers[0], r, pitch)
        for p in self.pitches:
            synthesize("a", speakers[0], rate, p)
        return speakers

    def assign(self, speakers: list[Voice], split: Fractions, seed: int) -> dict[str, list[str]]:
        """Whole speakers to train/val/test (:func:`~rnnlab.data.splits.split_groups`)."""
        specs = [s.spec for s in speakers]
        fractions = (split.val_fraction, split.test_fraction, seed)
        assignment = split_groups(specs, *fractions, self.val_speakers, self.test_speakers)
        return {k: assignment[k] for k in SPLITS}

    def source(self) -> dict[str, Any]:
        """The voice settings for ``meta["source"]``, before the dataset's own."""
        return {
            "synthesizer": "espeak-ng (espeakng_loader)",
            "voices": list(self.voices),
            "variants": list(self.variants or []),
            "rates": list(self.rates),
            "pitches": list(self.pitches),
        }


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
def _build_synth(
    out_dir: str | Path | None = None,
    raw_dir: str | Path | None = None,
    *,
    kind: WordClips | DigitStrings,
    voice: SynthVoices,
    split: Fractions,
    speech: SpeechOptions,
) -> tuple[dict[str, Split], dict[str, Any]]:
    """The one synthetic-dataset builder (steps 1-4 of the module docstring): speakers
    and their splits, ``kind``'s clips of each speaker, synthesis and rendering,
    features, meta. ``out_dir``/``raw_dir`` are accepted for the prepare stage and
    unused (nothing to cache)."""
    name, fp = kind.NAME, speech.params
    how = kind.render(fp, voice)
    speakers = voice.speakers()
    assignment = voice.assign(speakers, split, speech.seed)
    plans = kind.plan(speakers, voice, speech.seed)
    splits, bad = _synthesize_clips(name, speakers, assignment, plans, how, fp, voice.workers)
    require_nonempty(
        {k: len(v) for k, v in splits.items()}, name, "add voices or variants, or change fractions"
    )
    bad.log_summary()
    labels, definition = kind.labels, "espeak-ng voice+variant"
    return splits, {
        **speech_meta(kind.TASK, fp, labels, splits, speech.normalize, assignment, definition),
        "skipped": bad.counts,
        "source": {
            **voice.source(),
            **kind.source(),
            "snr_db": list(how.snr_db),
            "gain_db": list(how.gain_db),
            "seed": speech.seed,
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
@dataclass(frozen=True)
class WordClips:
    """``speech_commands_synth``: one word per ``clip_seconds`` clip, ``classification``.

    Every (speaker, word, rate, pitch, repeat) is one clip, rate and pitch jittered by
    up to ``rate_jitter``/``pitch_jitter`` (so repeats differ) by the clip's own
    generator ``default_rng([seed, clip index])``, placed at a random offset.
    """

    NAME: ClassVar[str] = "speech_commands_synth"
    TASK: ClassVar[str] = "classification"
    words: Sequence[str] = CORE_WORDS
    repeats: int = 1
    rate_jitter: int = 10
    pitch_jitter: int = 5
    clip_seconds: float = 1.0

    def validate(self, where: str) -> None:
        check_words(where, self.words)
        _positive_int(where, "repeats", self.repeats)
        if not self.clip_seconds > 0:
            raise DataError(f"{where}: clip_seconds={self.clip_seconds!r} must be > 0")

    @property
    def labels(self) -> Sequence[str]:
        return self.words

    def render(self, fp: FeatureParams, voice: SynthVoices) -> Render:
        return Render(
            round(self.clip_seconds * fp.sample_rate), (0, 0), voice.snr_db, voice.gain_db
        )

    def plan(self, speakers: Sequence[Voice], voice: SynthVoices, seed: int) -> list[list[_Clip]]:
        plans: list[list[_Clip]] = []
        index = 0
        for spk in speakers:
            plans.append([])
            for (label, word), rate, pitch, _ in itertools.product(
                enumerate(self.words), voice.rates, voice.pitches, range(self.repeats)
            ):
                rng = np.random.default_rng([seed, index])
                index += 1
                r = rate + rng.integers(-self.rate_jitter, self.rate_jitter + 1)
                p = pitch + rng.integers(-self.pitch_jitter, self.pitch_jitter + 1)
                r, p = int(np.clip(r, *RATE_RANGE)), int(np.clip(p, *PITCH_RANGE))
                plans[-1].append(_Clip(label, rng, (word, spk.spec, r, p)))
        return plans

    def source(self) -> dict[str, Any]:
        """Its settings but the words (the labels) for ``meta["source"]``."""
        return {k: v for k, v in asdict(self).items() if k != "words"}


@dataclass(frozen=True)
class DigitStrings:
    """``speech_digits_synth``: connected digits, ``ctc`` over ``zero`` .. ``nine``.

    ``utterances_per_speaker`` random strings of ``min_digits``..``max_digits`` digits
    per speaker, each from its own generator ``default_rng([seed, speaker index,
    utterance index])`` (length, digits, rate, pitch), at their natural length plus
    ``pad_seconds`` ([low, high]) of silence before and after. Targets are label-id
    lists (the CTC blank is the model's business).
    """

    NAME: ClassVar[str] = "speech_digits_synth"
    TASK: ClassVar[str] = "ctc"
    utterances_per_speaker: int = 30
    min_digits: int = 3
    max_digits: int = 7
    pad_seconds: Sequence[float] = (0.05, 0.3)

    def validate(self, where: str) -> None:
        if not 1 <= self.min_digits <= self.max_digits:
            raise DataError(
                f"{where}: min_digits={self.min_digits!r}, max_digits={self.max_digits!r}: "
                "need 1 <= min_digits <= max_digits"
            )
        _positive_int(where, "utterances_per_speaker", self.utterances_per_speaker)
        pad = self.pad_seconds
        if len(pad) != 2 or not 0 <= pad[0] <= pad[1]:
            raise DataError(
                f"{where}: pad_seconds={list(pad)!r} must be [low, high], 0 <= low <= high"
            )

    @property
    def labels(self) -> Sequence[str]:
        return DIGITS

    def render(self, fp: FeatureParams, voice: SynthVoices) -> Render:
        return Render(None, tuple(self.pad_seconds), voice.snr_db, voice.gain_db)

    def plan(self, speakers: Sequence[Voice], voice: SynthVoices, seed: int) -> list[list[_Clip]]:
        plans: list[list[_Clip]] = []
        for si, spk in enumerate(speakers):
            plans.append([])
            for u in range(self.utterances_per_speaker):
                rng = np.random.default_rng([seed, si, u])
                length = int(rng.integers(self.min_digits, self.max_digits + 1))
                digits = rng.integers(0, 10, length).tolist()
                rate, pitch = int(rng.choice(voice.rates)), int(rng.choice(voice.pitches))
                text = " ".join(DIGITS[d] for d in digits)
                plans[-1].append(_Clip(digits, rng, (text, spk.spec, rate, pitch)))
        return plans

    def source(self) -> dict[str, Any]:
        """Its settings for ``meta["source"]``."""
        return {**asdict(self), "pad_seconds": list(self.pad_seconds)}


def _dataset(kind: WordClips | DigitStrings, doc: str, pitches: tuple[int, ...]) -> Any:
    """``build_<kind.NAME>``: :func:`_build_synth` with ``kind`` and its defaults."""
    builder = dataset_builder(
        kind.NAME,
        _build_synth,
        doc,
        kind=kind,
        voice=SynthVoices(pitches=pitches),
        split=Fractions(test_fraction=0.2),
        speech=SpeechOptions(),
    )
    return single_thread()(builder)


build_speech_commands_synth = _dataset(
    WordClips(),
    """Keyword spotting on synthesized Speech Commands words, split by synthetic speaker.

    Every (speaker, word, rate, pitch, repeat) is one clip: espeak-ng speech (rate/pitch
    jittered a little so repeats differ), placed at a random offset in a ``clip_seconds``
    window (:class:`WordClips`, the module docstring). Each clip draws from its own
    ``numpy`` generator seeded with ``(seed, clip index)`` and each voice is synthesized
    in a fresh espeak-ng process (``workers`` at a time), so the result is identical
    across runs.
    """,
    pitches=(35, 65),
)

build_speech_digits_synth = _dataset(
    DigitStrings(),
    """Connected-digit recognition (CTC): random 3-7 digit strings, split by synthetic
    speaker (:class:`DigitStrings`, the module docstring).

    Targets are label-id lists over ``labels = ["zero", ..., "nine"]`` (the CTC blank is
    the model's business). Utterances keep their natural length plus random silence of
    ``pad_seconds`` before and after.
    """,
    pitches=(35, 50, 65),
)
