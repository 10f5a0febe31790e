"""From (text, label) records to processed splits: the steps every text builder shares.

A builder reads its raw source into records, then:

1. :func:`normalise_text` every text (NFC, whitespace collapsed), so equal-looking
   texts compare equal;
2. :func:`dedupe`: repeats of (text, label) and texts found under two labels are
   dropped and counted;
3. :func:`limit_classes`: classes below a minimum are dropped, classes above a maximum
   are capped (both counted);
4. splits come from the text's hash (:func:`rnnlab.data.splits.hash_split`):
   :func:`split_by_hash` for a source without splits, :func:`carve` to cut val (and
   test) out of a given train split;
5. :func:`assemble` trains the tokenizer on the train texts, writes it to
   ``<out_dir>/tokenizer.json``, encodes every split to int64 token ids (cut at
   ``max_length``) and builds the meta dict (skips, truncations, lengths, unknown-token
   rates, :func:`class_weights`, class balance, source).

Every dropped item is counted in ``meta["skipped"]`` by reason, and
``meta["truncated"]`` counts sequences cut to ``max_length``: nothing disappears
silently.
"""

from __future__ import annotations

import logging
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from tokenizers import Tokenizer

from rnnlab.data.format import Split
from rnnlab.data.splits import SPLITS, check_fractions, hash_split, hash_unit
from rnnlab.data.text.tokenizer import PAD_ID, TOKENIZER_FILE, UNK_ID, train_tokenizer
from rnnlab.errors import DataError
from rnnlab.io import atomic_write_bytes

log = logging.getLogger(__name__)

Examples = dict[str, list[tuple[str, int]]]  # split -> [(text, class index)]
R = TypeVar("R", bound=tuple)


def normalise_text(text: str) -> str:
    """NFC-normalise and collapse whitespace, so equal-looking texts compare equal."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def as_list(value: str | Iterable[str] | None) -> list[str]:
    """Hydra hands lists as ListConfig and CLI users may write 'a,b': accept both."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def label_key(label: str) -> tuple[int, float, str]:
    """Sort key: numeric labels numerically ('2' < '10'), others alphabetically after them."""
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def class_weights(counts: Sequence[int], where: str) -> list[float]:
    """Inverse-frequency class weights normalised to mean 1 (keeps the loss scale).

    ``w_k = (1 / n_k) / mean_j(1 / n_j)`` for the train count ``n_k`` of class ``k``.
    """
    if any(c <= 0 for c in counts):
        raise DataError(f"{where}: a class has no training examples (counts {list(counts)})")
    inv = [1.0 / c for c in counts]
    mean = sum(inv) / len(inv)
    return [round(w / mean, 6) for w in inv]


def dedupe(items: Iterable[tuple[str, str]], skipped: Counter) -> list[tuple[str, str]]:
    """Drop repeats of (text, label) and every text found under two labels (ambiguous).

    Counting rule (so kept + skipped == read): each extra occurrence of a text under the
    same label counts as ``duplicate``; every occurrence of a text seen under more than
    one label counts as ``ambiguous_label``. Returns (text, label) sorted by text.
    """
    occurrences: dict[str, Counter] = defaultdict(Counter)
    for text, label in items:
        occurrences[text][label] += 1
    kept = []
    for text in sorted(occurrences):
        per_label = occurrences[text]
        if len(per_label) > 1:
            skipped["ambiguous_label"] += sum(per_label.values())
            continue
        ((label, n),) = per_label.items()
        skipped["duplicate"] += n - 1
        kept.append((text, label))
    return kept


