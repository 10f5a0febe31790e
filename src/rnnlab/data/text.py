"""Text classification datasets and their tokenizers, written in the processed format.

Every builder here has the signature ``build_<name>(out_dir, **params) -> (splits, meta)``:
it reads raw text (the installed ``chatterbot_corpus``, a user's CSV/TSV/JSONL, or a
download), splits it deterministically, trains a tokenizer on the TRAIN split only (so
no vocabulary leaks from val/test: unseen tokens map to ``[UNK]``), saves it as
``<out_dir>/tokenizer.json`` and returns ``Split``s of int64 token ids plus a meta dict
for :func:`rnnlab.data.format.write_processed`.

Conventions shared by all builders:

* text is NFC-normalised and its whitespace collapsed before anything else;
* token id 0 is ``[PAD]`` (the collate pad value) and 1 is ``[UNK]``;
* when a split must be derived, it comes from a hash of the normalised text, so the
  split is identical on every machine and identical texts always land in the same split;
* every dropped item is counted in ``meta["skipped"]`` by reason (nothing disappears
  silently), and ``meta["truncated"]`` counts sequences cut to ``max_length``.
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import logging
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

from rnnlab.data.download import fetch, safe_extract
from rnnlab.data.format import Split
from rnnlab.data.splits import SPLITS
from rnnlab.errors import DataError
from rnnlab.io import atomic_write_bytes, sha256_file

log = logging.getLogger(__name__)

PAD, UNK = "[PAD]", "[UNK]"
TOKENIZER_KINDS = ("char", "word", "bpe")
TOKENIZER_FILE = "tokenizer.json"
BAD_INPUT_MODES = ("skip", "error")
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}
# Latin-script chatterbot languages with >= 200 distinct utterances (measured on
# chatterbot-corpus 1.2: english 1902, italian 1183, spanish 892, portuguese 701,
# dutch 634, indonesian 325, turkish 297, german 220; french 138 and swedish 145 are
# available but small).
DEFAULT_LANGID_LANGUAGES = (
    "english",
    "spanish",
    "portuguese",
    "italian",
    "dutch",
    "german",
    "indonesian",
    "turkish",
)

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
IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
IMDB_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
IMDB_LABELS = ("neg", "pos")


# --------------------------------------------------------------------------- helpers


def normalise_text(text: str) -> str:
    """NFC-normalise and collapse whitespace, so equal-looking texts compare equal."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def hash_unit(text: str) -> float:
    """A stable number in [0, 1) from the text (sha256), independent of seed and platform."""
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:15], 16) / float(16**15)


def hash_split(text: str, val_fraction: float = 0.1, test_fraction: float = 0.1) -> str:
    """Assign 'train'/'val'/'test' from the text alone: identical texts share a split."""
    u = hash_unit(text)
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def _check_fractions(val_fraction: float, test_fraction: float, where: str) -> None:
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DataError(
            f"{where}: val_fraction={val_fraction}, test_fraction={test_fraction}; each must be "
            f"in [0, 1) and their sum < 1"
        )


