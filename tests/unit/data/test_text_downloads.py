"""AG News and IMDB builders against the local HTTP server (tests/http_server.py; no
network): raw files and archives, caching, checksum failures."""

from __future__ import annotations

import io
import tarfile
from collections import Counter
from pathlib import Path

import pytest
import torch

from rnnlab.data.splits import SPLITS
from rnnlab.data.text.ag_news import AG_NEWS_LABELS, build_ag_news
from rnnlab.data.text.imdb import build_imdb
from rnnlab.data.text.tokenizer import load_tokenizer
from rnnlab.errors import DataError
from rnnlab.io import sha256_bytes as sha
from tests.http_server import FileServer


def _ag_rows(n_per_class: int, offset: int) -> list[str]:
    words = {1: "election minister", 2: "match goal", 3: "stocks market", 4: "software chip"}
    return [
        f'"{c}","Title {c} {i + offset}","Body about {words[c]} number {i + offset}\\nmore #39;"'
        for c in words
        for i in range(n_per_class)
    ]


def test_ag_news_raw_csvs_and_archive_give_the_same_data(
    tmp_path: Path, http_server: FileServer
) -> None:
    train = "\n".join(_ag_rows(15, 0) + ['"2","only two fields"', '"9","bad","label"']) + "\n"
    test = "\n".join(_ag_rows(3, 1000)) + "\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, text in [("train.csv", train), ("test.csv", test), ("classes.txt", "World\n")]:
            info = tarfile.TarInfo(f"ag_news_csv/{name}")
            info.size = len(text.encode())
            tf.addfile(info, io.BytesIO(text.encode()))
    tgz = buf.getvalue()
    http_server.files.update(
        {"train.csv": train.encode(), "test.csv": test.encode(), "ag_news_csv.tgz": tgz}
    )
    files = {
        "raw_dir": tmp_path / "raw1",
        "train_url": http_server.url("train.csv"),
        "test_url": http_server.url("test.csv"),
        "train_sha256": sha(train.encode()),
        "test_sha256": sha(test.encode()),
        "train_md5": None,
        "test_md5": None,
    }
    splits, meta = build_ag_news(out_dir=tmp_path / "o1", **files, min_frequency=1)
    splits2, meta2 = build_ag_news(
        out_dir=tmp_path / "o2",
        raw_dir=tmp_path / "raw2",
        archive_url=http_server.url("ag_news_csv.tgz"),
        archive_sha256=sha(tgz),
        min_frequency=1,
    )
    n = len(http_server.requests)
    build_ag_news(out_dir=tmp_path / "o3", **files)  # cached raw files: no new download
    assert len(http_server.requests) == n
    assert meta["labels"] == list(AG_NEWS_LABELS)
    assert meta["skipped"] == {"malformed_row": 1, "invalid_label": 1}
    assert len(splits["train"]) + len(splits["val"]) == 60 and len(splits["test"]) == 12
    assert sorted(Counter(splits["test"].targets).values()) == [3, 3, 3, 3]
    tok = load_tokenizer(tmp_path / "o1")
    assert tok.token_to_id("\\") is None and tok.token_to_id("#") is None  # escapes removed
    for s in SPLITS:
        assert splits[s].targets == splits2[s].targets
        assert all(torch.equal(x, y) for x, y in zip(splits[s].inputs, splits2[s].inputs))


def test_imdb_download_extract_and_cache(tmp_path: Path, http_server: FileServer) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:

        def add(name: str, text: str) -> None:
            info = tarfile.TarInfo(f"aclImdb/{name}")
            data = text.encode()
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))

        for split, n in (("train", 20), ("test", 5)):
            for label, word in (("pos", "wonderful"), ("neg", "dreadful")):
                for i in range(n):
                    add(f"{split}/{label}/{i}_7.txt", f"A {word} film {split} {i}.<br /><br />Yes.")
        add("train/unsup/0_0.txt", "unlabelled")
        add("imdb.vocab", "a\nfilm\n")
    archive = buf.getvalue()
    http_server.files["aclImdb_v1.tar.gz"] = archive
    kw = dict(
        raw_dir=tmp_path / "raw",
        url=http_server.url("aclImdb_v1.tar.gz"),
        sha256=sha(archive),
        min_frequency=1,
    )
    splits, meta = build_imdb(out_dir=tmp_path / "o", **kw)
    splits2, _ = build_imdb(out_dir=tmp_path / "o2", **kw)
    assert len(http_server.requests) == 1  # second build reuses the verified archive
    assert meta["labels"] == ["neg", "pos"] and meta["skipped"] == {}
    assert len(splits["train"]) + len(splits["val"]) == 40 and len(splits["test"]) == 10
    assert not (tmp_path / "raw/imdb/extracted/aclImdb/train/unsup").exists()
    tok = load_tokenizer(tmp_path / "o")
    assert tok.token_to_id("br") is None and tok.token_to_id("<") is None
    assert all(torch.equal(x, y) for x, y in zip(splits["train"].inputs, splits2["train"].inputs))
    with pytest.raises(DataError, match="checksum mismatch"):
        build_imdb(
            out_dir=tmp_path / "o3",
            raw_dir=tmp_path / "raw3",
            url=http_server.url("aclImdb_v1.tar.gz"),
            sha256="1" * 64,
            retries=0,
        )
    assert not list((tmp_path / "raw3").rglob("*.tar.gz*"))
