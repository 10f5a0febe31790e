"""Bring your own labelled text: ``build_csv`` over CSV/TSV (with a header) or JSONL.

Splits, in order of precedence:

1. separate ``train_path``/``val_path``/``test_path`` files; a missing val or test is
   carved from train by text hash (:func:`rnnlab.data.text.encode.carve`);
2. a ``split_column`` (train/val/test, or any alias of
   :data:`rnnlab.data.splits.SPLIT_ALIASES`: valid, validation, dev, testing, ...);
3. else a text-hash split of ``path`` (one file or a list).

Labels are those of the train split, sorted (numerically when they are numbers); a
val/test record whose label never occurs in train is bad input (``unseen_label``).
Records are read by :mod:`rnnlab.data.text.records`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rnnlab.data.bad_input import BadInput, OnBadInput, location
from rnnlab.data.format import Split
from rnnlab.data.options import Fractions, takes
from rnnlab.data.splits import SPLITS, hash_split
from rnnlab.data.text.encode import EncodeOptions, Examples, as_list, assemble, carve, label_key
from rnnlab.data.text.records import read_records
from rnnlab.errors import DataError

log = logging.getLogger(__name__)

Located = tuple[str, str, Path, int]  # (text, label, file, line)


def _resolve(path: str | Path, where: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"{where}: file {p} not found (relative paths resolve from {Path.cwd()})")
    return p


def _read_split_files(
    name: str,
    given: dict[str, str | None],
    columns: tuple[str, str],
    delimiter: str | None,
    bad: BadInput,
    fractions: tuple[float, float],
) -> tuple[dict[str, list[Located]], dict[str, list[str]], dict[str, str]]:
    """Records of the given train/val/test files; a missing val/test is carved from train."""
    raw: dict[str, list[Located]] = {s: [] for s in SPLITS}
    files: dict[str, list[str]] = {}
    for s, p in given.items():
        if p is None:
            continue
        f = _resolve(p, f"{name}.{s}_path")
        files[s] = [str(f)]
        for r in read_records(f, *columns, None, delimiter, bad):
            raw[s].append((r.text, r.label, f, r.line))
    val_fraction, test_fraction = fractions
    carved = carve(
        raw["train"],
        val_fraction if given["val"] is None else 0.0,
        test_fraction if given["test"] is None else 0.0,
    )
    raw["train"] = carved["train"]
    raw["val"] += carved["val"]
    raw["test"] += carved["test"]
    rule = {s: ("file" if given[s] else "sha256(text) carved from train") for s in SPLITS}
    return raw, files, rule


def _read_paths(
    name: str,
    path: str | Sequence[str] | None,
    columns: tuple[str, str],
    split_column: str | None,
    delimiter: str | None,
    bad: BadInput,
    fractions: tuple[float, float],
) -> tuple[dict[str, list[Located]], dict[str, list[str]], dict[str, str]]:
    """Records of one or more files, split by ``split_column`` or else by text hash."""
    paths = as_list(path) if path is not None else []
    if not paths:
        raise DataError(
            f"{name}: no input given; set path=<file.csv|.tsv|.jsonl> (or a list), or "
            f"train_path=... with optional val_path/test_path"
        )
    raw: dict[str, list[Located]] = {s: [] for s in SPLITS}
    files: dict[str, list[str]] = {}
    for p in paths:
        f = _resolve(p, f"{name}.path")
        files.setdefault("all", []).append(str(f))
        for r in read_records(f, *columns, split_column, delimiter, bad):
            raw[r.split or hash_split(r.text, *fractions)].append((r.text, r.label, f, r.line))
    rule = {s: (f"column {split_column!r}" if split_column else "sha256(text)") for s in SPLITS}
    return raw, files, rule


def _index_labels(
    name: str, raw: dict[str, list[Located]], files: dict[str, list[str]], bad: BadInput
) -> tuple[list[str], Examples]:
    """Labels of the train split (sorted) and every split's records as class indices."""
    labels = sorted({label for _, label, _, _ in raw["train"]}, key=label_key)
    if not labels:
        raise DataError(f"{name}: no usable training records in {files}; skipped {bad.counts}")
    index = {label: i for i, label in enumerate(labels)}
    examples: Examples = {s: [] for s in SPLITS}
    for s in SPLITS:
        for text, label, f, line in raw[s]:
            if label not in index:
                valid = f"label not in the training split; training labels: {labels}"
                bad("unseen_label", location(f, line), f"value {label!r}", valid)
                continue
            examples[s].append((text, index[label]))
    return labels, examples


@takes("csv", encode=EncodeOptions(), split=Fractions(), bad=OnBadInput())
def build_csv(
    out_dir: str | Path,
    raw_dir: str | Path | None = None,
    path: str | Sequence[str] | None = None,
    train_path: str | None = None,
    val_path: str | None = None,
    test_path: str | None = None,
    text_column: str = "text",
    label_column: str = "label",
    split_column: str | None = None,
    delimiter: str | None = None,
    *,
    encode: EncodeOptions,
    split: Fractions,
    bad: OnBadInput,
) -> tuple[dict[str, Split], dict[str, Any]]:
    """Bring your own labelled text: CSV/TSV (with a header) or JSONL.

    Splits come from ``train_path``/``val_path``/``test_path``, else ``split_column``,
    else a text hash of ``path`` (see the module docstring). The delimiter follows the
    extension (.csv ``,``, .tsv/.tab tab, .jsonl/.ndjson JSON lines) unless
    ``delimiter`` is set. Bad records (missing text/label, empty text, invalid UTF-8,
    bad JSON, bad split value, a val/test label never seen in train) are counted in
    ``meta["skipped"]`` with ``on_bad_input=skip``, or raise a DataError naming file,
    line and value with ``on_bad_input=error``. ``raw_dir`` is unused (accepted so every
    data config has the same shape).
    """
    name = "csv"
    skipped: Counter = Counter()
    policy = bad.policy(name, skipped)
    columns, fractions = (text_column, label_column), (split.val_fraction, split.test_fraction)
    if train_path is not None:
        if path is not None or split_column is not None:
            raise DataError(
                f"{name}: give either train_path (+ val_path/test_path) or path "
                f"(+ optional split_column), not both (path={path!r}, train_path={train_path!r})"
            )
        given = {"train": train_path, "val": val_path, "test": test_path}
        raw, files, rule = _read_split_files(name, given, columns, delimiter, policy, fractions)
    else:
        raw, files, rule = _read_paths(
            name, path, columns, split_column, delimiter, policy, fractions
        )
    labels, examples = _index_labels(name, raw, files, policy)
    policy.log_summary()
    train_texts = {t for t, _ in examples["train"]}
    overlap = {s: sum(1 for t, _ in examples[s] if t in train_texts) for s in ("val", "test")}
    if any(overlap.values()):
        log.warning("%s: texts also present in train: %s", name, overlap)
    source = {"files": files, "text_column": text_column, "label_column": label_column}
    return assemble(
        name,
        out_dir,
        examples,
        labels,
        encode,
        skipped=skipped,
        source={**source, "split": rule},
        extra={"overlap_with_train": overlap},
    )