def _as_list(value: str | Iterable[str] | None) -> list[str]:
    """Hydra hands lists as ListConfig and CLI users may write 'a,b': accept both."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def _label_key(label: str) -> tuple[int, float, str]:
    """Sort numeric labels numerically ('2' < '10'), others alphabetically."""
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def class_weights(counts: Sequence[int], where: str) -> list[float]:
    """Inverse-frequency class weights normalised to mean 1 (keeps the loss scale)."""
    if any(c <= 0 for c in counts):
        raise DataError(f"{where}: a class has no training examples (counts {list(counts)})")
    inv = [1.0 / c for c in counts]
    mean = sum(inv) / len(inv)
    return [round(w / mean, 6) for w in inv]


# --------------------------------------------------------------------------- tokenizers


def train_tokenizer(
    texts: Iterable[str],
    kind: str = "char",
    *,
    vocab_size: int | None = None,
    min_frequency: int = 1,
    lowercase: bool = False,
) -> Tokenizer:
    """Train a HF tokenizer with ``[PAD]``=0 and ``[UNK]``=1.

    ``char``: one token per grapheme cluster (spaces included); ``word``: words and
    punctuation runs; ``bpe``: byte-pair merges over words (needs ``vocab_size``,
    default 8000). Characters or words never seen in training map to ``[UNK]``.
    """
    if kind not in TOKENIZER_KINDS:
        raise DataError(f"tokenizer={kind!r} is not valid; valid: {', '.join(TOKENIZER_KINDS)}")
    if vocab_size is not None and int(vocab_size) < 3:
        raise DataError(f"tokenizer vocab_size={vocab_size} is too small; use >= 3 or null")
    norm = [normalizers.NFC()] + ([normalizers.Lowercase()] if lowercase else [])
    specials = [PAD, UNK]
    limit = int(vocab_size) if vocab_size else 10_000_000
    trainer: Any
    if kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        trainer = trainers.BpeTrainer(
            vocab_size=int(vocab_size or 8000),
            min_frequency=int(min_frequency),
            special_tokens=specials,
            show_progress=False,
        )
    else:
        tok = Tokenizer(models.WordLevel(unk_token=UNK))
        if kind == "char":
            tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"\X"), behavior="isolated")
        else:
            tok.pre_tokenizer = pre_tokenizers.Whitespace()
        trainer = trainers.WordLevelTrainer(
            vocab_size=limit,
            min_frequency=int(min_frequency),
            special_tokens=specials,
            show_progress=False,
        )
    tok.normalizer = normalizers.Sequence(norm)
    tok.train_from_iterator(list(texts), trainer)
    if tok.token_to_id(PAD) != 0 or tok.token_to_id(UNK) != 1:  # pragma: no cover
        raise DataError("tokenizer training broke the [PAD]=0/[UNK]=1 convention")
    return tok


def load_tokenizer(data_dir: str | Path) -> Tokenizer:
    """The tokenizer a builder saved next to the processed splits."""
    path = Path(data_dir) / TOKENIZER_FILE
    if not path.is_file():
        raise DataError(f"{path}: tokenizer not found; re-run the prepare stage")
    return Tokenizer.from_file(str(path))


def _assemble(
    name: str,
    out_dir: str | Path,
    examples: dict[str, list[tuple[str, int]]],
    labels: Sequence[str],
    *,
    tokenizer: str,
    vocab_size: int | None,
    min_frequency: int,
    lowercase: bool,
    max_length: int | None,
    skipped: Counter,
    source: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> tuple[dict[str, Split], dict[str, Any]]:
    """Train the tokenizer on train texts, encode every split, and build the meta dict."""
    for s in SPLITS:
        if not examples.get(s):
            raise DataError(
                f"{name}: the {s!r} split is empty after filtering (kept per split: "
                f"{ {k: len(v) for k, v in examples.items()} }, skipped: {dict(skipped)}); "
                f"provide more data or change the split fractions"
            )
    if max_length is not None and int(max_length) < 1:
        raise DataError(f"{name}: max_length={max_length}; must be >= 1 or null")
    tok = train_tokenizer(
        (t for t, _ in examples["train"]),
        tokenizer,
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        lowercase=lowercase,
    )
    out = Path(out_dir)
    atomic_write_bytes(out / TOKENIZER_FILE, tok.to_str(pretty=False).encode("utf-8"))

    splits: dict[str, Split] = {}
    truncated: dict[str, int] = {}
    lengths: dict[str, dict[str, float]] = {}
    unk_rate: dict[str, float] = {}
    for s in SPLITS:
        encs = tok.encode_batch([t for t, _ in examples[s]])
        inputs, targets, n_trunc, n_unk, n_tok, lens = [], [], 0, 0, 0, []
        for enc, (_, y) in zip(encs, examples[s]):
            ids = enc.ids
            if not ids:
                skipped["empty_after_tokenization"] += 1
                continue
            if max_length is not None and len(ids) > int(max_length):
                ids = ids[: int(max_length)]
                n_trunc += 1
            n_unk += sum(1 for i in ids if i == 1)
            n_tok += len(ids)
            lens.append(len(ids))
            inputs.append(torch.tensor(ids, dtype=torch.int64))
            targets.append(int(y))
        if not inputs:
            raise DataError(f"{name}: the {s!r} split has no non-empty sequence after tokenising")
        splits[s] = Split(inputs=inputs, targets=targets)
        truncated[s] = n_trunc
        unk_rate[s] = round(n_unk / max(n_tok, 1), 6)
        lengths[s] = {"mean": round(sum(lens) / len(lens), 2), "max": max(lens), "min": min(lens)}

    train_counts = Counter(splits["train"].targets)
    per_class = [train_counts.get(k, 0) for k in range(len(labels))]
    meta: dict[str, Any] = {
        "name": name,
        "task": "classification",
        "input_kind": "tokens",
        "input_dim": tok.get_vocab_size(),
        "labels": list(labels),
        "pad_id": 0,
        "unk_id": 1,
        "tokenizer": {
            "kind": tokenizer,
            "file": TOKENIZER_FILE,
            "vocab_size": tok.get_vocab_size(),
            "requested_vocab_size": vocab_size,
            "min_frequency": int(min_frequency),
            "lowercase": bool(lowercase),
            "max_length": max_length,
            "trained_on": "train",
        },
        "skipped": {k: v for k, v in sorted(skipped.items()) if v},
        "truncated": truncated,
        "lengths": lengths,
        "unk_rate": unk_rate,
        "class_weights": class_weights(per_class, name),
        "balance": {
            "train_min": min(per_class),
            "train_max": max(per_class),
            "imbalance_ratio": round(max(per_class) / max(min(per_class), 1), 3),
        },
        "source": source,
    }
    if extra:
        meta.update(extra)
    log.info(
        "%s: %s examples, %d classes, vocab %d, skipped %s",
        name,
        {s: len(splits[s]) for s in SPLITS},
        len(labels),
        tok.get_vocab_size(),
        dict(skipped),
    )
    return splits, meta


def _dedupe(items: Iterable[tuple[str, str]], skipped: Counter) -> list[tuple[str, str]]:
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


def _limit_classes(
    items: list[tuple[str, str]],
    min_per_class: int,
    max_per_class: int | None,
    skipped: Counter,
) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """Drop classes below ``min_per_class``; cap classes at ``max_per_class`` by text hash.

    The cap uses a *salted* hash: the split is also a hash of the text, so keeping the
    lowest unsalted hashes would keep only val/test utterances and empty the train split.
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


