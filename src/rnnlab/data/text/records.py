"""Reading labelled records from CSV/TSV (with a header) and JSONL files, line by line.

The format follows the extension (``.csv`` comma, ``.tsv``/``.tab`` tab, ``.jsonl``/
``.ndjson`` one JSON object per line) unless a delimiter is given. Every record keeps
the line it starts on, so a bad one can be reported as ``file:line``.

CSV lines are decoded with ``surrogateescape``: one undecodable byte marks only its
row (``invalid_utf8``) instead of aborting the whole file. TSV is read without quoting
(quotes are text). Blank lines are not records. A UTF-8 BOM is dropped.

Bad records go to the shared :class:`~rnnlab.data.bad_input.BadInput` policy (skip and
count, or raise naming file, line, value and what is valid): ``missing_text``,
``empty_text``, ``missing_label``, ``invalid_split``, ``invalid_utf8``,
``invalid_json``.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from rnnlab.data.bad_input import BadInput, location
from rnnlab.data.splits import SPLIT_ALIASES, canonical_split
from rnnlab.data.text.encode import normalise_text
from rnnlab.errors import DataError

JSONL_SUFFIXES = (".jsonl", ".ndjson")
DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
_SURROGATE = re.compile("[\udc80-\udcff]")


class Record(NamedTuple):
    """One good record: normalised text, label, split (None: not given) and its line."""

    text: str
    label: str
    split: str | None
    line: int


def table_format(path: Path, delimiter: str | None = None) -> str | None:
    """The delimiter of ``path`` (None for JSONL), from ``delimiter`` or the extension."""
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        fmt = None
    elif delimiter is not None:
        fmt = delimiter
    elif suffix in DELIMITERS:
        fmt = DELIMITERS[suffix]
    else:
        raise DataError(
            f"{path}: cannot tell the format from the extension {suffix!r}; valid: .csv, "
            f".tsv, .tab, .jsonl, .ndjson (or set delimiter=...)"
        )
    if not path.is_file():
        raise DataError(f"{path}: file not found (cwd-relative paths resolve from {Path.cwd()})")
    return fmt


def csv_rows(path: Path, delimiter: str = ",") -> Iterator[tuple[int, list[str] | None, list[str]]]:
    """Yield (line, row or None if it holds invalid UTF-8, raw fields) of a CSV/TSV file.

    A quoted multi-line field keeps the line number of its row's first line.
    """
    csv.field_size_limit(2**31 - 1)
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter, quoting=quoting)
        prev = 0
        for row in reader:
            line, prev = prev + 1, reader.line_num
            if line == 1 and row:
                row[0] = row[0].removeprefix("\ufeff")
            if not row or all(not c.strip() for c in row):
                continue  # blank line: not a record
            bad = any(_SURROGATE.search(c) for c in row)
            yield line, (None if bad else row), row


def undecodable(raw: list[str]) -> str:
    """The first field holding undecodable bytes, shown as those bytes (for messages)."""
    value = next(c for c in raw if _SURROGATE.search(c))
    return repr(value.encode("utf-8", "surrogateescape"))


@dataclass
class _Checker:
    """Turns raw (text, label, split) fields into a Record, or reports why not."""

    path: Path
    text_column: str
    label_column: str
    split_column: str | None
    bad: BadInput

    def report(self, reason: str, line: int, value: str, valid: str) -> None:
        self.bad(reason, location(self.path, line), f"value {value}", valid)

    def __call__(self, line: int, text: Any, label: Any, split: Any) -> Record | None:
        if text is None:
            return self.report(
                "missing_text", line, "None", f"column {self.text_column!r} is required"
            )
        text = normalise_text(str(text))
        if not text:
            return self.report("empty_text", line, repr(text), "text must be non-empty")
        if label is None or str(label).strip() == "":
            return self.report(
                "missing_label", line, repr(label), f"column {self.label_column!r} is required"
            )
        split_name = None
        if self.split_column:
            split_name = canonical_split(split)
            if split_name is None:
                valid = f"valid {self.split_column!r} values: {', '.join(sorted(SPLIT_ALIASES))}"
                return self.report("invalid_split", line, repr(split), valid)
        return Record(text, str(label).strip(), split_name, line)


def _jsonl_records(check: _Checker) -> Iterator[Record | None]:
    with open(check.path, "rb") as f:
        for line, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                check.report("invalid_utf8", line, repr(raw[:80]), "the file must be UTF-8")
                continue
            except json.JSONDecodeError as e:
                check.report("invalid_json", line, repr(raw[:80]), f"not JSON ({e.msg})")
                continue
            if not isinstance(obj, dict):
                check.report("invalid_json", line, repr(raw[:80]), "each line must be an object")
                continue
            split = obj.get(check.split_column) if check.split_column else None
            yield check(line, obj.get(check.text_column), obj.get(check.label_column), split)


def _csv_records(check: _Checker, delimiter: str) -> Iterator[Record | None]:
    path = check.path
    columns = [check.text_column, check.label_column] + (
        [check.split_column] if check.split_column else []
    )
    rows = csv_rows(path, delimiter)
    try:
        _, header, _ = next(rows)
    except StopIteration:
        raise DataError(f"{path}: empty file; expected a header with {columns}") from None
    if header is None:
        raise DataError(f"{path}:1: the header is not valid UTF-8")
    header = [h.strip() for h in header]
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(
            f"{path}: column(s) {missing} not in the header; available columns: {header}"
        )
    ti, li = header.index(check.text_column), header.index(check.label_column)
    si = header.index(check.split_column) if check.split_column else None
    for line, row, raw in rows:
        if row is None:
            check.report("invalid_utf8", line, undecodable(raw), "the file must be UTF-8")
            continue
        fields = [row[i] if i is not None and i < len(row) else None for i in (ti, li, si)]
        yield check(line, *fields)


def read_records(
    path: Path,
    text_column: str,
    label_column: str,
    split_column: str | None,
    delimiter: str | None,
    bad: BadInput,
) -> list[Record]:
    """Every good record of one CSV/TSV/JSONL file, in file order."""
    fmt = table_format(path, delimiter)
    check = _Checker(path, text_column, label_column, split_column, bad)
    records = _jsonl_records(check) if fmt is None else _csv_records(check, fmt)
    return [r for r in records if r is not None]
