"""Bring your own audio: ``<root>/<label>/*.wav`` folders or a manifest CSV.

Where each file goes, in order of precedence:

1. the manifest's ``split`` column (any spelling :func:`~rnnlab.data.splits.canonical_split`
   accepts: train, val/valid/dev/validation, test);
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

import csv
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rnnlab.data.bad_input import BadInput, check_mode, location
from rnnlab.data.format import Split
from rnnlab.data.speech.audio import AUDIO_EXTENSIONS, AudioItem, featurize_items, group_splits
from rnnlab.data.speech.features import FeatureParams, normalize_splits, single_thread
from rnnlab.data.splits import (
    SPLITS,
    canonical_split,
    check_fractions,
    hash_split,
    name_list,
    require_nonempty,
    shared_groups,
    split_groups,
)
from rnnlab.errors import DataError

log = logging.getLogger(__name__)
MANIFEST_COLUMNS = "path,label[,speaker][,split]"


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


def read_manifest(manifest: Path) -> list[AudioItem]:
    """Rows of a CSV with a ``path,label[,speaker][,split]`` header (blank rows ignored).

    Relative paths are resolved against the manifest's folder. A malformed row (field
    count, empty label or path, unknown split) is a DataError naming ``file:line``.
    """
    if not manifest.is_file():
        raise DataError(f"audio_folder.manifest={str(manifest)!r} not found")
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise DataError(f"{manifest}: empty manifest; expected a header {MANIFEST_COLUMNS}")
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
        where = location(manifest, n)
        if len(row) != len(header):
            raise DataError(f"{where}: {len(row)} fields, header has {len(header)}")
        cells = {h: (row[i].strip() or None) for h, i in col.items()}
        split = cells.get("split")
        if split is not None and canonical_split(split) is None:
            raise DataError(f"{where}: split={split!r}; valid: {', '.join(SPLITS)}")
        for key in ("label", "path"):
            if not cells[key]:
                raise DataError(f"{where}: empty {key}")
        path = Path(cells["path"])
        items.append(
            AudioItem(
                path if path.is_absolute() else manifest.parent / path,
                cells["label"],
                cells.get("speaker"),
                canonical_split(split) if split is not None else None,
                f"{where} ({path})",
            )
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


def assign_splits(
    items: list[AudioItem], val_fraction: float, test_fraction: float, seed: int, where: str
) -> dict[str, list[str]] | None:
    """Fill every ``item.split`` (see the module docstring); the speakers of each split,
    or None when speakers are unknown (hash split)."""
    with_speaker = [it for it in items if it.speaker is not None]
    if not with_speaker:
        check_fractions(val_fraction, test_fraction, where)
        for it in items:
            if it.split is None:
                it.split = hash_split(f"{it.label}/{it.path.name}", val_fraction, test_fraction)
        return None
    if len(with_speaker) != len(items):
        missing = next(it for it in items if it.speaker is None)
        raise DataError(
            f"{missing.where}: no speaker, but other entries have one; give every "
            "entry a speaker or none"
        )
    unsplit = sorted({it.speaker for it in items if it.split is None})
    mixed = sorted(set(unsplit) & {it.speaker for it in items if it.split is not None})
    if mixed:
        raise DataError(
            f"{where}: speaker(s) {name_list(mixed)} have entries with and without a split; "
            "give all of a speaker's entries a split, or none"
        )
    if unsplit:
        assignment = split_groups(unsplit, val_fraction, test_fraction, seed)
        split_of = {s: k for k, ss in assignment.items() for s in ss}
        for it in items:
            if it.split is None:
                it.split = split_of[it.speaker]
    speakers = {k: sorted({it.speaker for it in items if it.split == k}) for k in SPLITS}
    warn_shared_speakers(speakers, where)
    return speakers


def warn_shared_speakers(speakers: dict[str, list[str]], where: str) -> None:
    """One warning naming every pair of splits that shares speakers (given splits only:
    assigned ones are disjoint by construction)."""
    shared = shared_groups(speakers)
    if shared:
        pairs = "; ".join(
            f"{pair}: {len(names)} ({name_list(names)})" for pair, names in shared.items()
        )
        log.warning("%s: the given splits share speakers, %s", where, pairs)


# --------------------------------------------------------------------------- builder
@single_thread()
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
    check_mode(on_bad_input, "audio_folder")
    if (root is None) == (manifest is None):
        raise DataError(
            f"audio_folder: give exactly one of root= (<root>/<label>/*.wav) or "
            f"manifest= (CSV {MANIFEST_COLUMNS}); got root={root!r}, manifest={manifest!r}"
        )
    where = str(manifest or root)
    bad = BadInput(on_bad_input, where)
    fp = FeatureParams(**(features or {}))
    regex = speaker_regex(speaker_pattern, where) if speaker_pattern else None
    if root is not None:
        items = scan_folder(Path(root), extensions, labels)
    else:
        items = read_manifest(Path(manifest))
    if labels is not None and manifest is not None:
        items = _listed_labels(items, labels, bad)
    label_list = list(labels) if labels is not None else sorted({it.label for it in items})
    # Read first, split after: a speaker whose files are all unreadable must not take a slot.
    pairs = featurize_items(items, fp, clip_seconds, bad)
    kept = [it for it, _ in pairs]
    if regex is not None:
        kept = speakers_from_names(kept, regex, bad)
    speakers = assign_splits(kept, val_fraction, test_fraction, seed, where)
    ids = {id(it) for it in kept}
    splits = group_splits([(it, x) for it, x in pairs if id(it) in ids], label_list)
    require_nonempty(
        {k: len(v) for k, v in splits.items()},
        where,
        "add files or speakers, or change val_fraction/test_fraction",
    )
    bad.log_summary()
    return splits, {
        "task": "classification",
        "input_kind": "features",
        "input_dim": fp.dim,
        "labels": label_list,
        "features": fp.as_meta(),
        "normalization": normalize_splits(splits, normalize),
        "speakers": speakers,
        "speaker_definition": "manifest/speaker_pattern" if speakers else None,
        "split_method": "speaker" if speakers else "hash",
        "skipped": bad.counts,
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
