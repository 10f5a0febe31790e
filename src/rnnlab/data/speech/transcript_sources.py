"""Where transcribed recordings come from: a manifest, LibriSpeech folders, Common Voice TSVs.

Every reader returns :class:`~rnnlab.data.speech.audio.AudioItem` s whose ``label`` is the
raw transcript (normalised later), with a speaker and a given split where the layout has
them:

* **manifest** — a CSV/TSV ``path,transcript[,speaker][,split]`` (``text`` or ``sentence``
  also name the transcript column; :mod:`~rnnlab.data.speech.manifest`).
* **LibriSpeech** — ``<root>/[<subset>/]<speaker>/<chapter>/<speaker>-<chapter>.trans.txt``
  beside ``<speaker>-<chapter>-<n>.flac``; each line is ``<utterance id> <TRANSCRIPT>``;
  the speaker is the id's first field. Subset folders named ``train-*``, ``dev-*``,
  ``test-*`` are given splits when one of them is a train subset.
* **Common Voice** — TSVs with ``path``, ``sentence`` and ``client_id`` (the speaker)
  columns, audio in ``clips/`` beside the TSV. ``train.tsv``/``dev.tsv``/``test.tsv``
  are given splits when a train TSV is among them; a clip listed twice is counted
  (``duplicate_clip``) and kept once.

:func:`detect_layout` tells LibriSpeech from Common Voice for ``prepare.root``.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from rnnlab.data.bad_input import BadInput, location
from rnnlab.data.speech.audio import AudioItem
from rnnlab.data.splits import canonical_split
from rnnlab.errors import DataError

TRANSCRIPT_COLUMNS = ("transcript", "text", "sentence")
LIBRISPEECH_SUFFIX = ".trans.txt"
COMMONVOICE_SPLIT_TSVS = ("train.tsv", "dev.tsv", "test.tsv")
COMMONVOICE_ALL_TSV = "validated.tsv"


def subset_split(name: str) -> str | None:
    """train/val/test of a subset or file name (``train-clean-100`` -> train, ``dev`` ->
    val, ``test-other`` -> test), else None."""
    return canonical_split(name.split("-")[0].split("_")[0])


def keep_given_with_train(items: list[AudioItem]) -> list[AudioItem]:
    """Keep splits read from the layout (subset folders, TSV names) only when a train
    part exists; else leave every split open (assigned by speaker or hash)."""
    if not any(it.split == "train" for it in items):
        for it in items:
            it.split = None
    return items


# --------------------------------------------------------------------------- LibriSpeech
def read_librispeech(
    root: Path, extensions: Sequence[str], bad: BadInput, where: str = "librispeech_root"
) -> list[AudioItem]:
    """Every utterance of every ``*.trans.txt`` under ``root`` (sorted by path), its split
    from the subset folder's name (see :func:`keep_given_with_train`)."""
    if not root.is_dir():
        raise DataError(f"{where}={str(root)!r} is not a directory")
    transcripts = sorted(root.rglob(f"*{LIBRISPEECH_SUFFIX}"))
    if not transcripts:
        raise DataError(
            f"{where}={str(root)!r}: no *{LIBRISPEECH_SUFFIX} files; expected "
            "<root>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt beside the audio"
        )
    items: list[AudioItem] = []
    for trans in transcripts:
        parts = trans.relative_to(root).parts
        subset = parts[-4] if len(parts) >= 4 else root.name
        split = subset_split(subset)
        for n, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            utt, _, text = line.strip().partition(" ")
            at = location(trans, n)
            if not text.strip() or utt.count("-") != 2:
                bad(
                    "bad_transcript_line",
                    at,
                    f"{line.strip()[:60]!r}",
                    "valid: '<speaker>-<chapter>-<n> <TRANSCRIPT>'",
                )
                continue
            audio = _audio_file(trans.parent, utt, extensions)
            items.append(AudioItem(audio, text, utt.split("-")[0], split, f"{at} ({audio.name})"))
    return items