def _split_by_hash(
    items: list[tuple[str, str]], labels: Sequence[str], val_fraction: float, test_fraction: float
) -> dict[str, list[tuple[str, int]]]:
    index = {name: i for i, name in enumerate(labels)}
    out: dict[str, list[tuple[str, int]]] = {s: [] for s in SPLITS}
    for text, label in items:
        out[hash_split(text, val_fraction, test_fraction)].append((text, index[label]))
    return out


# --------------------------------------------------------------------------- chatterbot


def chatterbot_root() -> Path:
    """The ``data`` directory of the installed ``chatterbot_corpus`` package."""
    try:
        import chatterbot_corpus
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise DataError(
            "chatterbot_corpus is not installed; `pip install chatterbot-corpus` or pass "
            "corpus_dir=<dir with <language>/*.yml>"
        ) from e
    return Path(chatterbot_corpus.__file__).parent / "data"


def read_conversations(path: Path, skipped: Counter) -> list[str]:
    """All utterances of one chatterbot YAML file, normalised (empty ones counted).

    Uses YAML's BaseLoader so every scalar stays the string the author wrote
    ("Yes", "No", "1984" are not turned into booleans or numbers).
    """
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        raise DataError(f"{path}: not a readable UTF-8 YAML conversations file ({e})") from e
    convs = data.get("conversations") if isinstance(data, dict) else None
    if not isinstance(convs, list):
        raise DataError(f"{path}: expected a top-level 'conversations' list of lists")
    texts = []
    for conv in convs:
        for item in conv if isinstance(conv, list) else [conv]:
            if not isinstance(item, str):
                skipped["malformed"] += 1
                continue
            text = normalise_text(item)
            if not text:
                skipped["empty_text"] += 1
                continue
            texts.append(text)
    return texts


def _corpus_dir(corpus_dir: str | Path | None) -> Path:
    root = Path(corpus_dir) if corpus_dir else chatterbot_root()
    if not root.is_dir():
        raise DataError(f"{root}: corpus directory not found (expected <language>/*.yml inside)")
    return root


