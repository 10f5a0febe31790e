"""Manifest tables of audio files: ``path,<label or transcript>[,speaker][,split]``.

A manifest is a CSV (``,``) or TSV (``.tsv``/``.tab``: tab) with a header row; blank
rows are ignored. ``path`` is resolved against the manifest's own folder when relative;
``split`` takes any spelling :func:`~rnnlab.data.splits.canonical_split` accepts (train,
val/valid/dev/validation, test). A malformed row (field count, empty path or value,
unknown split) is a DataError naming ``file:line``.

``audio_folder`` reads the value column ``label``; ``speech_transcripts`` reads
``transcript`` (or ``text`` / ``sentence``).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from rnnlab.data.bad_input import location
from rnnlab.data.speech.audio import AudioItem
from rnnlab.data.splits import SPLITS, canonical_split
from rnnlab.errors import DataError

TAB_SUFFIXES = (".tsv", ".tab")


def manifest_delimiter(path: Path) -> str:
    """Tab for ``.tsv``/``.tab`` files, else comma."""
    return "\t" if path.suffix.lower() in TAB_SUFFIXES else ","


def read_manifest(
    manifest: Path, value_columns: Sequence[str] = ("label",), where: str = "audio_folder"
) -> list[AudioItem]:
    """Rows of ``manifest`` as AudioItems whose ``label`` is the first of
    ``value_columns`` present in the header (see the module docstring)."""
    if not manifest.is_file():
        raise DataError(f"{where}.manifest={str(manifest)!r} not found")
    with open(manifest, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f, delimiter=manifest_delimiter(manifest)))
    value = value_columns[0]
    columns = f"path,{value}[,speaker][,split]"
    if not rows:
        raise DataError(f"{manifest}: empty manifest; expected a header {columns}")
    header = [h.strip().lower() for h in rows[0]]
    present = [c for c in value_columns if c in header]
    if "path" not in header or not present:
        also = f" (or {' / '.join(value_columns[1:])})" if len(value_columns) > 1 else ""
        raise DataError(
            f"{manifest}: header {rows[0]} must contain 'path' and '{value}'{also} "
            "(optional: 'speaker', 'split')"
        )
    col = {h: i for i, h in enumerate(header)}
    value = present[0]
    items = []
    for n, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        at = location(manifest, n)
        if len(row) != len(header):
            raise DataError(f"{at}: {len(row)} fields, header has {len(header)}")
        cells = {h: (row[i].strip() or None) for h, i in col.items()}
        split = cells.get("split")
        if split is not None and canonical_split(split) is None:
            raise DataError(f"{at}: split={split!r}; valid: {', '.join(SPLITS)}")
        for key in (value, "path"):
            if not cells[key]:
                raise DataError(f"{at}: empty {key}")
        path = Path(cells["path"])
        items.append(
            AudioItem(
                path if path.is_absolute() else manifest.parent / path,
                cells[value],
                cells.get("speaker"),
                canonical_split(split) if split is not None else None,
                f"{at} ({path})",
            )
        )
    return items
