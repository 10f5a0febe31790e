"""Bring your own text as files: ``<root>/<label>/*.txt``, one document per file.

The README's worked example of adding a dataset source: this module plus
``conf/data/text_folders.yaml`` is the whole change. Each sub-folder of ``root`` is a
class (sorted names; folders starting with ``_`` or ``.`` are ignored), each ``*.txt``
file in it one example. Splits come from the sha256 of the normalised text
(:func:`rnnlab.data.splits.hash_split`); unreadable or empty files follow
``on_bad_input`` (skip and count, or stop naming the file).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from rnnlab.data.bad_input import BadInput, OnBadInput, location
from rnnlab.data.format import Split
from rnnlab.data.options import Fractions, takes
from rnnlab.data.text.encode import EncodeOptions, assemble, normalise_text, split_by_hash
from rnnlab.errors import DataError


def read_text_folders(root: Path, bad: BadInput) -> list[tuple[str, str]]:
    """(text, label) for every good ``<root>/<label>/*.txt``, in a sorted, stable order."""
    if not root.is_dir():
        raise DataError(f"text_folders.root={str(root)!r} is not a directory")
    labels = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(("_", ".")))
    if not labels:
        raise DataError(f"{root}: no <label>/ sub-folders; expected <root>/<label>/*.txt")
    out = []
    for folder in labels:
        for path in sorted(folder.glob("*.txt")):
            try:
                text = normalise_text(path.read_bytes().decode("utf-8"))
            except UnicodeDecodeError:
                bad("invalid_utf8", location(path), "undecodable bytes", "files must be UTF-8")
                continue
            if not text:
                bad("empty_text", location(path), "no text", "a document must be non-empty")
                continue
            out.append((text, folder.name))
    return out


@takes("text_folders", encode=EncodeOptions(vocab_size=20000), split=Fractions(), bad=OnBadInput())
def build_text_folders(
    out_dir: str | Path,
    root: str | Path,
    *,
    encode: EncodeOptions,
    split: Fractions,
    bad: OnBadInput,
) -> tuple[dict[str, Split], dict[str, Any]]:
    """Classify documents by the folder they sit in; see the module docstring."""
    name = "text_folders"
    skipped: Counter = Counter()
    policy = bad.policy(name, skipped)
    items = read_text_folders(Path(root), policy)
    policy.log_summary()
    labels = sorted({label for _, label in items})
    examples = split_by_hash(items, labels, split.val_fraction, split.test_fraction)
    source = {"root": str(root), "split": "sha256(text)"}
    return assemble(name, out_dir, examples, labels, encode, skipped=skipped, source=source)