def build_text_langid(
    out_dir: str | Path,
    raw_dir: str | Path | None = None,
    languages: str | Sequence[str] = DEFAULT_LANGID_LANGUAGES,
    min_per_language: int = 100,
    max_per_language: int | None = None,
    tokenizer: str = "char",
    vocab_size: int | None = None,
    min_frequency: int = 1,
    lowercase: bool = False,
    max_length: int | None = 256,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    corpus_dir: str | Path | None = None,
) -> tuple[dict[str, Split], dict[str, Any]]:
    """Language identification of real, human-written chatterbot utterances.

    Why this shape: short utterances in related Latin-script languages are a small,
    offline, real-data task where a character-level RNN has to learn orthography.
    Utterances are deduplicated (one text under two languages is ambiguous and dropped),
    languages below ``min_per_language`` distinct utterances are dropped (counted), and
    the 80/10/10 split is a hash of the text, so no utterance is in two splits.
    ``raw_dir`` is unused (the corpus ships with the package); ``corpus_dir`` overrides
    the corpus location (``<corpus_dir>/<language>/*.yml``).
    """
    name = "text_langid"
    _check_fractions(val_fraction, test_fraction, name)
    root = _corpus_dir(corpus_dir)
    wanted = _as_list(languages)
    available = sorted(p.name for p in root.iterdir() if p.is_dir())
    unknown = [lang for lang in wanted if lang not in available]
    if not wanted or unknown:
        raise DataError(
            f"{name}: languages {unknown or wanted!r} not found in {root}; valid: "
            f"{', '.join(available)}"
        )
    if len(set(wanted)) < 2:
        raise DataError(f"{name}: languages={wanted}; need at least two distinct languages")

    skipped: Counter = Counter()
    items: list[tuple[str, str]] = []
    raw_counts: dict[str, int] = {}
    files: dict[str, list[str]] = {}
    for lang in sorted(set(wanted)):
        paths = sorted((root / lang).glob("*.yml"))
        files[lang] = [p.name for p in paths]
        texts = [t for p in paths for t in read_conversations(p, skipped)]
        raw_counts[lang] = len(texts)
        items.extend((t, lang) for t in texts)
    unique = _dedupe(items, skipped)
    kept, dropped = _limit_classes(unique, int(min_per_language), max_per_language, skipped)
    if dropped:
        log.warning(
            "%s: dropped languages below min_per_language=%s: %s", name, min_per_language, dropped
        )
    labels = sorted({label for _, label in kept})
    if len(labels) < 2:
        raise DataError(
            f"{name}: only {labels} left after min_per_language={min_per_language} "
            f"(dropped {dropped}); lower min_per_language or add languages"
        )
    examples = _split_by_hash(kept, labels, val_fraction, test_fraction)
    per_language = Counter(label for _, label in kept)
    return _assemble(
        name,
        out_dir,
        examples,
        labels,
        tokenizer=tokenizer,
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        lowercase=lowercase,
        max_length=max_length,
        skipped=skipped,
        source={
            "corpus": "chatterbot_corpus",
            # the packaged corpus by name, not by path: meta.json stays the same on
            # every machine (DVC hashes it); a user-given directory is recorded as given
            "corpus_dir": str(corpus_dir) if corpus_dir else "<chatterbot_corpus package>/data",
            "files": files,
            "utterances_read": raw_counts,
            "utterances_kept": {k: per_language[k] for k in labels},
            "split": f"sha256(text) {1 - val_fraction - test_fraction:.2f}/"
            f"{val_fraction:.2f}/{test_fraction:.2f}",
        },
        extra={"dropped_classes": dropped},
    )


def build_text_topics(
    out_dir: str | Path,
    raw_dir: str | Path | None = None,
    language: str = "english",
    min_per_class: int = 40,
    max_per_class: int | None = None,
    tokenizer: str = "word",
    vocab_size: int | None = None,
    min_frequency: int = 1,
    lowercase: bool = True,
    max_length: int | None = 64,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    corpus_dir: str | Path | None = None,
) -> tuple[dict[str, Split], dict[str, Any]]:
    """Topic classification: each chatterbot file of ``language`` is one category.

    Classes with fewer than ``min_per_class`` distinct utterances are dropped (counted);
    the classes stay imbalanced, so meta carries ``balance`` and ``class_weights``
    (inverse train frequency, mean 1) for a weighted loss. An utterance found in two
    categories is ambiguous and dropped; the split is a hash of the text.
    """
    name = "text_topics"
    _check_fractions(val_fraction, test_fraction, name)
    root = _corpus_dir(corpus_dir)
    lang_dir = root / language
    if not lang_dir.is_dir():
        available = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise DataError(f"{lang_dir}: language {language!r} not found; valid: {available}")
    skipped: Counter = Counter()
    items: list[tuple[str, str]] = []
    raw_counts: dict[str, int] = {}
    for path in sorted(lang_dir.glob("*.yml")):
        texts = read_conversations(path, skipped)
        raw_counts[path.stem] = len(texts)
        items.extend((t, path.stem) for t in texts)
    unique = _dedupe(items, skipped)
    kept, dropped = _limit_classes(unique, int(min_per_class), max_per_class, skipped)
    labels = sorted({label for _, label in kept})
    if len(labels) < 2:
        raise DataError(
            f"{lang_dir}: only {labels} have >= min_per_class={min_per_class} utterances "
            f"(dropped {dropped}); lower min_per_class"
        )
    examples = _split_by_hash(kept, labels, val_fraction, test_fraction)
    per_class = Counter(label for _, label in kept)
    return _assemble(
        name,
        out_dir,
        examples,
        labels,
        tokenizer=tokenizer,
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        lowercase=lowercase,
        max_length=max_length,
        skipped=skipped,
        source={
            "corpus": "chatterbot_corpus",
            # the packaged corpus by name, not by path: meta.json stays the same on
            # every machine (DVC hashes it); a user-given directory is recorded as given
            "corpus_dir": str(corpus_dir) if corpus_dir else "<chatterbot_corpus package>/data",
            "language": language,
            "utterances_read": raw_counts,
            "utterances_kept": {k: per_class[k] for k in labels},
        },
        extra={"dropped_classes": dropped},
    )


