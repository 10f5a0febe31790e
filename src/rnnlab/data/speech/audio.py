"""Real audio files: reading (any rate, mono or stereo), the bad-file rule, featurising.

Audio is read with ``soundfile`` (torchaudio >= 2.9 ``load`` needs torchcodec + FFmpeg),
mixed to mono and resampled to the front end's rate (logged once per dataset with both
rates and the number of files: ``resampling 8000 Hz -> 16000 Hz (12 files)``). A file
that cannot be used raises
:class:`BadAudio` with a reason key (``missing``, ``empty``, ``unreadable``,
``non_finite``, ``too_short``); :func:`featurize_items` hands it to the dataset's
:class:`~rnnlab.data.bad_input.BadInput`, which skips and counts it in
``meta["skipped"]`` or raises a DataError naming the file (``on_bad_input``).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from rnnlab.data.bad_input import BadInput
from rnnlab.data.format import Split
from rnnlab.data.speech.features import FeatureExtractor, FeatureParams, fix_length, resample
from rnnlab.data.splits import SPLITS

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
PROGRESS_EVERY = 5000  # featurize_items logs a progress line every this many files
log = logging.getLogger(__name__)


class BadAudio(Exception):
    """An audio file that cannot be used; ``reason`` is the key counted in meta["skipped"]."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def read_audio(path: Path, sample_rate: int, rates: Counter | None = None) -> np.ndarray:
    """Read any soundfile-supported file as mono float32 at ``sample_rate``; raise BadAudio.

    ``rates`` (optional) counts the files read per native sample rate."""
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
    if rates is not None:
        rates[int(sr)] += 1
    return resample(torch.from_numpy(np.ascontiguousarray(mono)), int(sr), sample_rate).numpy()


@dataclass
class AudioItem:
    """One labelled file; ``split``/``speaker`` are filled by the source or assigned later."""

    path: Path
    label: str
    speaker: str | None = None
    split: str | None = None
    where: str = ""  # for messages: "manifest.csv:7 (a/b.wav)" or the path


def featurize_items(
    items: Sequence[AudioItem],
    fp: FeatureParams,
    clip_seconds: float | None,
    bad: BadInput,
) -> list[tuple[AudioItem, torch.Tensor]]:
    """(item, (frames, F) features) for every usable item, in order; a bad file goes to
    ``bad`` (skipped and counted, or a DataError naming it). ``clip_seconds`` pads or
    centre-crops every clip to that length; a clip shorter than one window is bad.
    Resampling is logged once, after the last file (:func:`log_resampling`); a long
    corpus logs its progress every ``PROGRESS_EVERY`` files."""
    extractor = FeatureExtractor(fp)
    length = None if clip_seconds is None else round(clip_seconds * fp.sample_rate)
    out = []
    rates: Counter = Counter()
    start = time.monotonic()
    for i, item in enumerate(items, 1):
        if i % PROGRESS_EVERY == 0:
            log.info("%s: read %d/%d audio files (%.0f s)", bad.where, i, len(items),
                     time.monotonic() - start)  # fmt: skip
        try:
            wave = read_audio(item.path, fp.sample_rate, rates)
            if length is not None:
                wave = fix_length(wave, length)
            if len(wave) < fp.win_length:
                raise BadAudio("too_short", f"{len(wave)} samples < one {fp.win_ms} ms window")
        except BadAudio as e:
            bad(e.reason, item.where, str(e), _HINTS.get(e.reason, ""))
            continue
        out.append((item, extractor(torch.from_numpy(np.ascontiguousarray(wave)))))
    log_resampling(rates, fp.sample_rate, bad.where)
    return out


def log_resampling(rates: Counter, sample_rate: int, where: str) -> None:
    """One line naming every native rate that was resampled, the target rate and the
    number of files, e.g. ``m.csv: resampling 8000 Hz -> 16000 Hz (12 files)``."""
    other = sorted((sr, n) for sr, n in rates.items() if sr != sample_rate)
    if other:
        parts = [f"{sr} Hz -> {sample_rate} Hz ({n} file{'s' * (n != 1)})" for sr, n in other]
        log.info("%s: resampling %s", where, ", ".join(parts))


_HINTS = {
    "missing": "check the path (manifest paths are relative to the manifest's folder)",
    "unreadable": "valid: audio that libsndfile decodes (WAV, FLAC, OGG, ...)",
    "too_short": "valid: clips at least one analysis window long",
}


def group_splits(
    pairs: Sequence[tuple[AudioItem, torch.Tensor]], labels: Sequence[str]
) -> dict[str, Split]:
    """Features and label ids per ``item.split``, in item order."""
    label_id = {name: i for i, name in enumerate(labels)}
    splits = {k: Split([], []) for k in SPLITS}
    for item, feats in pairs:
        splits[item.split].inputs.append(feats)
        splits[item.split].targets.append(label_id[item.label])
    return splits
