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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnlab.data.archives import extract_once
from rnnlab.data.bad_input import BadInput, OnBadInput, location
from rnnlab.data.download import fetch
from rnnlab.data.format import Split
from rnnlab.data.options import takes
from rnnlab.data.text.encode import EncodeOptions, Upstream, assemble, normalise_text
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


@dataclass(frozen=True)
class AgNewsFiles:
    """Where the two CSVs come from: ``train_url``/``test_url``, pinned by
    ``*_sha256`` or else by the published ``*_md5``; or, with ``archive_url``, an
    ``ag_news_csv`` .tgz/.zip holding both (pinned by ``archive_sha256``)."""

    train_url: str = AG_NEWS_URLS["train"]
    test_url: str = AG_NEWS_URLS["test"]
    train_sha256: str | None = None
    test_sha256: str | None = None
    train_md5: str | None = AG_NEWS_MD5["train"]
    test_md5: str | None = AG_NEWS_MD5["test"]
    archive_url: str | None = None
    archive_sha256: str | None = None

    def download(self, raw: Path, retries: int) -> tuple[dict[str, Path], dict[str, Any]]:
        """The train/test CSVs (downloaded, or unpacked from the archive) and their source."""
        if self.archive_url:
            dest = raw / Path(self.archive_url.split("?")[0]).name
            archive = fetch(self.archive_url, self.archive_sha256, dest, retries=retries)
            target = extract_once(archive, raw / "extracted")
            paths = {s: _find_one(target, f"{s}.csv", "ag_news") for s in ("train", "test")}
            return paths, {"archive_url": self.archive_url, "archive_sha256": self.archive_sha256}
        urls = {"train": self.train_url, "test": self.test_url}
        sha256 = {"train": self.train_sha256, "test": self.test_sha256}
        md5 = {"train": self.train_md5, "test": self.test_md5}
        paths = {
            s: fetch(urls[s], sha256[s], raw / f"{s}.csv", md5=md5[s], retries=retries)
            for s in ("train", "test")
        }
        return paths, {"urls": urls, "sha256": sha256, "md5": md5}


@takes(
    "ag_news",
    encode=EncodeOptions(vocab_size=30000, min_frequency=2, max_length=128),
    files=AgNewsFiles(),
    upstream=Upstream(val_fraction=0.05),
    bad=OnBadInput(),
)
def build_ag_news(
    out_dir: str | Path,
    raw_dir: str | Path = "data/raw",
    *,
    files: AgNewsFiles,
    encode: EncodeOptions,
    upstream: Upstream,
    bad: OnBadInput,
) -> tuple[dict[str, Split], dict[str, Any]]:
    """AG News topic classification (4 classes), downloaded into ``<raw_dir>/ag_news/``.

    No sha256 is published for the raw CSVs, so they are pinned by their published
    MD5 and a warning says the sha256 is unverified; pass ``*_sha256`` to pin it.
    With ``archive_url`` the CSVs come from that archive instead. Val is carved from
    train by text hash; bad rows follow ``on_bad_input``.
    """
    name = "ag_news"
    skipped: Counter = Counter()
    policy = bad.policy(name, skipped)
    paths, source = files.download(Path(raw_dir) / "ag_news", upstream.retries)
    train = read_ag_news_csv(paths["train"], policy)
    test = read_ag_news_csv(paths["test"], policy)
    policy.log_summary()
    source["files"] = {s: str(p) for s, p in paths.items()}
    source["split"] = upstream.rule
    examples = upstream.examples(train, test)
    return assemble(name, out_dir, examples, AG_NEWS_LABELS, encode, skipped=skipped, source=source)
