"""Bring your own transcribed speech for CTC recognition (``data=speech_transcripts``).

Give ONE source (:mod:`~rnnlab.data.speech.transcript_sources`):

* ``manifest``: a CSV/TSV ``path,transcript[,speaker][,split]`` (paths relative to it);
* ``librispeech_root``: LibriSpeech-style ``*.trans.txt`` beside the audio;
* ``commonvoice_tsv``: one Common Voice TSV or a list (``train.tsv``, ``dev.tsv``, ...);
* ``root``: a folder in either of the last two layouts, detected.

Then, the same for every source (and for :mod:`~rnnlab.data.speech.librispeech`):

1. transcripts are normalised (:mod:`~rnnlab.data.speech.transcript_text`); one left
   empty is skipped (``empty_transcript``);
2. audio is read (any rate, mono/stereo), featurised; bad files are skipped and counted;
3. splits: given ones kept, val carved from train when missing, else speaker-disjoint or
   hashed (:mod:`~rnnlab.data.speech.assign`);
4. the label vocabulary is learnt on TRAIN transcripts (:mod:`~rnnlab.data.speech.units`)
   and every transcript encoded to label ids (``<unk>`` = 0 for unseen symbols);
5. an utterance CTC cannot align is skipped (``too_long_for_ctc``): with ``U`` labels of
   which ``R`` repeat their predecessor, CTC needs ``U + R`` output frames (a blank
   between repeats), and the model has ``T // time_reduction`` of the ``T`` feature
   frames (``prepare.time_reduction``: frame stacking/subsampling in the model);
6. features are standardised with train statistics.

``meta.json``: ``task: ctc``, ``labels`` (dataset label ``k`` = model output ``k + 1``;
0 is the blank), ``units``, ``decode``, ``tokenizer``, ``text_normalization``,
``time_reduction``, ``oov`` and ``lengths`` per split, the split facts and ``skipped``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rnnlab.data.bad_input import BadInput, check_mode
from rnnlab.data.format import Split
from rnnlab.data.speech.assign import assign_splits
from rnnlab.data.speech.audio import AUDIO_EXTENSIONS, AudioItem, featurize_items
from rnnlab.data.speech.features import FeatureParams, single_thread, speech_meta
from rnnlab.data.speech.manifest import read_manifest
from rnnlab.data.speech.transcript_sources import (
    TRANSCRIPT_COLUMNS,
    commonvoice_tsvs,
    detect_layout,
    keep_given_with_train,
    read_commonvoice,
    read_librispeech,
)
from rnnlab.data.speech.transcript_text import TextNormalization
from rnnlab.data.speech.units import Units, train_units
from rnnlab.data.splits import SPLITS, require_nonempty
from rnnlab.errors import DataError

NAME = "speech_transcripts"
TRANSCRIPT_EXTENSIONS = (*AUDIO_EXTENSIONS, ".mp3")
SOURCE_KEYS = ("manifest", "librispeech_root", "commonvoice_tsv", "root")


def ctc_frames_needed(ids: Sequence[int]) -> int:
    """Output frames CTC needs for ``ids``: one per label plus a blank between repeats."""
    return len(ids) + sum(1 for a, b in zip(ids, ids[1:]) if a == b)


def _as_paths(value: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(value, (str, Path)):
        return [Path(v.strip()) for v in str(value).split(",") if v.strip()]
    return [Path(v) for v in value]


def read_source(
    sources: dict[str, Any], extensions: Sequence[str], bad: BadInput
) -> tuple[list[AudioItem], dict[str, Any]]:
    """The items of the ONE given source, and ``meta["source"]``."""
    given = {k: v for k, v in sources.items() if v is not None}
    if len(given) != 1:
        raise DataError(
            f"{NAME}: give exactly one of {', '.join(f'{k}=' for k in SOURCE_KEYS)}; got "
            + (", ".join(f"{k}={v!r}" for k, v in given.items()) or "none")
        )
    ((key, value),) = given.items()
    layout = key
    if key == "root":
        layout = {"librispeech": "librispeech_root", "commonvoice": "commonvoice_tsv"}[
            detect_layout(Path(value))
        ]
        value = Path(value) if layout == "librispeech_root" else commonvoice_tsvs(Path(value))
    if layout == "manifest":
        items = read_manifest(Path(value), TRANSCRIPT_COLUMNS, NAME)
    elif layout == "librispeech_root":
        items = read_librispeech(Path(value), extensions, bad, f"{NAME}.{key}")
    else:
        value = _as_paths(value)
        items = read_commonvoice(value, bad)
    if layout != "manifest":
        items = keep_given_with_train(items)
    shown = [str(v) for v in value] if isinstance(value, list) else str(value)
    return items, {"layout": layout.split("_")[0], key: shown}


def normalise_transcripts(
    items: list[AudioItem], norm: TextNormalization, bad: BadInput
) -> list[AudioItem]:
    """Every item's ``label`` normalised in place; those left empty are bad input."""
    kept = []
    for it in items:
        raw, it.label = it.label, norm(it.label)
        if not it.label:
            bad("empty_transcript", it.where, f"{raw!r} is empty after normalisation")
            continue
        kept.append(it)
    return kept


