"""Which split each audio item goes to: given, speaker-disjoint, hashed, or carved.

One rule for every bring-your-own audio source (labelled clips and transcribed
utterances alike), in order of precedence:

1. a **given** split (a manifest ``split`` column, a LibriSpeech subset folder, a Common
   Voice ``train.tsv``/``dev.tsv``/``test.tsv``) is kept;
2. items without one: when speakers are known, whole speakers go to one split
   (:func:`~rnnlab.data.splits.split_groups`, seeded); else the stable hash of
   ``label/file name`` (:func:`~rnnlab.data.splits.hash_split`);
3. **carving**: when every item came with a split but val (or test) is missing — the
   usual "train and test files" layout — it is carved from train: whole train speakers
   when speakers are known (at least one kept in train), else by the hash rule with
   ``val_fraction`` (``test_fraction``). ``meta["val_carved_from"] = "train"`` and
   ``meta["carved_by"]`` say so.

:func:`assign_splits` returns what goes into ``meta.json``: ``speakers`` per split (None
without speakers), ``split_method`` (``given``, ``speaker`` or ``hash``),
``val_carved_from``/``test_carved_from`` and ``carved_by``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from rnnlab.data.speech.audio import AudioItem
from rnnlab.data.splits import (
    SPLITS,
    check_fractions,
    hash_split,
    name_list,
    shared_groups,
    split_groups,
)
from rnnlab.errors import DataError

log = logging.getLogger(__name__)


def hash_key(item: AudioItem) -> str:
    """The key an item's hash split is computed from: ``label/file name``."""
    return f"{item.label}/{item.path.name}"


def assign_splits(
    items: list[AudioItem], val_fraction: float, test_fraction: float, seed: int, where: str
) -> dict[str, Any]:
    """Fill every ``item.split`` (see the module docstring); the split facts for meta."""
    check_fractions(val_fraction, test_fraction, where)
    all_given = bool(items) and all(it.split is not None for it in items)
    with_speaker = [it for it in items if it.speaker is not None]
    if with_speaker and len(with_speaker) != len(items):
        missing = next(it for it in items if it.speaker is None)
        raise DataError(
            f"{missing.where}: no speaker, but other entries have one; give every "
            "entry a speaker or none"
        )
    by_speaker = bool(with_speaker)
    if not all_given:
        if by_speaker:
            _speaker_splits(items, val_fraction, test_fraction, seed, where)
        else:
            for it in items:
                if it.split is None:
                    it.split = hash_split(hash_key(it), val_fraction, test_fraction)
    info: dict[str, Any] = {
        "split_method": "given" if all_given else ("speaker" if by_speaker else "hash"),
        "val_carved_from": None,
        "test_carved_from": None,
        "carved_by": None,
    }
    if all_given:
        info.update(carve_missing(items, val_fraction, test_fraction, seed, by_speaker, where))
    speakers = None
    if by_speaker:
        speakers = {k: sorted({it.speaker for it in items if it.split == k}) for k in SPLITS}
        warn_shared_speakers(speakers, where)
    info["speakers"] = speakers
    return info


def _speaker_splits(
    items: list[AudioItem], val_fraction: float, test_fraction: float, seed: int, where: str
) -> None:
    """Speakers without a given split go wholly to one split (seeded)."""
    unsplit = sorted({it.speaker for it in items if it.split is None})
    mixed = sorted(set(unsplit) & {it.speaker for it in items if it.split is not None})
    if mixed:
        raise DataError(
            f"{where}: speaker(s) {name_list(mixed)} have entries with and without a split; "
            "give all of a speaker's entries a split, or none"
        )
    assignment = split_groups(unsplit, val_fraction, test_fraction, seed)
    split_of = {s: k for k, ss in assignment.items() for s in ss}
    for it in items:
        if it.split is None:
            it.split = split_of[it.speaker]


def carve_missing(
    items: list[AudioItem],
    val_fraction: float,
    test_fraction: float,
    seed: int,
    by_speaker: bool,
    where: str,
) -> dict[str, Any]:
    """Carve the missing val (and test) split out of the given train items, in place.

    By speaker: a seeded permutation of the train speakers gives
    ``max(1, round(fraction * n))`` speakers to each missing split, keeping at least one
    in train. Without speakers (or with a single train speaker): ``hash_split`` of each
    train item with the missing splits' fractions. Returns the meta facts.
    """
    present = {it.split for it in items}
    missing = [k for k in ("val", "test") if k not in present]
    train = [it for it in items if it.split == "train"]
    if not missing or not train:
        return {}
    val = val_fraction if "val" in missing else 0.0
    test = test_fraction if "test" in missing else 0.0
    if val == 0.0 and test == 0.0:
        return {}
    speakers = sorted({it.speaker for it in train}) if by_speaker else []
    method = "speaker" if len(speakers) >= len(missing) + 1 else "hash"
    if method == "speaker":
        split_of = _carve_speakers(speakers, missing, val, test, seed)
        for it in train:
            it.split = split_of.get(it.speaker, "train")
    else:
        for it in train:
            it.split = hash_split(hash_key(it), val, test)
    log.info(
        "%s: no %s split given; carved from train by %s (val_fraction=%s, test_fraction=%s)",
        where,
        " or ".join(missing),
        method,
        val,
        test,
    )
    return {f"{k}_carved_from": "train" for k in missing} | {"carved_by": method}


def _carve_speakers(
    speakers: Sequence[str], missing: Sequence[str], val: float, test: float, seed: int
) -> dict[str, str]:
    """Speaker -> carved split for the ``missing`` splits (unlisted speakers stay in train)."""
    order = [speakers[i] for i in np.random.default_rng(seed).permutation(len(speakers))]
    out, start = {}, 0
    for split, fraction in (("test", test), ("val", val)):
        if split not in missing:
            continue
        left = len(order) - start
        n = min(max(1, round(fraction * len(order))), left - 1)
        out.update({s: split for s in order[start : start + n]})
        start += n
    return out


def warn_shared_speakers(speakers: dict[str, list[str]], where: str) -> None:
    """One warning naming every pair of splits that shares speakers (given splits only:
    assigned ones are disjoint by construction)."""
    shared = shared_groups(speakers)
    if shared:
        pairs = "; ".join(
            f"{pair}: {len(names)} ({name_list(names)})" for pair, names in shared.items()
        )
        log.warning("%s: the given splits share speakers, %s", where, pairs)
