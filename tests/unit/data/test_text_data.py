"""Text builders: real chatterbot langid, fixture corpora, bring-your-own tables, downloads.

Downloads go to a local HTTP server (tests/http_server.py); nothing touches
the network.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections import Counter
from pathlib import Path

import pytest
import torch

from rnnlab.data.format import Split, write_processed
from rnnlab.data.splits import SPLITS
from rnnlab.data.text import (
    AG_NEWS_LABELS,
    build_ag_news,
    build_csv,
    build_imdb,
    build_text_langid,
    build_text_topics,
    hash_split,
    load_tokenizer,
    read_conversations,
    train_tokenizer,
)
from rnnlab.errors import DataError
from tests.http_server import serve_files


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode_chars(out_dir: Path, ids: torch.Tensor) -> str:
    """Invert a char tokenizer exactly (every symbol is one vocabulary entry)."""
    inv = {i: t for t, i in load_tokenizer(out_dir).get_vocab().items()}
    return "".join(inv[int(i)] for i in ids)


def split_texts(out_dir: Path, split: Split) -> list[str]:
    return [decode_chars(out_dir, x) for x in split.inputs]


# --------------------------------------------------------------------------- tokenizers


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_tokenizer_special_ids_and_unknowns(kind: str) -> None:
    tok = train_tokenizer(["the cat sat", "the dog sat"] * 3, kind, vocab_size=40)
    assert tok.token_to_id("[PAD]") == 0 and tok.token_to_id("[UNK]") == 1
    ids = tok.encode("zq").ids  # z and q never seen in training
    assert ids and set(ids) == {1}
    with pytest.raises(DataError, match="valid: char, word, bpe"):
        train_tokenizer(["x"], "sentencepiece")


# --------------------------------------------------------------------------- langid


def test_text_langid_real_corpus_split_is_disjoint_and_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    splits, meta = build_text_langid(out_dir=a)
    splits_b, meta_b = build_text_langid(out_dir=b)
    assert meta["labels"] == sorted(meta["labels"]) and len(meta["labels"]) == 8
    assert meta["input_dim"] == load_tokenizer(a).get_vocab_size()
    assert meta["tokenizer"]["file"] == "tokenizer.json" and (a / "tokenizer.json").is_file()
    assert meta["task"] == "classification" and meta["input_kind"] == "tokens"
    assert set(meta["skipped"]) <= {"duplicate", "ambiguous_label", "empty_text", "malformed"}
    assert sum(len(splits[s]) for s in SPLITS) > 5000
    # deterministic: same tensors, same tokenizer file
    assert (a / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes()
    for s in SPLITS:
        assert splits[s].targets == splits_b[s].targets
        assert all(torch.equal(x, y) for x, y in zip(splits[s].inputs, splits_b[s].inputs))
        assert all(x.dtype == torch.int64 and x.dim() == 1 for x in splits[s].inputs)
    # no utterance in two splits; sequences cut at max_length are left out, since two
    # different long answers (code snippets) can share their first 256 characters
    texts = {
        s: {
            decode_chars(a, x) for x in splits[s].inputs if len(x) < meta["tokenizer"]["max_length"]
        }
        for s in SPLITS
    }
    assert not texts["train"] & texts["val"]
    assert not texts["train"] & texts["test"]
    assert not texts["val"] & texts["test"]
    # the character vocabulary comes from train alone
    train_chars = {c for t in split_texts(a, splits["train"]) for c in t}
    vocab = set(load_tokenizer(a).get_vocab()) - {"[PAD]", "[UNK]"}
    assert vocab == train_chars
    # and the whole thing writes in the processed format
    written = write_processed(tmp_path / "proc", splits, meta)
    assert written["counts"]["train"]["total"] == len(splits["train"])


def _write_corpus(root: Path) -> Path:
    (root / "english").mkdir(parents=True)
    (root / "spanish").mkdir()
    (root / "german").mkdir()
    en = ["conversations:"]
    en += [f"- - the cat number {i} sleeps\n  - where is dog {i}?" for i in range(30)]
    en += ["- - Hello there\n  - Yes", "- - Hello   there\n  - No", "- - Hola\n  - '   '"]
    (root / "english" / "a.yml").write_text("\n".join(en) + "\n")
    es = ["conversations:"]
    es += [f"- - el gato número {i} duerme\n  - ¿dónde está el perro {i}?" for i in range(30)]
    es += ["- - Hola\n  - '1984'"]
    (root / "spanish" / "a.yml").write_text("\n".join(es) + "\n")
    (root / "german" / "a.yml").write_text("conversations:\n- - Guten Tag\n  - Wie geht's?\n")
    return root


def test_text_langid_fixture_counts_every_skip(tmp_path: Path) -> None:
    corpus = _write_corpus(tmp_path / "corpus")
    kw = dict(corpus_dir=corpus, languages=["english", "spanish", "german"], min_per_language=5)
    splits, meta = build_text_langid(out_dir=tmp_path / "o", **kw)
    assert meta["labels"] == ["english", "spanish"]
    assert meta["dropped_classes"] == {"german": 2}
    # "Hello   there" repeats "Hello there"; "Hola" is in two languages (2 occurrences);
    # one empty utterance; german's 2 utterances fall below min_per_language
    assert meta["skipped"] == {
        "duplicate": 1,
        "ambiguous_label": 2,
        "empty_text": 1,
        "class_below_min": 2,
    }
    read = 65 + 62 + 2  # non-empty utterances: en 60 + 5, es 60 + 2, de 2
    kept = sum(len(splits[s]) for s in SPLITS)
    assert kept + sum(meta["skipped"].values()) - meta["skipped"]["empty_text"] == read
    all_texts = [t for s in SPLITS for t in split_texts(tmp_path / "o", splits[s])]
    assert "Hola" not in all_texts and Counter(all_texts).most_common(1)[0][1] == 1
    for s in SPLITS:  # every text sits in the split its hash names
        for t in split_texts(tmp_path / "o", splits[s]):
            if "[UNK]" not in t:
                assert hash_split(t) == s
    with pytest.raises(DataError, match="valid: english, german, spanish"):
        build_text_langid(out_dir=tmp_path / "x", corpus_dir=corpus, languages=["klingon"])


def test_read_conversations_keeps_yes_no_and_numbers_as_text(tmp_path: Path) -> None:
    corpus = _write_corpus(tmp_path / "corpus")
    skipped: Counter = Counter()
    en = read_conversations(corpus / "english" / "a.yml", skipped)
    es = read_conversations(corpus / "spanish" / "a.yml", skipped)
    assert {"Yes", "No"} <= set(en) and "1984" in es
    assert skipped == {"empty_text": 1}


def test_text_topics_weights_and_dropped_classes(tmp_path: Path) -> None:
    root = tmp_path / "corpus" / "english"
    root.mkdir(parents=True)
    sizes = {"ai": 60, "food": 30, "money": 3}
    for cat, n in sizes.items():
        lines = ["categories:", f"- {cat}", "conversations:"]
        lines += [f"- - {cat} question {i} here\n  - {cat} answer {i}" for i in range(n)]
        (root / f"{cat}.yml").write_text("\n".join(lines) + "\n")
    splits, meta = build_text_topics(
        out_dir=tmp_path / "o", corpus_dir=tmp_path / "corpus", min_per_class=10
    )
    assert meta["labels"] == ["ai", "food"] and meta["dropped_classes"] == {"money": 6}
    assert meta["skipped"] == {"class_below_min": 6}
    w = meta["class_weights"]
    assert w[1] > w[0] and abs(sum(w) / len(w) - 1) < 1e-6
    assert meta["balance"]["train_max"] >= meta["balance"]["train_min"]


# --------------------------------------------------------------------------- csv


def _find_text(prefix: str, split: str) -> str:
    """A text whose hash lands in ``split`` (the split rule is fixed, so this is stable)."""
    return next(f"{prefix} {i}" for i in range(1000) if hash_split(f"{prefix} {i}") == split)


def _bad_csv(path: Path) -> dict[str, int]:
    rows = [b"label,text"]
    rows += [f"pos,movie {i} was great".encode() for i in range(25)]
    rows += [f"neg,film {i} was awful".encode() for i in range(25)]
    rows += [
        b"pos",  # line 52: missing text
        b"pos,   ",  # empty text
        b",some text",  # missing label
        b"neg,bad \xff bytes",  # invalid UTF-8
        b"",  # blank line: not a record
        b'neg,"multi\nline awful"',  # good, quoted newline
        f"rare,{_find_text('rare thing', 'test')}".encode(),  # label unseen in train
    ]
    path.write_bytes(b"\n".join(rows) + b"\n")
    return {
        "missing_text": 1,
        "empty_text": 1,
        "missing_label": 1,
        "invalid_utf8": 1,
        "unseen_label": 1,
    }


def test_csv_skips_are_counted_exactly(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    expected = _bad_csv(path)
    splits, meta = build_csv(out_dir=tmp_path / "o", path=str(path))
    assert meta["skipped"] == expected
    assert meta["labels"] == ["neg", "pos"]
    assert sum(len(splits[s]) for s in SPLITS) == 51
    assert meta["source"]["split"]["train"] == "sha256(text)"


def test_csv_error_mode_names_file_line_and_value(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    _bad_csv(path)
    with pytest.raises(DataError) as err:
        build_csv(out_dir=tmp_path / "o", path=str(path), on_bad_input="error")
    assert f"{path}:52: missing text" in str(err.value)
    path.write_bytes(b"label,text\npos,ok\nneg,bad \xff\n")
    with pytest.raises(DataError, match=r"mine\.csv:3: invalid utf8: value b'bad \\xff'"):
        build_csv(out_dir=tmp_path / "o", path=str(path), on_bad_input="error")
    with pytest.raises(DataError, match="valid: skip, error"):
        build_csv(out_dir=tmp_path / "o", path=str(path), on_bad_input="ignore")
    with pytest.raises(DataError, match=r"column\(s\) \['review'\] not in the header"):
        build_csv(out_dir=tmp_path / "o", path=str(path), text_column="review")


def test_csv_given_split_files_and_train_only_vocabulary(tmp_path: Path) -> None:
    def tsv(name: str, rows: list[str]) -> str:
        (tmp_path / name).write_text("text\tlabel\n" + "\n".join(rows) + "\n")
        return str(tmp_path / name)

    train = tsv(
        "train.tsv",
        [f"alpha beta {i}\tyes" for i in range(5)]
        + [f'gamma said "delta" {i}\tno' for i in range(5)],
    )
    val = tsv("val.tsv", ["alpha\tyes", "delta\tno", "alpha\tmaybe"])
    test = tsv("test.tsv", ["zebra alpha\tyes", "gamma\tno"])
    splits, meta = build_csv(out_dir=tmp_path / "o", train_path=train, val_path=val, test_path=test)
    tok = load_tokenizer(tmp_path / "o")
    assert tok.token_to_id("zebra") is None  # only in test
    assert splits["test"].inputs[0].tolist()[0] == 1  # -> [UNK]
    assert tok.token_to_id("alpha") == splits["test"].inputs[0].tolist()[1]
    assert tok.token_to_id('"') is not None  # TSV keeps quotes verbatim
    assert meta["skipped"] == {"unseen_label": 1}
    assert [len(splits[s]) for s in SPLITS] == [10, 2, 2]
    assert meta["labels"] == ["no", "yes"]


def test_jsonl_split_column_numeric_labels_and_bad_lines(tmp_path: Path) -> None:
    lines = [
        json.dumps({"t": f"item {i} text", "y": 10 if i % 2 else 2, "s": "train"})
        for i in range(20)
    ]
    lines += [
        json.dumps({"t": "a dev item", "y": 2, "s": "dev"}),
        json.dumps({"t": "a test item", "y": 10, "s": "test"}),
        json.dumps({"t": "odd split", "y": 2, "s": "holdout"}),
        "{not json",
        "[1, 2]",
        json.dumps({"y": 2, "s": "train"}),
    ]
    path = tmp_path / "d.jsonl"
    path.write_bytes(("\n".join(lines) + "\n").encode() + b'{"t": "\xff", "y": 2}\n')
    splits, meta = build_csv(
        out_dir=tmp_path / "o", path=str(path), text_column="t", label_column="y", split_column="s"
    )
    assert meta["labels"] == ["2", "10"]
    assert meta["skipped"] == {
        "invalid_split": 1,
        "invalid_json": 2,
        "missing_text": 1,
        "invalid_utf8": 1,
    }
    assert [len(splits[s]) for s in SPLITS] == [20, 1, 1]


# --------------------------------------------------------------------------- downloads


def _ag_rows(n_per_class: int, offset: int) -> list[str]:
    words = {1: "election minister", 2: "match goal", 3: "stocks market", 4: "software chip"}
    return [
        f'"{c}","Title {c} {i + offset}","Body about {words[c]} number {i + offset}\\nmore #39;"'
        for c in words
        for i in range(n_per_class)
    ]


def test_ag_news_raw_csvs_and_archive_give_the_same_data(tmp_path: Path) -> None:
    train = "\n".join(_ag_rows(15, 0) + ['"2","only two fields"', '"9","bad","label"']) + "\n"
    test = "\n".join(_ag_rows(3, 1000)) + "\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, text in [("train.csv", train), ("test.csv", test), ("classes.txt", "World\n")]:
            info = tarfile.TarInfo(f"ag_news_csv/{name}")
            info.size = len(text.encode())
            tf.addfile(info, io.BytesIO(text.encode()))
    tgz = buf.getvalue()
    with serve_files() as srv:
        srv.files.update(
            {"train.csv": train.encode(), "test.csv": test.encode(), "ag_news_csv.tgz": tgz}
        )
        splits, meta = build_ag_news(
            out_dir=tmp_path / "o1",
            raw_dir=tmp_path / "raw1",
            train_url=srv.url("train.csv"),
            test_url=srv.url("test.csv"),
            train_sha256=sha(train.encode()),
            test_sha256=sha(test.encode()),
            train_md5=None,
            test_md5=None,
            min_frequency=1,
        )
        splits2, meta2 = build_ag_news(
            out_dir=tmp_path / "o2",
            raw_dir=tmp_path / "raw2",
            archive_url=srv.url("ag_news_csv.tgz"),
            archive_sha256=sha(tgz),
            min_frequency=1,
        )
        n = len(srv.requests)
        build_ag_news(  # cached raw files: no new download
            out_dir=tmp_path / "o3",
            raw_dir=tmp_path / "raw1",
            train_url=srv.url("train.csv"),
            test_url=srv.url("test.csv"),
            train_sha256=sha(train.encode()),
            test_sha256=sha(test.encode()),
            train_md5=None,
            test_md5=None,
        )
        assert len(srv.requests) == n
    assert meta["labels"] == list(AG_NEWS_LABELS)
    assert meta["skipped"] == {"malformed_row": 1, "invalid_label": 1}
    assert len(splits["train"]) + len(splits["val"]) == 60 and len(splits["test"]) == 12
    assert sorted(Counter(splits["test"].targets).values()) == [3, 3, 3, 3]
    tok = load_tokenizer(tmp_path / "o1")
    assert tok.token_to_id("\\") is None and tok.token_to_id("#") is None  # escapes removed
    for s in SPLITS:
        assert splits[s].targets == splits2[s].targets
        assert all(torch.equal(x, y) for x, y in zip(splits[s].inputs, splits2[s].inputs))


def test_imdb_download_extract_and_cache(tmp_path: Path) -> None:
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
    with serve_files() as srv:
        srv.files["aclImdb_v1.tar.gz"] = archive
        kw = dict(
            raw_dir=tmp_path / "raw",
            url=srv.url("aclImdb_v1.tar.gz"),
            sha256=sha(archive),
            min_frequency=1,
        )
        splits, meta = build_imdb(out_dir=tmp_path / "o", **kw)
        splits2, _ = build_imdb(out_dir=tmp_path / "o2", **kw)
        assert len(srv.requests) == 1  # second build reuses the verified archive
    assert meta["labels"] == ["neg", "pos"] and meta["skipped"] == {}
    assert len(splits["train"]) + len(splits["val"]) == 40 and len(splits["test"]) == 10
    assert not (tmp_path / "raw/imdb/extracted/aclImdb/train/unsup").exists()
    tok = load_tokenizer(tmp_path / "o")
    assert tok.token_to_id("br") is None and tok.token_to_id("<") is None
    assert all(torch.equal(x, y) for x, y in zip(splits["train"].inputs, splits2["train"].inputs))
    with serve_files() as srv:
        srv.files["aclImdb_v1.tar.gz"] = archive
        with pytest.raises(DataError, match="checksum mismatch"):
            build_imdb(
                out_dir=tmp_path / "o3",
                raw_dir=tmp_path / "raw3",
                url=srv.url("aclImdb_v1.tar.gz"),
                sha256="1" * 64,
                retries=0,
            )
    assert not list((tmp_path / "raw3").rglob("*.tar.gz*"))


def test_max_per_language_keeps_every_split_populated(tmp_path: Path) -> None:
    """Capping a class must not correlate with the hash split (regression: train was empty)."""
    splits, meta = build_text_langid(
        out_dir=tmp_path, languages=["english", "spanish", "italian"], max_per_language=150
    )
    sizes = {name: len(split) for name, split in splits.items()}
    assert sum(sizes.values()) == 450
    assert sizes["train"] > 300 and sizes["val"] > 20 and sizes["test"] > 20, sizes