def encode_targets(
    pairs: Sequence[tuple[AudioItem, torch.Tensor]],
    units: Units,
    time_reduction: int,
    bad: BadInput,
) -> tuple[dict[str, Split], dict[str, Any]]:
    """Label ids per split (in item order), too-long utterances skipped; OOV and length
    statistics per split for meta."""
    splits = {k: Split([], []) for k in SPLITS}
    stats = {k: {"labels": 0, "unk": 0, "frames_max": 0, "labels_max": 0} for k in SPLITS}
    for item, feats in pairs:
        ids, n_unk = units.encode(item.label)
        if not ids:
            bad("empty_transcript", item.where, f"{item.label!r} encodes to no labels")
            continue
        have, need = len(feats) // time_reduction, ctc_frames_needed(ids)
        if need > have:
            bad(
                "too_long_for_ctc",
                item.where,
                f"{len(ids)} labels need {need} frames, the model gets {have} "
                f"({len(feats)} frames // time_reduction={time_reduction})",
                "use coarser units (units=bpe/word) or a smaller time_reduction/hop_ms",
            )
            continue
        splits[item.split].inputs.append(feats)
        splits[item.split].targets.append(ids)
        s = stats[item.split]
        s["labels"] += len(ids)
        s["unk"] += n_unk
        s["frames_max"] = max(s["frames_max"], len(feats))
        s["labels_max"] = max(s["labels_max"], len(ids))
    oov = {
        k: {"unk_labels": s["unk"], "rate": round(s["unk"] / max(s["labels"], 1), 6)}
        for k, s in stats.items()
    }
    lengths = {
        k: {"frames_max": s["frames_max"], "labels_max": s["labels_max"]} for k, s in stats.items()
    }
    return splits, {"oov": oov, "lengths": lengths}


def _check_reduction(time_reduction: Any) -> int:
    if (
        isinstance(time_reduction, bool)
        or not isinstance(time_reduction, int)
        or time_reduction < 1
    ):
        raise DataError(f"{NAME}: time_reduction={time_reduction!r} must be an integer >= 1")
    return time_reduction


@dataclass(frozen=True)
class CTCOptions:
    """The settings every transcribed source shares, as :func:`build_transcribed` takes
    them (each public builder has them as keyword parameters, for Hydra).

    ``units``: char | word | bpe | unigram (``vocab_size`` caps or bounds the
    vocabulary); ``normalize_text``: the :class:`TextNormalization` settings;
    ``time_reduction``: the model's frame subsampling, for the CTC length rule; the
    split fractions and ``seed`` (:mod:`~rnnlab.data.speech.assign`); ``features``: the
    :class:`~rnnlab.data.speech.features.FeatureParams`; ``normalize``: standardise
    features with train statistics.
    """

    units: str
    vocab_size: int | None
    normalize_text: dict[str, Any] | None
    time_reduction: int
    val_fraction: float
    test_fraction: float
    seed: int
    features: dict[str, Any] | None
    normalize: bool


