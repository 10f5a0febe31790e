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
from typing import Any, Protocol

import torch

from rnnlab.data.bad_input import BadInput, OnBadInput
from rnnlab.data.format import Split
from rnnlab.data.options import Fractions, dataset_builder
from rnnlab.data.speech.assign import assign_splits
from rnnlab.data.speech.audio import AUDIO_EXTENSIONS, AudioItem, featurize_items
from rnnlab.data.speech.features import single_thread, speech_meta
from rnnlab.data.speech.manifest import read_manifest
from rnnlab.data.speech.options import SpeechOptions
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
SPEAKER_DEFINITIONS = {
    "manifest": "manifest speaker column",
    "librispeech": "LibriSpeech speaker id (first field of the utterance id)",
    "commonvoice": "Common Voice client_id",
}


def ctc_frames_needed(ids: Sequence[int]) -> int:
    """Output frames CTC needs for ``ids``: one per label plus a blank between repeats."""
    return len(ids) + sum(1 for a, b in zip(ids, ids[1:]) if a == b)


def _as_paths(value: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(value, (str, Path)):
        return [Path(v.strip()) for v in str(value).split(",") if v.strip()]
    return [Path(v) for v in value]


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


@dataclass(frozen=True)
class CTCOptions:
    """The CTC target settings every transcribed source shares (an option group,
    :func:`rnnlab.data.options.takes`).

    ``units``: char | word | bpe | unigram (``vocab_size`` caps or bounds the
    vocabulary); ``normalize_text``: the :class:`TextNormalization` settings;
    ``time_reduction``: the model's frame subsampling, for the CTC length rule.
    """

    units: str = "char"
    vocab_size: int | None = None
    normalize_text: dict[str, Any] | None = None
    time_reduction: int = 1

    def validate(self, where: str) -> None:
        t = self.time_reduction
        if isinstance(t, bool) or not isinstance(t, int) or t < 1:
            raise DataError(f"{where}: time_reduction={t!r} must be an integer >= 1")
        self.normalization  # noqa: B018 - raises a DataError naming an unknown key

    @property
    def normalization(self) -> TextNormalization:
        return TextNormalization.from_config(self.normalize_text)


class TranscriptSource(Protocol):
    """An option group :func:`build_transcribed` reads utterances from
    (:class:`TranscriptFiles`, :class:`~rnnlab.data.speech.librispeech.LibriSpeechDownload`):
    ``where`` names it in messages; ``read`` returns its items (``label`` = the raw
    transcript, ``split`` when the source gives one) and ``meta["source"]``, with a
    ``speaker_definition`` entry."""

    @property
    def where(self) -> str: ...

    def read(
        self, raw_dir: str | Path | None, bad: BadInput
    ) -> tuple[list[AudioItem], dict[str, Any]]: ...


@dataclass(frozen=True)
class TranscriptFiles:
    """Your own transcribed recordings: ONE of ``manifest``, ``librispeech_root``,
    ``commonvoice_tsv`` or ``root`` (see the module docstring); audio files with one of
    ``extensions``."""

    manifest: str | Path | None = None
    librispeech_root: str | Path | None = None
    commonvoice_tsv: str | Path | Sequence[str | Path] | None = None
    root: str | Path | None = None
    extensions: Sequence[str] = TRANSCRIPT_EXTENSIONS

    def _given(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in SOURCE_KEYS if getattr(self, k) is not None}

    def validate(self, where: str) -> None:
        given = self._given()
        if len(given) != 1:
            raise DataError(
                f"{where}: give exactly one of {', '.join(f'{k}=' for k in SOURCE_KEYS)}; got "
                + (", ".join(f"{k}={v!r}" for k, v in given.items()) or "none")
            )

    @property
    def where(self) -> str:
        return str(next(iter(self._given().values())))

    def read(self, raw_dir: str | Path | None, bad: BadInput) -> tuple[list[AudioItem], dict]:
        """The items of the given source, and ``meta["source"]``."""
        ((key, value),) = self._given().items()
        layout = key
        if key == "root":
            layout = {"librispeech": "librispeech_root", "commonvoice": "commonvoice_tsv"}[
                detect_layout(Path(value))
            ]
            value = Path(value) if layout == "librispeech_root" else commonvoice_tsvs(Path(value))
        if layout == "manifest":
            items = read_manifest(Path(value), TRANSCRIPT_COLUMNS, NAME)
        elif layout == "librispeech_root":
            items = read_librispeech(Path(value), list(self.extensions), bad, f"{NAME}.{key}")
        else:
            value = _as_paths(value)
            items = read_commonvoice(value, bad)
        if layout != "manifest":
            items = keep_given_with_train(items)
        shown = [str(v) for v in value] if isinstance(value, list) else str(value)
        layout = layout.split("_")[0]
        definition = SPEAKER_DEFINITIONS[layout]
        return items, {"layout": layout, key: shown, "speaker_definition": definition}


def build_transcribed(
    out_dir: str | Path | None = None,
    raw_dir: str | Path | None = None,
    *,
    source: TranscriptSource,
    ctc: CTCOptions,
    split: Fractions,
    speech: SpeechOptions,
    bad: OnBadInput,
) -> tuple[dict[str, Split], dict[str, Any]]:
    """The one CTC builder: ``source.read`` (its items, ``label`` = the raw transcript),
    then steps 1-6 of the module docstring."""
    where = source.where
    policy = bad.policy(where)
    items, info = source.read(raw_dir, policy)
    norm, reduction, fp = ctc.normalization, ctc.time_reduction, speech.params
    items = normalise_transcripts(items, norm, policy)
    pairs = featurize_items(items, fp, None, policy)
    kept = [it for it, _ in pairs]
    split_info = assign_splits(kept, split.val_fraction, split.test_fraction, speech.seed, where)
    train_text = [it.label for it in kept if it.split == "train"]
    vocab = train_units(train_text, ctc.units, ctc.vocab_size)
    splits, stats = encode_targets(pairs, vocab, reduction, policy)
    require_nonempty(
        {k: len(v) for k, v in splits.items()},
        where,
        "add recordings or speakers, or change val_fraction/test_fraction",
    )
    policy.log_summary()
    speakers = split_info.pop("speakers")
    definition = info.get("speaker_definition") if speakers else None
    targets = {
        **vocab.as_meta(),
        "tokenizer": vocab.save(out_dir),
        "text_normalization": norm.as_meta(),
        "time_reduction": reduction,
        "ctc_length_rule": "labels + repeats <= frames // time_reduction",
    }
    labels, normalize = vocab.labels, speech.normalize
    return splits, {
        **speech_meta("ctc", fp, labels, splits, normalize, speakers, definition, targets),
        **split_info,
        "skipped": policy.counts,
        **stats,
        "source": {k: v for k, v in info.items() if k != "speaker_definition"},
    }


def transcribed_builder(name: str, source: TranscriptSource, doc: str) -> Any:
    """``build_<name>``: :func:`build_transcribed` reading ``source`` (its defaults),
    the other option groups shared."""
    builder = dataset_builder(
        name,
        build_transcribed,
        doc,
        source=source,
        ctc=CTCOptions(),
        split=Fractions(),
        speech=SpeechOptions(),
        bad=OnBadInput(),
    )
    return single_thread()(builder)


build_speech_transcripts = transcribed_builder(
    NAME,
    TranscriptFiles(),
    """Transcribed recordings -> CTC dataset (see the module docstring): ONE of
    ``manifest``, ``librispeech_root``, ``commonvoice_tsv`` or ``root``.""",
)
