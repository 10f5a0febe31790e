"""text_langid and text_topics: the real packaged chatterbot corpus and fixture corpora."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from rnnlab.data.format import Split, write_processed
from rnnlab.data.splits import SPLITS, hash_split
from rnnlab.data.text.chatterbot import build_text_langid, build_text_topics, read_conversations
from rnnlab.data.text.tokenizer import load_tokenizer
from rnnlab.errors import DataError


def decode_chars(out_dir: Path, ids: torch.Tensor) -> str:
    """Invert a char tokenizer exactly (every symbol is one vocabulary entry)."""
    inv = {i: t for t, i in load_tokenizer(out_dir).get_vocab().items()}
    return "".join(inv[int(i)] for i in ids)


def split_texts(out_dir: Path, split: Split) -> list[str]:
    return [decode_chars(out_dir, x) for x in split.inputs]


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


def test_max_per_language_keeps_every_split_populated(tmp_path: Path) -> None:
    """Capping a class must not correlate with the hash split (regression: train was empty)."""
    splits, meta = build_text_langid(
        out_dir=tmp_path, languages=["english", "spanish", "italian"], max_per_language=150
    )
    sizes = {name: len(split) for name, split in splits.items()}
    assert sum(sizes.values()) == 450
    assert sizes["train"] > 300 and sizes["val"] > 20 and sizes["test"] > 20, sizes
