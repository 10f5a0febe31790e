"""Bring your own audio: ``<root>/<label>/*.wav`` folders or a manifest CSV.

The source: ``root`` or ``manifest`` (:mod:`~rnnlab.data.speech.manifest`; not both);
with neither, the documented default folder ``<raw_dir>/audio_folder``.

Where each file goes (:mod:`~rnnlab.data.speech.assign`), in order of precedence:

1. the manifest's ``split`` column (any spelling :func:`~rnnlab.data.splits.canonical_split`
   accepts: train, val/valid/dev/validation, test); given train and test without val,
   val is carved from train (by speaker when speakers are known, else by hash);
2. else, when speakers are known (a manifest ``speaker`` column, or ``speaker_pattern``
   on the file name), whole speakers go to one split
   (:func:`~rnnlab.data.splits.split_groups`, seeded);
3. else the stable hash of ``label/file name``
   (:func:`~rnnlab.data.splits.hash_split`): adding files never moves existing ones.

Files are read before splits are made, so a speaker whose files are all unreadable never
takes a val/test slot. Bad files and rows follow ``on_bad_input``
(:class:`~rnnlab.data.bad_input.BadInput`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rnnlab.data.bad_input import BadInput, OnBadInput
from rnnlab.data.format import Split
from rnnlab.data.options import Fractions, takes
from rnnlab.data.speech.assign import assign_splits
from rnnlab.data.speech.audio import AUDIO_EXTENSIONS, AudioItem, featurize_items, group_splits
from rnnlab.data.speech.features import single_thread, speech_meta
from rnnlab.data.speech.manifest import read_manifest
from rnnlab.data.speech.options import SpeechOptions
from rnnlab.data.splits import require_nonempty
from rnnlab.errors import DataError

log = logging.getLogger(__name__)
MANIFEST_COLUMNS = "path,label[,speaker][,split]"
DEFAULT_FOLDER = "audio_folder"  # <raw_dir>/audio_folder when neither root nor manifest


# --------------------------------------------------------------------------- sources
def scan_folder(
    root: Path, extensions: Sequence[str], labels: Sequence[str] | None
) -> list[AudioItem]:
    """Every ``<root>/<label>/<file>`` with an audio extension, sorted by label and name.

    Without ``labels``, every folder not starting with ``_`` or ``.`` is a class
    (``_background_noise_`` is not); with them, exactly those folders, which must exist.
    """
    if not root.is_dir():
        raise DataError(
            f"audio_folder.root={str(root)!r} is not a directory; expected <root>/<label>/*.wav"
        )
    dirs = sorted(d for d in root.iterdir() if d.is_dir())
    if labels is None:
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
        AudioItem(p, d.name, where=str(p))
        for d in dirs
        for p in sorted(d.iterdir())
        if p.is_file() and p.suffix.lower() in exts
    ]
    if not items:
        raise DataError(
            f"{root}: no audio files ({', '.join(sorted(exts))}) in <root>/<label>/ folders"
        )
    return items


# --------------------------------------------------------------------------- splits
def speaker_regex(pattern: str, where: str) -> re.Pattern[str]:
    """``speaker_pattern`` compiled, or a DataError naming it (before any file is read)."""
    try:
        return re.compile(pattern)
    except re.error as e:
        raise DataError(f"{where}: speaker_pattern={pattern!r} is not a valid regex ({e})") from e


def speakers_from_names(
    items: list[AudioItem], regex: re.Pattern[str], bad: BadInput
) -> list[AudioItem]:
    """Fill ``item.speaker`` from ``regex`` searched in the file name: its
    ``(?P<speaker>...)`` group, else group 1, else the whole match; a name that does
    not match is bad input (``no_speaker_match``)."""
    kept = []
    for item in items:
        if item.speaker is None:
            m = regex.search(item.path.name)
            if not m:
                bad(
                    "no_speaker_match",
                    item.where,
                    f"file name {item.path.name!r} does not match speaker_pattern={regex.pattern!r}",
                    "give every file a speaker, or no speaker_pattern (hash split)",
                )
                continue
            item.speaker = m.groupdict().get("speaker") or (
                m.group(1) if regex.groups else m.group(0)
            )
        kept.append(item)
    return kept


# --------------------------------------------------------------------------- builder
@single_thread()
@takes("audio_folder", split=Fractions(), speech=SpeechOptions(), bad=OnBadInput())
def build_audio_folder(
    out_dir: str | Path | None = None,
    raw_dir: str | Path | None = None,
    root: str | Path | None = None,
    manifest: str | Path | None = None,
    labels: Sequence[str] | None = None,
    speaker_pattern: str | None = None,
    extensions: Sequence[str] = AUDIO_EXTENSIONS,
    clip_seconds: float | None = None,
    *,
    split: Fractions,
    speech: SpeechOptions,
    bad: OnBadInput,
) -> tuple[dict[str, Split], dict[str, Any]]:
    """Bring your own audio: ``<root>/<label>/*.wav`` or a manifest CSV (neither:
    ``<raw_dir>/audio_folder``).

    Manifest columns: ``path,label[,speaker][,split]``; relative paths are resolved against
    the manifest's directory. Any rate, mono or stereo (mixed to mono, resampled). Splits
    are speaker-disjoint when speakers are known (manifest column or ``speaker_pattern``,
    a regex on the file name whose group 1 or ``(?P<speaker>...)`` is the speaker, e.g.
    ``^([0-9a-f]+)_nohash_`` for Speech Commands), else a stable hash of label/file name.
    Bad files are skipped and counted in ``meta["skipped"]`` by reason
    (``on_bad_input=skip``) or raise a DataError naming the file (``error``).
    """
    if root is not None and manifest is not None:
        raise DataError(
            f"audio_folder: give one of root= (<root>/<label>/*.wav) or "
            f"manifest= (CSV {MANIFEST_COLUMNS}), not both; got root={root!r}, "
            f"manifest={manifest!r}"
        )
    if root is None and manifest is None:
        root = Path(raw_dir or "data/raw") / DEFAULT_FOLDER
    where = str(manifest or root)
    policy, fp = bad.policy(where), speech.params
    regex = speaker_regex(speaker_pattern, where) if speaker_pattern else None
    if root is not None:
        items = scan_folder(Path(root), extensions, labels)
    else:
        items = read_manifest(Path(manifest))
    if labels is not None and manifest is not None:
        items = _listed_labels(items, labels, policy)
    label_list = list(labels) if labels is not None else sorted({it.label for it in items})
    # Read first, split after: a speaker whose files are all unreadable must not take a slot.
    pairs = featurize_items(items, fp, clip_seconds, policy)
    kept = [it for it, _ in pairs]
    if regex is not None:
        kept = speakers_from_names(kept, regex, policy)
    split_info = assign_splits(kept, split.val_fraction, split.test_fraction, speech.seed, where)
    speakers = split_info.pop("speakers")
    ids = {id(it) for it in kept}
    splits = group_splits([(it, x) for it, x in pairs if id(it) in ids], label_list)
    require_nonempty(
        {k: len(v) for k, v in splits.items()},
        where,
        "add files or speakers, or change val_fraction/test_fraction",
    )
    policy.log_summary()
    definition = "manifest/speaker_pattern" if speakers else None
    return splits, {
        **speech_meta(
            "classification", fp, label_list, splits, speech.normalize, speakers, definition
        ),
        **split_info,
        "skipped": policy.counts,
        "source": {
            "root": str(root) if root else None,
            "manifest": str(manifest) if manifest else None,
            "clip_seconds": clip_seconds,
        },
    }


def _listed_labels(items: list[AudioItem], labels: Sequence[str], bad: BadInput) -> list[AudioItem]:
    """Manifest rows whose label is in ``labels``; others are bad input (``unlisted_label``)."""
    listed = set(labels)
    for it in items:
        if it.label not in listed:
            bad("unlisted_label", it.where, f"label {it.label!r}", f"valid: labels={list(labels)}")
    return [it for it in items if it.label in listed]
