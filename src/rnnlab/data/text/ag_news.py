"""AG News topic classification (4 classes; 120k train / 7.6k test upstream), downloaded.

The raw files are the classic ``ag_news_csv`` layout: ``train.csv``/``test.csv`` rows
of (class index 1-4, title, description), no header. They are fetched into
``<raw_dir>/ag_news/`` by :func:`rnnlab.data.download.fetch` (reused when already
there), or, with ``archive_url``, unpacked once from an ``ag_news_csv`` .tgz/.zip by
:func:`rnnlab.data.archives.extract_once`. Val is carved from train by text hash.

The corpus escapes text oddly: a literal backslash-n for newlines, and HTML entities
that lost their ``&`` ("Apple #39;s", "quot;yes quot;") next to proper ones;
:func:`clean_ag_news` turns all of them back into the characters they stand for.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from pathlib import Path
from typing import Any

from rnnlab.data.archives import extract_once
from rnnlab.data.bad_input import BadInput, location
from rnnlab.data.download import fetch
from rnnlab.data.format import Split
from rnnlab.data.splits import check_fractions
from rnnlab.data.text.encode import EncodeOptions, assemble, carve, normalise_text
from rnnlab.data.text.records import csv_rows, undecodable
from rnnlab.errors import DataError

AG_NEWS_URLS = {
    "train": "https://raw.githubusercontent.com/mhjabreel/CharCnn_Keras/master/data/ag_news_csv/train.csv",
    "test": "https://raw.githubusercontent.com/mhjabreel/CharCnn_Keras/master/data/ag_news_csv/test.csv",
}
# Published MD5s of those files (as pinned by torchtext); no published sha256 is known.
AG_NEWS_MD5 = {
    "train": "b1a00f826fdfbd249f79597b59e1dc12",
    "test": "d52ea96a97a2d943681189a97654912d",
}
AG_NEWS_LABELS = ("World", "Sports", "Business", "Sci/Tech")

_NUMERIC_ENTITY = re.compile(r"( ?)#(\d{2,5});")
_NAMED_ENTITY = re.compile(r"(?<![&\w])(quot|amp|lt|gt);")


def clean_ag_news(text: str) -> str:
    """Undo AG News escaping: literal backslash-n, and HTML entities that lost their '&'."""
    text = text.replace("\\n", " ").replace("\\", " ")
    text = _NUMERIC_ENTITY.sub(
        lambda m: ("" if m.group(2) == "39" else m.group(1)) + html.unescape(f"&#{m.group(2)};"),
        text,
    )
    text = _NAMED_ENTITY.sub(lambda m: html.unescape(f"&{m.group(1)};"), text)
    return html.unescape(text)


def read_ag_news_csv(path: Path, bad: BadInput) -> list[tuple[str, int]]:
    """(text, class index 0-3) of every good row: title and description joined."""
    if not path.is_file():
        raise DataError(f"{path}: file not found (cwd-relative paths resolve from {Path.cwd()})")
    out = []
    valid = f"expected 3 fields: class index 1-{len(AG_NEWS_LABELS)}, title, description"
    classes = {str(i + 1) for i in range(len(AG_NEWS_LABELS))}
    for line, row, raw in csv_rows(path, ","):
        where = location(path, line)
        if row is None:
            bad("invalid_utf8", where, f"value {undecodable(raw)}", "the file must be UTF-8")
            continue
        if len(row) != 3:
            bad("malformed_row", where, f"value {repr(row)[:120]}", valid)
            continue
        label = row[0].strip()
        if label not in classes:
            bad("invalid_label", where, f"value {label!r}", valid)
            continue
        text = normalise_text(clean_ag_news(f"{row[1]} {row[2]}"))
        if not text:
            hint = "title or description must be non-empty"
            bad("empty_text", where, f"value {text!r}", hint)
            continue
        out.append((text, int(label) - 1))
    return out


def _find_one(root: Path, filename: str, where: str) -> Path:
    hits = sorted(p for p in root.rglob(filename) if p.is_file())
    if len(hits) != 1:
        raise DataError(
            f"{where}: expected exactly one {filename} under {root}, found {[str(h) for h in hits]}"
        )
    return hits[0]


def _fetch_files(
    raw: Path,
    urls: dict[str, str],
    sha256: dict[str, str | None],
    md5: dict[str, str | None],
    archive: tuple[str | None, str | None],
    retries: int,
) -> tuple[dict[str, Path], dict[str, Any]]:
    """The train/test CSVs (downloaded, or unpacked from the archive) and their source."""
    archive_url, archive_sha256 = archive
    if archive_url:
        dest = raw / Path(archive_url.split("?")[0]).name
        target = extract_once(
            fetch(archive_url, archive_sha256, dest, retries=retries), raw / "extracted"
        )
        paths = {s: _find_one(target, f"{s}.csv", "ag_news") for s in ("train", "test")}
        return paths, {"archive_url": archive_url, "archive_sha256": archive_sha256}
    paths = {
        s: fetch(urls[s], sha256[s], raw / f"{s}.csv", md5=md5[s], retries=retries)
        for s in ("train", "test")
    }
    return paths, {"urls": urls, "sha256": sha256, "md5": md5}


def build_ag_news(
    out_dir: str | Path,
    raw_dir: str | Path = "data/raw",
    train_url: str = AG_NEWS_URLS["train"],
    test_url: str = AG_NEWS_URLS["test"],
    train_sha256: str | None = None,
    test_sha256: str | None = None,
    train_md5: str | None = AG_NEWS_MD5["train"],
    test_md5: str | None = AG_NEWS_MD5["test"],
    archive_url: str | None = None,
    archive_sha256: str | None = None,
    val_fraction: float = 0.05,
    on_bad_input: str = "skip",
    tokenizer: str = "word",
    vocab_size: int | None = 30000,
    min_frequency: int = 2,
    lowercase: bool = True,
    max_length: int | None = 128,
    retries: int = 3,
) -> tuple[dict[str, Split], dict[str, Any]]:
    """AG News topic classification (4 classes), downloaded into ``<raw_dir>/ag_news/``.

    No sha256 is published for the raw CSVs, so they are pinned by their published
    MD5 and a warning says the sha256 is unverified; pass ``*_sha256`` to pin it.
    With ``archive_url`` the CSVs come from that archive instead. Val is carved from
    train by text hash; bad rows follow ``on_bad_input``.
    """
    name = "ag_news"
    check_fractions(val_fraction, 0.0, name)
    skipped: Counter = Counter()
    bad = BadInput(on_bad_input, name, skipped)
    paths, source = _fetch_files(
        Path(raw_dir) / "ag_news",
        {"train": train_url, "test": test_url},
        {"train": train_sha256, "test": test_sha256},
        {"train": train_md5, "test": test_md5},
        (archive_url, archive_sha256),
        retries,
    )
    train = read_ag_news_csv(paths["train"], bad)
    test = read_ag_news_csv(paths["test"], bad)
    bad.log_summary()
    carved = carve(train, val_fraction)
    source["files"] = {s: str(p) for s, p in paths.items()}
    source["split"] = f"upstream train/test; val = sha256(text) < {val_fraction} of train"
    examples = {"train": carved["train"], "val": carved["val"], "test": test}
    options = EncodeOptions(tokenizer, vocab_size, min_frequency, lowercase, max_length)
    return assemble(
        name, out_dir, examples, AG_NEWS_LABELS, options, skipped=skipped, source=source
    )