def _audio_file(folder: Path, stem: str, extensions: Sequence[str]) -> Path:
    """``folder/stem<ext>`` for the first extension that exists (else the first one)."""
    for ext in extensions:
        if (folder / f"{stem}{ext}").is_file():
            return folder / f"{stem}{ext}"
    return folder / f"{stem}{extensions[0]}"


# --------------------------------------------------------------------------- Common Voice
def read_commonvoice(tsvs: Sequence[Path], bad: BadInput) -> list[AudioItem]:
    """Rows of Common Voice TSVs (``path``, ``sentence``, ``client_id``), audio in
    ``<tsv folder>/clips/``; the split from the TSV's name (train/dev/test; see
    :func:`keep_given_with_train`)."""
    items: list[AudioItem] = []
    seen: set[Path] = set()
    for tsv in tsvs:
        if not tsv.is_file():
            raise DataError(f"commonvoice_tsv={str(tsv)!r} not found")
        split = subset_split(tsv.stem)
        with open(tsv, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            missing = {"path", "sentence"} - set(reader.fieldnames or [])
            if missing:
                raise DataError(
                    f"{tsv}: header {reader.fieldnames} lacks {sorted(missing)}; a Common "
                    "Voice TSV has path, sentence and client_id columns"
                )
            for n, row in enumerate(reader, start=2):
                if not (row.get("path") or "").strip():
                    bad("empty_path", location(tsv, n), "no clip name in the path column")
                    continue
                audio = tsv.parent / "clips" / row["path"].strip()
                if audio in seen:
                    bad("duplicate_clip", location(tsv, n), f"{audio.name} listed again")
                    continue
                seen.add(audio)
                speaker = (row.get("client_id") or "").strip() or None
                at = f"{location(tsv, n)} ({audio.name})"
                items.append(AudioItem(audio, row.get("sentence") or "", speaker, split, at))
    if not items:
        raise DataError(f"commonvoice_tsv={[str(t) for t in tsvs]}: no rows")
    if any(it.speaker for it in items) and not all(it.speaker for it in items):
        bad_rows = sum(1 for it in items if not it.speaker)
        raise DataError(f"{tsvs[0]}: {bad_rows} row(s) have no client_id; give all or none")
    return items


def commonvoice_tsvs(folder: Path) -> list[Path]:
    """The TSVs of a Common Voice folder: train/dev/test when train.tsv exists, else
    validated.tsv."""
    split_tsvs = [folder / n for n in COMMONVOICE_SPLIT_TSVS if (folder / n).is_file()]
    if (folder / "train.tsv").is_file():
        return split_tsvs
    if (folder / COMMONVOICE_ALL_TSV).is_file():
        return [folder / COMMONVOICE_ALL_TSV]
    raise DataError(
        f"{folder}: no train.tsv or {COMMONVOICE_ALL_TSV}; give prepare.commonvoice_tsv=<file>"
    )


def detect_layout(root: Path) -> str:
    """``librispeech`` (``*.trans.txt`` below ``root``) or ``commonvoice`` (``clips/``
    beside TSVs), else a DataError naming both layouts."""
    if not root.is_dir():
        raise DataError(f"speech_transcripts.root={str(root)!r} is not a directory")
    if next(root.rglob(f"*{LIBRISPEECH_SUFFIX}"), None) is not None:
        return "librispeech"
    if (root / "clips").is_dir() and next(root.glob("*.tsv"), None) is not None:
        return "commonvoice"
    raise DataError(
        f"speech_transcripts.root={str(root)!r}: neither LibriSpeech-style "
        f"(*{LIBRISPEECH_SUFFIX} beside the audio) nor Common Voice-style (clips/ beside "
        "*.tsv); give prepare.manifest=<csv with path,transcript[,speaker][,split]>"
    )