# --------------------------------------------------------------------------- tables


_SURROGATE = re.compile("[\udc80-\udcff]")


class _Rows:
    """Reads CSV/TSV/JSONL records with their line numbers, flagging invalid UTF-8.

    CSV lines are decoded with ``surrogateescape`` so one bad byte marks only its row
    (invalid_utf8) instead of aborting the file; quoted multi-line fields keep the line
    number of the row's first line.
    """

    def __init__(self, path: Path, delimiter: str | None = None) -> None:
        self.path = path
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".ndjson"):
            self.kind, self.delimiter = "jsonl", None
        elif delimiter is not None:
            self.kind, self.delimiter = "csv", delimiter
        elif suffix == ".csv":
            self.kind, self.delimiter = "csv", ","
        elif suffix in (".tsv", ".tab"):
            self.kind, self.delimiter = "csv", "\t"
        else:
            raise DataError(
                f"{path}: cannot tell the format from the extension {suffix!r}; valid: .csv, "
                f".tsv, .tab, .jsonl, .ndjson (or set delimiter=...)"
            )
        if not path.is_file():
            raise DataError(
                f"{path}: file not found (cwd-relative paths resolve from {Path.cwd()})"
            )

    def csv_rows(self, header: bool = True) -> Iterator[tuple[int, list[str] | None, list[str]]]:
        """Yield (line, row or None if it holds invalid UTF-8, raw fields)."""
        csv.field_size_limit(2**31 - 1)
        quoting = csv.QUOTE_NONE if self.delimiter == "\t" else csv.QUOTE_MINIMAL
        with open(self.path, encoding="utf-8", errors="surrogateescape", newline="") as f:
            reader = csv.reader(f, delimiter=self.delimiter or ",", quoting=quoting)
            prev = 0
            for row in reader:
                line, prev = prev + 1, reader.line_num
                if line == 1 and row:
                    row[0] = row[0].removeprefix("\ufeff")
                if not row or all(not c.strip() for c in row):
                    continue  # blank line: not a record
                bad = any(_SURROGATE.search(c) for c in row)
                yield line, (None if bad else row), row


def _raw_value(value: str) -> str:
    """Show a field with undecodable bytes as the bytes themselves (for error messages)."""
    return repr(value.encode("utf-8", "surrogateescape"))


class _BadInput:
    """Counts or raises on a bad record, depending on ``on_bad_input``."""

    def __init__(self, mode: str, skipped: Counter, where: str) -> None:
        if mode not in BAD_INPUT_MODES:
            raise DataError(
                f"{where}: on_bad_input={mode!r} is not valid; valid: {', '.join(BAD_INPUT_MODES)}"
            )
        self.mode, self.skipped = mode, skipped

    def __call__(self, reason: str, path: Path, line: int, value: Any, valid: str) -> None:
        if self.mode == "error":
            raise DataError(f"{path}:{line}: {reason.replace('_', ' ')}: value {value}; {valid}")
        self.skipped[reason] += 1


def _read_records(
    path: Path,
    text_column: str,
    label_column: str,
    split_column: str | None,
    delimiter: str | None,
    bad: _BadInput,
) -> list[tuple[str, str, str | None, int]]:
    """(text, label, split or None, line) for every good record of one file."""
    rows = _Rows(path, delimiter)
    out: list[tuple[str, str, str | None, int]] = []
    columns = [text_column, label_column] + ([split_column] if split_column else [])

    def accept(line: int, text: Any, label: Any, split: Any) -> None:
        if text is None:
            return bad("missing_text", path, line, "None", f"column {text_column!r} is required")
        text = normalise_text(str(text))
        if not text:
            return bad("empty_text", path, line, repr(text), "text must be non-empty")
        if label is None or str(label).strip() == "":
            return bad(
                "missing_label", path, line, repr(label), f"column {label_column!r} is required"
            )
        split_name = None
        if split_column:
            split_name = (
                SPLIT_ALIASES.get(str(split).strip().lower()) if split is not None else None
            )
            if split_name is None:
                return bad(
                    "invalid_split",
                    path,
                    line,
                    repr(split),
                    f"valid {split_column!r} values: {', '.join(sorted(SPLIT_ALIASES))}",
                )
        out.append((text, str(label).strip(), split_name, line))

    if rows.kind == "jsonl":
        with open(path, "rb") as f:
            for line, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    bad("invalid_utf8", path, line, repr(raw[:80]), "the file must be UTF-8")
                    continue
                except json.JSONDecodeError as e:
                    bad("invalid_json", path, line, repr(raw[:80]), f"not JSON ({e.msg})")
                    continue
                if not isinstance(obj, dict):
                    bad("invalid_json", path, line, repr(raw[:80]), "each line must be an object")
                    continue
                accept(
                    line,
                    obj.get(text_column),
                    obj.get(label_column),
                    obj.get(split_column) if split_column else None,
                )
        return out

    rows_iter = rows.csv_rows()
    try:
        _, header, _ = next(rows_iter)
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
    ti, li = header.index(text_column), header.index(label_column)
    si = header.index(split_column) if split_column else None
    for line, row, raw in rows_iter:
        if row is None:
            value = next(_raw_value(c) for c in raw if _SURROGATE.search(c))
            bad("invalid_utf8", path, line, value, "the file must be UTF-8")
            continue
        fields = [row[i] if i is not None and i < len(row) else None for i in (ti, li, si)]
        accept(line, *fields)
    return out


