"""Learnable transcribed speech in the three bring-your-own layouts.

Each letter of a small alphabet is a linear chirp (:data:`LETTER_CHIRPS`: ``a`` and ``b``
sweep the same band up and down, as do ``c`` and ``d``, so a single frame does not tell
them apart and the network has to use the sweep's direction, i.e. time); a word is its
letters' chirps in turn, each ``70..110 ms`` long, separated by ``20..40 ms`` of silence
(so a repeated letter is two chirps, and CTC has a blank frame between them). Speakers
differ by a pitch factor (:data:`SPEAKER_PITCH`; the val and test speakers' lie inside
the train speakers' range) and loudness. With 10 ms log-mel frames
a letter is 7-11 frames: a small bidirectional network learns the letters in seconds of
CPU training, so a CLI test can watch the CER fall.

:func:`corpus` draws the utterances (speaker ``s`` has the split
``SPEAKER_SPLITS[s]``); :func:`write_manifest`, :func:`write_librispeech` and
:func:`write_commonvoice` lay them out as a user would hand them over.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000
LETTER_CHIRPS = {
    "a": (400.0, 1600.0),
    "b": (1600.0, 400.0),
    "c": (1000.0, 4000.0),
    "d": (4000.0, 1000.0),
}
SPEAKER_SPLITS = ("train", "train", "train", "train", "val", "test")
SPEAKER_PITCH = (0.97, 1.03, 0.99, 1.02, 1.0, 1.01)
LIBRISPEECH_SUBSETS = {"train": "train-clean-5", "val": "dev-clean", "test": "test-clean"}
COMMONVOICE_TSVS = {"train": "train.tsv", "val": "dev.tsv", "test": "test.tsv"}


@dataclass(frozen=True)
class Utterance:
    """One recording: ``speaker`` (0-based), its split, a ``word`` over :data:`LETTER_CHIRPS`."""

    speaker: int
    split: str
    word: str
    seed: int


def corpus(per_speaker: int = 12, seed: int = 0) -> list[Utterance]:
    """``per_speaker`` words of 2-4 letters for each speaker of :data:`SPEAKER_SPLITS`."""
    rng = random.Random(seed)
    letters = sorted(LETTER_CHIRPS)
    return [
        Utterance(spk, split, "".join(rng.choices(letters, k=rng.randint(2, 4))), rng.random())
        for spk, split in enumerate(SPEAKER_SPLITS)
        for _ in range(per_speaker)
    ]


def render(utt: Utterance, sr: int = SAMPLE_RATE) -> np.ndarray:
    """The waveform ``(T,)`` float32 of ``utt`` at ``sr`` Hz (see the module docstring)."""
    rng = np.random.default_rng(int(utt.seed * 2**31))
    pitch = SPEAKER_PITCH[utt.speaker]
    gain = 0.2 + 0.03 * utt.speaker
    parts = [np.zeros(int(0.03 * sr))]
    for letter in utt.word:
        t = np.arange(int(rng.uniform(0.07, 0.11) * sr)) / sr
        f0, f1 = (pitch * f for f in LETTER_CHIRPS[letter])
        phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * t[-1]))  # f0 -> f1 linearly
        ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.005)  # 5 ms fades: no clicks
        parts.append(gain * ramp * np.sin(phase))
        parts.append(np.zeros(int(rng.uniform(0.02, 0.04) * sr)))
    wave = np.concatenate(parts)
    return (wave + 0.003 * rng.standard_normal(wave.size)).astype(np.float32)


def write_manifest(root: Path, utts: list[Utterance]) -> Path:
    """``root/manifest.csv`` (``path,transcript,speaker,split``, paths relative to it)
    and ``root/clips/*.wav``."""
    (root / "clips").mkdir(parents=True, exist_ok=True)
    rows = ["path,transcript,speaker,split"]
    for n, utt in enumerate(utts):
        sf.write(root / "clips" / f"u{n:03d}.wav", render(utt), SAMPLE_RATE)
        rows.append(f"clips/u{n:03d}.wav,{utt.word},spk{utt.speaker},{utt.split}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root / "manifest.csv"


def write_librispeech(root: Path, utts: list[Utterance]) -> Path:
    """``root/<subset>/<speaker>/<chapter>/`` with ``.flac`` clips and upper-case
    ``<speaker>-<chapter>.trans.txt`` (subset from the split: train-clean-5, dev-clean,
    test-clean)."""
    lines: dict[Path, list[str]] = {}
    for n, utt in enumerate(utts):
        spk = 100 + utt.speaker
        chapter = root / LIBRISPEECH_SUBSETS[utt.split] / str(spk) / "7"
        chapter.mkdir(parents=True, exist_ok=True)
        utt_id = f"{spk}-7-{n:04d}"
        sf.write(chapter / f"{utt_id}.flac", render(utt), SAMPLE_RATE)
        lines.setdefault(chapter / f"{spk}-7.trans.txt", []).append(f"{utt_id} {utt.word.upper()}")
    for path, text in lines.items():
        path.write_text("\n".join(text) + "\n")
    return root


def write_commonvoice(root: Path, utts: list[Utterance]) -> list[Path]:
    """``root/{train,dev,test}.tsv`` (``client_id``, ``path``, ``sentence``) and
    ``root/clips/``; returns the TSVs."""
    (root / "clips").mkdir(parents=True, exist_ok=True)
    rows = {split: ["client_id\tpath\tsentence\tup_votes"] for split in COMMONVOICE_TSVS}
    for n, utt in enumerate(utts):
        clip = f"common_voice_xx_{n:05d}.wav"
        sf.write(root / "clips" / clip, render(utt), SAMPLE_RATE)
        rows[utt.split].append(f"{'c' * 8}{utt.speaker}\t{clip}\t{utt.word.title()}.\t2")
    tsvs = []
    for split, name in COMMONVOICE_TSVS.items():
        (root / name).write_text("\n".join(rows[split]) + "\n")
        tsvs.append(root / name)
    return tsvs