def build_transcribed(
    items: list[AudioItem],
    options: CTCOptions,
    *,
    where: str,
    bad: BadInput,
    out_dir: str | Path | None,
    source: dict[str, Any],
) -> tuple[dict[str, Split], dict[str, Any]]:
    """Steps 1-6 of the module docstring on ``items`` (``label`` = raw transcript)."""
    o = options
    norm = TextNormalization.from_config(o.normalize_text)
    reduction = _check_reduction(o.time_reduction)
    fp = FeatureParams(**(o.features or {}))
    items = normalise_transcripts(items, norm, bad)
    pairs = featurize_items(items, fp, None, bad)
    kept = [it for it, _ in pairs]
    split_info = assign_splits(kept, o.val_fraction, o.test_fraction, o.seed, where)
    vocab = train_units([it.label for it in kept if it.split == "train"], o.units, o.vocab_size)
    splits, stats = encode_targets(pairs, vocab, reduction, bad)
    require_nonempty(
        {k: len(v) for k, v in splits.items()},
        where,
        "add recordings or speakers, or change val_fraction/test_fraction",
    )
    bad.log_summary()
    speakers = split_info.pop("speakers")
    definition = source.get("speaker_definition") if speakers else None
    targets = {
        **vocab.as_meta(),
        "tokenizer": vocab.save(out_dir),
        "text_normalization": norm.as_meta(),
        "time_reduction": reduction,
        "ctc_length_rule": "labels + repeats <= frames // time_reduction",
    }
    return splits, {
        **speech_meta("ctc", fp, vocab.labels, splits, o.normalize, speakers, definition, targets),
        **split_info,
        "skipped": bad.counts,
        **stats,
        "source": {k: v for k, v in source.items() if k != "speaker_definition"},
    }


SPEAKER_DEFINITIONS = {
    "manifest": "manifest speaker column",
    "librispeech": "LibriSpeech speaker id (first field of the utterance id)",
    "commonvoice": "Common Voice client_id",
}


@single_thread()
def build_speech_transcripts(
    out_dir: str | Path | None = None,
    raw_dir: str | Path | None = None,
    manifest: str | Path | None = None,
    librispeech_root: str | Path | None = None,
    commonvoice_tsv: str | Path | Sequence[str | Path] | None = None,
    root: str | Path | None = None,
    extensions: Sequence[str] = TRANSCRIPT_EXTENSIONS,
    units: str = "char",
    vocab_size: int | None = None,
    normalize_text: dict[str, Any] | None = None,
    time_reduction: int = 1,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    on_bad_input: str = "skip",
    features: dict[str, Any] | None = None,
    normalize: bool = True,
) -> tuple[dict[str, Split], dict[str, Any]]:
    """Transcribed recordings -> CTC dataset (see the module docstring); the settings
    from ``units`` on are :class:`CTCOptions`."""
    check_mode(on_bad_input, NAME)
    sources = dict(
        manifest=manifest,
        librispeech_root=librispeech_root,
        commonvoice_tsv=commonvoice_tsv,
        root=root,
    )
    where = str(next((v for v in sources.values() if v is not None), NAME))
    bad = BadInput(on_bad_input, where)
    items, source = read_source(sources, list(extensions), bad)
    source["speaker_definition"] = SPEAKER_DEFINITIONS[source["layout"]]
    options = CTCOptions(
        units,
        vocab_size,
        normalize_text,
        time_reduction,
        val_fraction,
        test_fraction,
        seed,
        features,
        normalize,
    )
    return build_transcribed(items, options, where=where, bad=bad, out_dir=out_dir, source=source)
