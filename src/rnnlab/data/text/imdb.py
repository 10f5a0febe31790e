"""IMDB movie-review sentiment (neg/pos; 25k train / 25k test upstream), downloaded.

``aclImdb_v1.tar.gz`` (sha256-pinned) is fetched into ``<raw_dir>/imdb/`` by
:func:`rnnlab.data.download.fetch`, unpacked once by
:func:`rnnlab.data.archives.extract_once` (without the unlabelled ``unsup`` reviews),
and ``aclImdb/{train,test}/{neg,pos}/*.txt`` are read, one review per file (``<br />``
becomes a space). Val is carved from train by text hash.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from rnnlab.data.archives import extract_once
from rnnlab.data.bad_input import BadInput, OnBadInput, location
from rnnlab.data.download import fetch
from rnnlab.data.format import Split
from rnnlab.data.options import takes
from rnnlab.data.text.encode import EncodeOptions, Upstream, assemble, normalise_text
from rnnlab.errors import DataError

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
IMDB_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
IMDB_LABELS = ("neg", "pos")
_BREAK = re.compile(r"<br\s*/?>")


def labelled_reviews(member: str) -> bool:
    """The archive members to unpack: everything but the unlabelled ``unsup`` reviews."""
    return "/unsup/" not in f"/{member}"


def read_imdb_dir(split_dir: Path, bad: BadInput) -> list[tuple[str, int]]:
    """(review text, 0 neg / 1 pos) of every good ``<split_dir>/{neg,pos}/*.txt``."""
    out = []
    for y, label in enumerate(IMDB_LABELS):
        folder = split_dir / label
        if not folder.is_dir():
            raise DataError(f"{folder}: missing; an aclImdb split needs {list(IMDB_LABELS)} dirs")
        for path in sorted(folder.glob("*.txt")):
            data = path.read_bytes()
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as e:
                value = repr(data[max(e.start - 10, 0) : e.end + 10])
                bad("invalid_utf8", location(path, 1), f"value {value}", "the file must be UTF-8")
                continue
            text = normalise_text(_BREAK.sub(" ", text))
            if not text:
                hint = "a review must be non-empty"
                bad("empty_text", location(path, 1), f"value {text!r}", hint)
                continue
            out.append((text, y))
    return out


def _find_acl_imdb(archive: Path, extracted: Path) -> Path:
    """The one directory under ``extracted`` holding ``train/pos`` and ``test``."""
    candidates = sorted(
        p.parent
        for p in extracted.rglob("train")
        if p.is_dir() and (p / "pos").is_dir() and (p.parent / "test").is_dir()
    )
    if len(candidates) != 1:
        raise DataError(
            f"{archive}: expected one aclImdb/ directory with train/ and test/ inside "
            f"{extracted}, found {[str(c) for c in candidates]}"
        )
    return candidates[0]


@takes(
    "imdb",
    encode=EncodeOptions(vocab_size=30000, min_frequency=2, max_length=400),
    upstream=Upstream(),
    bad=OnBadInput(),
)
def build_imdb(
    out_dir: str | Path,
    raw_dir: str | Path = "data/raw",
    url: str = IMDB_URL,
    sha256: str | None = IMDB_SHA256,
    *,
    encode: EncodeOptions,
    upstream: Upstream,
    bad: OnBadInput,
) -> tuple[dict[str, Split], dict[str, Any]]:
    """IMDB movie-review sentiment (neg/pos), downloaded into ``<raw_dir>/imdb/``.

    The archive is verified against ``sha256`` and unpacked once (a marker records its
    sha256); the ``unsup`` reviews are left out. Val is carved from train by text hash;
    bad reviews (invalid UTF-8, empty) follow ``on_bad_input``.
    """
    name = "imdb"
    raw = Path(raw_dir) / "imdb"
    skipped: Counter = Counter()
    policy = bad.policy(name, skipped)
    dest = raw / Path(url.split("?")[0]).name
    archive = fetch(url, sha256, dest, retries=upstream.retries)
    base = _find_acl_imdb(archive, extract_once(archive, raw / "extracted", labelled_reviews))
    train = read_imdb_dir(base / "train", policy)
    test = read_imdb_dir(base / "test", policy)
    policy.log_summary()
    source = {"url": url, "sha256": sha256, "dir": str(base), "split": upstream.rule}
    examples = upstream.examples(train, test)
    return assemble(name, out_dir, examples, IMDB_LABELS, encode, skipped=skipped, source=source)