def limit_classes(
    items: list[tuple[str, str]],
    min_per_class: int,
    max_per_class: int | None,
    skipped: Counter,
) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """Drop classes below ``min_per_class``; cap classes at ``max_per_class`` by text hash.

    Returns the kept (text, label) records (by label, then text) and the dropped classes
    with their sizes. The cap keeps the texts with the lowest *salted* hash: the split
    is also a hash of the text, so keeping the lowest unsalted hashes would keep only
    val/test texts and empty the train split.
    """
    by_class: dict[str, list[str]] = defaultdict(list)
    for text, label in items:
        by_class[label].append(text)
    dropped: dict[str, int] = {}
    kept: list[tuple[str, str]] = []
    for label in sorted(by_class):
        texts = by_class[label]
        if len(texts) < min_per_class:
            dropped[label] = len(texts)
            skipped["class_below_min"] += len(texts)
            continue
        if max_per_class is not None and len(texts) > int(max_per_class):
            texts = sorted(texts, key=lambda t: hash_unit("max_per_class\x00" + t))
            skipped["class_above_max"] += len(texts) - int(max_per_class)
            texts = sorted(texts[: int(max_per_class)])
        kept.extend((t, label) for t in texts)
    return kept, dropped


def split_by_hash(
    items: list[tuple[str, str]], labels: Sequence[str], val_fraction: float, test_fraction: float
) -> Examples:
    """(text, label name) records into train/val/test by text hash, labels as indices."""
    index = {name: i for i, name in enumerate(labels)}
    out: Examples = {s: [] for s in SPLITS}
    for text, label in items:
        out[hash_split(text, val_fraction, test_fraction)].append((text, index[label]))
    return out


def carve(
    records: Iterable[R], val_fraction: float, test_fraction: float = 0.0
) -> dict[str, list[R]]:
    """Cut val (and test) out of train records by the hash of their text (``record[0]``).

    The same rule as :func:`split_by_hash` (``[0, test)`` test, ``[test, test + val)``
    val), so the same text always lands on the same side.
    """
    out: dict[str, list[R]] = {s: [] for s in SPLITS}
    for rec in records:
        out[hash_split(rec[0], val_fraction, test_fraction)].append(rec)
    return out


@dataclass(frozen=True)
class Upstream:
    """The options of a corpus downloaded with its own train/test split (AG News, IMDB):
    ``val_fraction`` of train is carved off as val by text hash (:func:`carve`), and a
    download is tried ``retries`` times (:func:`rnnlab.data.download.fetch`)."""

    val_fraction: float = 0.1
    retries: int = 3

    def validate(self, where: str) -> None:
        check_fractions(self.val_fraction, 0.0, where)

    def examples(self, train: list[tuple[str, int]], test: list[tuple[str, int]]) -> Examples:
        """The upstream test split, and val carved from the upstream train split."""
        carved = carve(train, self.val_fraction)
        return {"train": carved["train"], "val": carved["val"], "test": test}

    @property
    def rule(self) -> str:
        """``meta["source"]["split"]``."""
        return f"upstream train/test; val = sha256(text) < {self.val_fraction} of train"


@dataclass(frozen=True)
class EncodeOptions:
    """How a text builder turns texts into token ids: its tokenizer settings and cut.

    Every text builder takes these five keys as one option group
    (:func:`rnnlab.data.options.takes`; the instance given there holds the builder's
    defaults) and hands them to :func:`assemble` as one value.
    ``tokenizer``: a :data:`~rnnlab.data.text.tokenizer.TOKENIZER_KINDS` name;
    ``vocab_size``: its cap (None: the kind's default); ``min_frequency``: rarer tokens
    become ``<unk>``; ``max_length``: longer sequences are cut (counted in
    ``meta["truncated"]``), None keeps them whole.
    """

    tokenizer: str = "word"
    vocab_size: int | None = None
    min_frequency: int = 1
    lowercase: bool = True
    max_length: int | None = 256

    def validate(self, where: str) -> None:
        if self.max_length is not None and int(self.max_length) < 1:
            raise DataError(f"{where}: max_length={self.max_length}; must be >= 1 or null")

    def train(self, texts: Iterable[str]) -> Tokenizer:
        """The tokenizer these options describe, trained on ``texts``."""
        return train_tokenizer(
            texts,
            self.tokenizer,
            vocab_size=self.vocab_size,
            min_frequency=self.min_frequency,
            lowercase=self.lowercase,
        )

    def as_meta(self, tok: Tokenizer) -> dict[str, Any]:
        """``meta["tokenizer"]`` for ``tok`` trained with these options."""
        return {
            "kind": self.tokenizer,
            "file": TOKENIZER_FILE,
            "vocab_size": tok.get_vocab_size(),
            "requested_vocab_size": self.vocab_size,
            "min_frequency": int(self.min_frequency),
            "lowercase": bool(self.lowercase),
            "max_length": self.max_length,
            "trained_on": "train",
        }


