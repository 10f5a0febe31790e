"""Google Speech Commands v2 (Warden 2018): download, official splits, extra classes.

The archive (cached in ``raw_dir``; :func:`~rnnlab.data.download.fetch` resumes and
verifies it, :func:`~rnnlab.data.archives.extract_once` unpacks it once per archive
digest) holds ``<word>/<speaker>_nohash_<n>.wav`` 1 s clips, ``_background_noise_/`` and
the speaker-disjoint ``validation_list.txt``/``testing_list.txt``: files named there go
to val/test, all others to train. Optional classes: ``_unknown_`` (other words, drawn
deterministically) and ``_silence_`` (1 s slices of the background-noise recordings).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnlab.data.archives import extract_once
from rnnlab.data.bad_input import OnBadInput
from rnnlab.data.download import fetch
from rnnlab.data.format import Split
from rnnlab.data.options import takes
from rnnlab.data.speech.audio import AudioItem, featurize_items, group_splits, read_audio
from rnnlab.data.speech.features import (
    FeatureExtractor,
    FeatureParams,
    fix_length,
    single_thread,
    speech_meta,
)
from rnnlab.data.speech.labels import CORE_WORDS, check_words
from rnnlab.data.speech.options import SpeechOptions
from rnnlab.data.splits import SPLITS, require_nonempty
from rnnlab.errors import DataError

SPEECH_COMMANDS_URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
SPEAKER = re.compile(r"^([0-9a-fA-F]+)_nohash_")  # <speaker hash>_nohash_<n>.wav
UNKNOWN, SILENCE = "_unknown_", "_silence_"


def download(raw: Path, url: str, sha256: str | None) -> tuple[Path, Path]:
    """(archive, dataset root): fetched, extracted once, the root being the folder with
    the official lists (the archive has no top-level folder; a re-packed one may)."""
    archive = fetch(url, sha256, raw / Path(url.split("?")[0]).name)
    target = extract_once(archive, raw / "speech_commands_v0.02")
    candidates = [target, *sorted(d for d in target.iterdir() if d.is_dir())]
    root = next((d for d in candidates if (d / "testing_list.txt").is_file()), None)
    if root is None or not (root / "validation_list.txt").is_file():
        raise DataError(
            f"{archive}: no testing_list.txt/validation_list.txt found after extraction; "
            "is this the Speech Commands archive?"
        )
    return archive, root


def official_items(
    root: Path, words: Sequence[str], include_unknown: bool
) -> tuple[list[AudioItem], list[AudioItem]]:
    """(items of ``words``, candidate ``_unknown_`` items of the other words), each with
    its speaker and its split from the official lists (train when listed in neither)."""
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
    items: list[AudioItem] = []
    unknown: list[AudioItem] = []
    for d in word_dirs:
        if d not in words and not include_unknown:
            continue
        for p in sorted((root / d).glob("*.wav")):
            m = SPEAKER.match(p.name)
            split = listed.get(f"{d}/{p.name}", "train")
            item = AudioItem(
                p, d if d in words else UNKNOWN, m.group(1) if m else None, split, str(p)
            )
            (items if d in words else unknown).append(item)
    return items, unknown


def draw_unknown(
    items: list[AudioItem], unknown: list[AudioItem], fraction: float, seed: int
) -> list[AudioItem]:
    """Per split, ``round(fraction * n_words_items)`` unknown-word items (or all there
    are), drawn without replacement by ``default_rng(seed)``, kept in file order."""
    rng = np.random.default_rng(seed)
    drawn = []
    for split in SPLITS:
        pool = [it for it in unknown if it.split == split]
        n = min(len(pool), round(fraction * sum(it.split == split for it in items)))
        drawn += [pool[i] for i in sorted(rng.choice(len(pool), n, replace=False))]
    return drawn


def add_silence(
    root: Path,
    splits: dict[str, Split],
    label: int,
    fp: FeatureParams,
    clip_seconds: float,
    fraction: float,
    seed: int,
) -> None:
    """Append ``round(fraction * len(split))`` ``_silence_`` clips to each split: slices of
    the background-noise recordings at offsets and gains ``U(0, 1)`` from
    ``default_rng([seed, 1])``."""
    noise_files = sorted((root / "_background_noise_").glob("*.wav"))
    if not noise_files:
        raise DataError(
            f"{root}/_background_noise_: no .wav files; needed for include_silence=true"
        )
    noises = [read_audio(p, fp.sample_rate) for p in noise_files]
    length = round(clip_seconds * fp.sample_rate)
    extractor = FeatureExtractor(fp)
    rng = np.random.default_rng([seed, 1])
    for split in SPLITS:
        for _ in range(round(fraction * len(splits[split]))):
            noise = noises[int(rng.integers(len(noises)))]
            start = int(rng.integers(0, max(1, len(noise) - length)))
            clip = fix_length(noise[start : start + length], length) * rng.uniform(0, 1)
            splits[split].inputs.append(extractor(torch.from_numpy(clip.astype(np.float32))))
            splits[split].targets.append(label)


@single_thread()
@takes("speech_commands", speech=SpeechOptions(), bad=OnBadInput())
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
    *,
    speech: SpeechOptions,
    bad: OnBadInput,
) -> tuple[dict[str, Split], dict[str, Any]]:
    """Google Speech Commands v2 (Warden 2018), with the archive's official splits.

    Downloads (cached in ``raw_dir``) and extracts the archive, then keeps ``words``; files
    named in ``validation_list.txt``/``testing_list.txt`` go to val/test, the rest to train
    (the lists are speaker-disjoint by construction). Optional classes: ``_unknown_`` (other
    words, ``unknown_fraction`` of each split's size, drawn deterministically) and
    ``_silence_`` (1 s slices of ``_background_noise_``, ``silence_fraction`` of each split).
    """
    check_words("speech_commands", words)
    policy, fp, seed = bad.policy("speech_commands"), speech.params, speech.seed
    archive, root = download(Path(raw_dir), url, sha256)
    labels = (
        list(words)
        + ([UNKNOWN] if include_unknown else [])
        + ([SILENCE] if include_silence else [])
    )
    items, unknown = official_items(root, words, include_unknown)
    if include_unknown:
        items += draw_unknown(items, unknown, unknown_fraction, seed)
    pairs = featurize_items(items, fp, clip_seconds, policy)
    items = [it for it, _ in pairs]
    splits = group_splits(pairs, labels)
    if include_silence:
        add_silence(root, splits, labels.index(SILENCE), fp, clip_seconds, silence_fraction, seed)
    require_nonempty(
        {k: len(v) for k, v in splits.items()}, str(root), "add words, or include_unknown=true"
    )
    policy.log_summary()
    speakers = {
        k: sorted({it.speaker for it in items if it.split == k and it.speaker}) for k in SPLITS
    }
    definition = "Speech Commands speaker hash (<speaker>_nohash_<n>.wav)"
    return splits, {
        **speech_meta("classification", fp, labels, splits, speech.normalize, speakers, definition),
        "split_method": "official validation_list.txt/testing_list.txt",
        "skipped": policy.counts,
        "source": {
            "url": url,
            "sha256": sha256,
            "archive": archive.name,
            "clip_seconds": clip_seconds,
        },
    }