def _resolve(path: str | Path, where: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"{where}: file {p} not found (relative paths resolve from {Path.cwd()})")
    return p


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
    on_bad_input: str = "skip",
    tokenizer: str = "word",
    vocab_size: int | None = None,
    min_frequency: int = 1,
    lowercase: bool = True,
    max_length: int | None = 256,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> tuple[dict[str, Split], dict[str, Any]]:
    """Bring your own labelled text: CSV/TSV (with a header) or JSONL.

    Splits, in order of precedence: separate ``train_path``/``val_path``/``test_path``
    files (a missing val or test is carved from train by text hash); a ``split_column``
    (train/val/test, aliases valid/validation/dev/testing); else a text-hash split of
    ``path`` (one file or a list). The delimiter follows the extension (.csv ``,``,
    .tsv/.tab tab, .jsonl/.ndjson JSON lines) unless ``delimiter`` is set.
    Bad records (missing text/label, empty text, invalid UTF-8, bad JSON, bad split
    value, a val/test label never seen in train) are counted in ``meta["skipped"]``
    with ``on_bad_input=skip``, or raise a DataError naming file, line and value with
    ``on_bad_input=error``. Labels are sorted (numerically when all are numbers).
    ``raw_dir`` is unused (accepted so every data config has the same shape).
    """
    name = "csv"
    _check_fractions(val_fraction, test_fraction, name)
    skipped: Counter = Counter()
    bad = _BadInput(on_bad_input, skipped, name)
    examples_raw: dict[str, list[tuple[str, str, Path, int]]] = {s: [] for s in SPLITS}
    files: dict[str, list[str]] = {}

    if train_path is not None:
        if path is not None or split_column is not None:
            raise DataError(
                f"{name}: give either train_path (+ val_path/test_path) or path "
                f"(+ optional split_column), not both (path={path!r}, train_path={train_path!r})"
            )
        given = {"train": train_path, "val": val_path, "test": test_path}
        for s, p in given.items():
            if p is None:
                continue
            f = _resolve(p, f"{name}.{s}_path")
            files[s] = [str(f)]
            for text, label, _, line in _read_records(
                f, text_column, label_column, None, delimiter, bad
            ):
                examples_raw[s].append((text, label, f, line))
        carve_val, carve_test = val_path is None, test_path is None
        t_cut = test_fraction if carve_test else 0.0
        v_cut = t_cut + (val_fraction if carve_val else 0.0)
        keep = []
        for rec in examples_raw["train"]:
            u = hash_unit(rec[0])
            if u < t_cut:
                examples_raw["test"].append(rec)
            elif u < v_cut:
                examples_raw["val"].append(rec)
            else:
                keep.append(rec)
        examples_raw["train"] = keep
        split_rule = {s: ("file" if given[s] else "sha256(text) carved from train") for s in SPLITS}
    else:
        paths = _as_list(path) if path is not None else []
        if not paths:
            raise DataError(
                f"{name}: no input given; set path=<file.csv|.tsv|.jsonl> (or a list), or "
                f"train_path=... with optional val_path/test_path"
            )
        for p in paths:
            f = _resolve(p, f"{name}.path")
            files.setdefault("all", []).append(str(f))
            for text, label, split, line in _read_records(
                f, text_column, label_column, split_column, delimiter, bad
            ):
                s = split or hash_split(text, val_fraction, test_fraction)
                examples_raw[s].append((text, label, f, line))
        split_rule = {
            s: (f"column {split_column!r}" if split_column else "sha256(text)") for s in SPLITS
        }

    labels = sorted({label for _, label, _, _ in examples_raw["train"]}, key=_label_key)
    if not labels:
        raise DataError(f"{name}: no usable training records in {files}; skipped {dict(skipped)}")
    index = {label: i for i, label in enumerate(labels)}
    examples: dict[str, list[tuple[str, int]]] = {s: [] for s in SPLITS}
    for s in SPLITS:
        for text, label, f, line in examples_raw[s]:
            if label not in index:
                bad(
                    "unseen_label",
                    f,
                    line,
                    repr(label),
                    f"label not in the training split; training labels: {labels}",
                )
                continue
            examples[s].append((text, index[label]))
    train_texts = {t for t, _ in examples["train"]}
    overlap = {s: sum(1 for t, _ in examples[s] if t in train_texts) for s in ("val", "test")}
    if any(overlap.values()):
        log.warning("%s: texts also present in train: %s", name, overlap)
    return _assemble(
        name,
        out_dir,
        examples,
        labels,
        tokenizer=tokenizer,
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        lowercase=lowercase,
        max_length=max_length,
        skipped=skipped,
        source={
            "files": files,
            "text_column": text_column,
            "label_column": label_column,
            "split": split_rule,
        },
        extra={"overlap_with_train": overlap},
    )