def _encode_split(
    tok: Tokenizer, examples: list[tuple[str, int]], max_length: int | None, skipped: Counter
) -> tuple[Split, dict[str, Any]]:
    """Token ids of one split (cut at ``max_length``) and its statistics for meta."""
    encs = tok.encode_batch([t for t, _ in examples])
    inputs, targets, lens = [], [], []
    n_trunc = n_unk = n_tok = 0
    for enc, (_, y) in zip(encs, examples):
        ids = enc.ids
        if not ids:
            skipped["empty_after_tokenization"] += 1
            continue
        if max_length is not None and len(ids) > int(max_length):
            ids = ids[: int(max_length)]
            n_trunc += 1
        n_unk += sum(1 for i in ids if i == UNK_ID)
        n_tok += len(ids)
        lens.append(len(ids))
        inputs.append(torch.tensor(ids, dtype=torch.int64))
        targets.append(int(y))
    stats = {"truncated": n_trunc, "unk_rate": round(n_unk / max(n_tok, 1), 6)}
    if lens:
        stats["lengths"] = {
            "mean": round(sum(lens) / len(lens), 2),
            "max": max(lens),
            "min": min(lens),
        }
    return Split(inputs=inputs, targets=targets), stats


def _check_examples(name: str, examples: Examples, skipped: Counter) -> None:
    for s in SPLITS:
        if not examples.get(s):
            raise DataError(
                f"{name}: the {s!r} split is empty after filtering (kept per split: "
                f"{ {k: len(v) for k, v in examples.items()} }, skipped: {dict(skipped)}); "
                f"provide more data or change the split fractions"
            )


def assemble(
    name: str,
    out_dir: str | Path,
    examples: Examples,
    labels: Sequence[str],
    options: EncodeOptions,
    *,
    skipped: Counter,
    source: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> tuple[dict[str, Split], dict[str, Any]]:
    """Train the tokenizer on train texts, save it, encode every split, build the meta."""
    _check_examples(name, examples, skipped)
    tok = options.train(t for t, _ in examples["train"])
    atomic_write_bytes(Path(out_dir) / TOKENIZER_FILE, tok.to_str(pretty=False).encode("utf-8"))
    splits: dict[str, Split] = {}
    stats: dict[str, dict[str, Any]] = {}
    for s in SPLITS:
        splits[s], stats[s] = _encode_split(tok, examples[s], options.max_length, skipped)
        if not splits[s].inputs:
            raise DataError(f"{name}: the {s!r} split has no non-empty sequence after tokenising")
    train_counts = Counter(splits["train"].targets)
    per_class = [train_counts.get(k, 0) for k in range(len(labels))]
    meta: dict[str, Any] = {
        "name": name,
        "task": "classification",
        "input_kind": "tokens",
        "input_dim": tok.get_vocab_size(),
        "labels": list(labels),
        "pad_id": PAD_ID,
        "unk_id": UNK_ID,
        "tokenizer": options.as_meta(tok),
        "skipped": {k: v for k, v in sorted(skipped.items()) if v},
        **{key: {s: stats[s][key] for s in SPLITS} for key in ("truncated", "lengths", "unk_rate")},
        "class_weights": class_weights(per_class, name),
        "balance": {
            "train_min": min(per_class),
            "train_max": max(per_class),
            "imbalance_ratio": round(max(per_class) / max(min(per_class), 1), 3),
        },
        "source": source,
        **(extra or {}),
    }
    log.info(
        "%s: %s examples, %d classes, vocab %d, skipped %s",
        name,
        {s: len(splits[s]) for s in SPLITS},
        len(labels),
        tok.get_vocab_size(),
        dict(skipped),
    )
    return splits, meta