# --------------------------------------------------------------------------- downloads


def _carve_val(
    train: list[tuple[str, int]], val_fraction: float
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Deterministic val split from train by text hash (same text -> same side)."""
    keep, val = [], []
    for rec in train:
        (val if hash_unit(rec[0]) < val_fraction else keep).append(rec)
    return keep, val


_AG_NUMERIC_ENTITY = re.compile(r"( ?)#(\d{2,5});")
_AG_NAMED_ENTITY = re.compile(r"(?<![&\w])(quot|amp|lt|gt);")


def _clean_ag_news(text: str) -> str:
    """Undo AG News escaping: literal backslash-n, and HTML entities that lost their '&'.

    The corpus writes "Apple #39;s" and "quot;yes quot;" (the '&' was stripped upstream)
    as well as proper entities; all become the characters they stand for.
    """
    text = text.replace("\\n", " ").replace("\\", " ")
    text = _AG_NUMERIC_ENTITY.sub(
        lambda m: ("" if m.group(2) == "39" else m.group(1)) + html.unescape(f"&#{m.group(2)};"),
        text,
    )
    text = _AG_NAMED_ENTITY.sub(lambda m: html.unescape(f"&{m.group(1)};"), text)
    return html.unescape(text)


def _read_ag_news_csv(path: Path, bad: _BadInput) -> list[tuple[str, int]]:
    """AG News rows: class index 1-4, title, description (no header)."""
    out = []
    valid = f"expected 3 fields: class index 1-{len(AG_NEWS_LABELS)}, title, description"
    for line, row, raw in _Rows(path, ",").csv_rows():
        if row is None:
            value = next(_raw_value(c) for c in raw if _SURROGATE.search(c))
            bad("invalid_utf8", path, line, value, "the file must be UTF-8")
            continue
        if len(row) != 3:
            bad("malformed_row", path, line, repr(row)[:120], valid)
            continue
        label = row[0].strip()
        if label not in {str(i + 1) for i in range(len(AG_NEWS_LABELS))}:
            bad("invalid_label", path, line, repr(label), valid)
            continue
        text = normalise_text(_clean_ag_news(f"{row[1]} {row[2]}"))
        if not text:
            bad("empty_text", path, line, repr(text), "title or description must be non-empty")
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


def _extract_once(
    archive: Path, target: Path, include: Callable[[str], bool] | None = None
) -> None:
    """safe_extract unless a marker says this exact archive is already unpacked."""
    marker = target / ".extracted"
    digest = sha256_file(archive)
    if marker.is_file() and marker.read_text().strip() == digest:
        return
    safe_extract(archive, target, include=include)
    atomic_write_bytes(marker, digest.encode())


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
    """AG News topic classification (4 classes; 120k train / 7.6k test upstream).

    Downloads ``train.csv``/``test.csv`` (classic ``ag_news_csv`` layout) into
    ``<raw_dir>/ag_news/`` with :func:`fetch` (reused when already there), or, with
    ``archive_url``, an ``ag_news_csv`` .tgz/.zip unpacked by :func:`safe_extract`.
    No sha256 is published for the raw CSVs, so they are pinned by their published
    MD5 and a warning says the sha256 is unverified; pass ``*_sha256`` to pin it.
    Val is carved from train by text hash.
    """
    name = "ag_news"
    _check_fractions(val_fraction, 0.0, name)
    raw = Path(raw_dir) / "ag_news"
    skipped: Counter = Counter()
    bad = _BadInput(on_bad_input, skipped, name)
    if archive_url:
        archive = fetch(
            archive_url,
            archive_sha256,
            raw / Path(archive_url.split("?")[0]).name,
            retries=retries,
        )
        _extract_once(archive, raw / "extracted")
        paths = {s: _find_one(raw / "extracted", f"{s}.csv", name) for s in ("train", "test")}
        source: dict[str, Any] = {"archive_url": archive_url, "archive_sha256": archive_sha256}
    else:
        paths = {
            "train": fetch(
                train_url, train_sha256, raw / "train.csv", md5=train_md5, retries=retries
            ),
            "test": fetch(test_url, test_sha256, raw / "test.csv", md5=test_md5, retries=retries),
        }
        source = {
            "urls": {"train": train_url, "test": test_url},
            "sha256": {"train": train_sha256, "test": test_sha256},
            "md5": {"train": train_md5, "test": test_md5},
        }
    train = _read_ag_news_csv(paths["train"], bad)
    test = _read_ag_news_csv(paths["test"], bad)
    train, val = _carve_val(train, val_fraction)
    source["files"] = {s: str(p) for s, p in paths.items()}
    source["split"] = f"upstream train/test; val = sha256(text) < {val_fraction} of train"
    return _assemble(
        name,
        out_dir,
        {"train": train, "val": val, "test": test},
        AG_NEWS_LABELS,
        tokenizer=tokenizer,
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        lowercase=lowercase,
        max_length=max_length,
        skipped=skipped,
        source=source,
    )


def _read_imdb_dir(split_dir: Path, bad: _BadInput) -> list[tuple[str, int]]:
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
                bad(
                    "invalid_utf8",
                    path,
                    1,
                    repr(data[max(e.start - 10, 0) : e.end + 10]),
                    "the file must be UTF-8",
                )
                continue
            text = normalise_text(re.sub(r"<br\s*/?>", " ", text))
            if not text:
                bad("empty_text", path, 1, repr(text), "a review must be non-empty")
                continue
            out.append((text, y))
    return out


def build_imdb(
    out_dir: str | Path,
    raw_dir: str | Path = "data/raw",
    url: str = IMDB_URL,
    sha256: str | None = IMDB_SHA256,
    val_fraction: float = 0.1,
    on_bad_input: str = "skip",
    tokenizer: str = "word",
    vocab_size: int | None = 30000,
    min_frequency: int = 2,
    lowercase: bool = True,
    max_length: int | None = 400,
    retries: int = 3,
) -> tuple[dict[str, Split], dict[str, Any]]:
    """IMDB movie-review sentiment (neg/pos; 25k train / 25k test upstream).

    Downloads ``aclImdb_v1.tar.gz`` (sha256-pinned) into ``<raw_dir>/imdb/``, unpacks it
    with :func:`safe_extract` (once; a marker records the archive's sha256), and reads
    ``aclImdb/{train,test}/{neg,pos}/*.txt`` (``<br />`` becomes a space). The
    unlabelled ``unsup`` reviews are ignored. Val is carved from train by text hash.
    """
    name = "imdb"
    _check_fractions(val_fraction, 0.0, name)
    raw = Path(raw_dir) / "imdb"
    skipped: Counter = Counter()
    bad = _BadInput(on_bad_input, skipped, name)
    archive = fetch(url, sha256, raw / Path(url.split("?")[0]).name, retries=retries)
    _extract_once(archive, raw / "extracted", include=lambda n: "/unsup/" not in f"/{n}")
    candidates = sorted(
        p.parent
        for p in (raw / "extracted").rglob("train")
        if p.is_dir() and (p / "pos").is_dir() and (p.parent / "test").is_dir()
    )
    if len(candidates) != 1:
        raise DataError(
            f"{archive}: expected one aclImdb/ directory with train/ and test/ inside "
            f"{raw / 'extracted'}, found {[str(c) for c in candidates]}"
        )
    base = candidates[0]
    train = _read_imdb_dir(base / "train", bad)
    test = _read_imdb_dir(base / "test", bad)
    train, val = _carve_val(train, val_fraction)
    return _assemble(
        name,
        out_dir,
        {"train": train, "val": val, "test": test},
        IMDB_LABELS,
        tokenizer=tokenizer,
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        lowercase=lowercase,
        max_length=max_length,
        skipped=skipped,
        source={
            "url": url,
            "sha256": sha256,
            "dir": str(base),
            "split": f"upstream train/test; val = sha256(text) < {val_fraction} of train",
        },
    )
