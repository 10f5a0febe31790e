"""Real, human-written utterances from the installed ``chatterbot_corpus`` package.

The corpus is ``<root>/<language>/<category>.yml`` files of conversations (lists of
utterances); it ships with the package, so both datasets here are offline:

* :func:`build_text_langid`: the class is the *language* directory;
* :func:`build_text_topics`: the class is the *category* file of one language.

Both go through one builder: read every class's files (:func:`read_conversations`),
:func:`~rnnlab.data.text.encode.dedupe` (a text under two classes is ambiguous and
dropped), :func:`~rnnlab.data.text.encode.limit_classes`, a sha256(text) split, and
:func:`~rnnlab.data.text.encode.assemble`. Every drop is counted in ``meta["skipped"]``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rnnlab.data.format import Split
from rnnlab.data.options import Fractions, dataset_builder
from rnnlab.data.text.encode import (
    EncodeOptions,
    as_list,
    assemble,
    dedupe,
    limit_classes,
    normalise_text,
    split_by_hash,
)
from rnnlab.errors import DataError

log = logging.getLogger(__name__)

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
# meta["source"]["corpus_dir"] of the packaged corpus: by name, not by path, so
# meta.json is the same on every machine (DVC hashes it)
PACKAGED_CORPUS = "<chatterbot_corpus package>/data"


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


def _subdirs(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir())


@dataclass(frozen=True)
class _Classes:
    """What one chatterbot dataset reads: each label's YAML files, and its class limits.

    ``min_key`` names the minimum in messages (``min_per_language``/``min_per_class``);
    ``where`` and ``hint`` start and end the "too few classes" error; ``source`` and
    ``source_tail`` go before and after the per-class counts in ``meta["source"]``.
    """

    name: str
    files: dict[str, list[Path]]
    min_key: str
    minimum: int
    maximum: int | None
    where: str
    hint: str
    source: dict[str, Any]
    source_tail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Languages:
    """``text_langid``'s classes: the language directories ``<corpus>/<language>/``.

    Languages below ``min_per_language`` distinct utterances are dropped (counted),
    larger ones capped at ``max_per_language``.
    """

    languages: str | Sequence[str] = DEFAULT_LANGID_LANGUAGES
    min_per_language: int = 100
    max_per_language: int | None = None

    def select(self, root: Path, split: Fractions) -> _Classes:
        name = "text_langid"
        wanted = as_list(self.languages)
        available = _subdirs(root)
        unknown = [lang for lang in wanted if lang not in available]
        if not wanted or unknown:
            raise DataError(
                f"{name}: languages {unknown or wanted!r} not found in {root}; valid: "
                f"{', '.join(available)}"
            )
        if len(set(wanted)) < 2:
            raise DataError(f"{name}: languages={wanted}; need at least two distinct languages")
        files = {lang: sorted((root / lang).glob("*.yml")) for lang in sorted(set(wanted))}
        val, test = split.val_fraction, split.test_fraction
        return _Classes(
            name,
            files,
            "min_per_language",
            int(self.min_per_language),
            self.max_per_language,
            name,
            "lower min_per_language or add languages",
            {"files": {lang: [p.name for p in paths] for lang, paths in files.items()}},
            {"split": f"sha256(text) {1 - val - test:.2f}/{val:.2f}/{test:.2f}"},
        )


@dataclass(frozen=True)
class Topics:
    """``text_topics``'s classes: each file ``<corpus>/<language>/<category>.yml``.

    Categories below ``min_per_class`` distinct utterances are dropped (counted), larger
    ones capped at ``max_per_class``.
    """

    language: str = "english"
    min_per_class: int = 40
    max_per_class: int | None = None

    def select(self, root: Path, split: Fractions) -> _Classes:
        lang_dir = root / self.language
        if not lang_dir.is_dir():
            valid = _subdirs(root)
            raise DataError(f"{lang_dir}: language {self.language!r} not found; valid: {valid}")
        files = {path.stem: [path] for path in sorted(lang_dir.glob("*.yml"))}
        minimum, maximum = int(self.min_per_class), self.max_per_class
        return _Classes(
            "text_topics",
            files,
            "min_per_class",
            minimum,
            maximum,
            str(lang_dir),
            "lower min_per_class",
            {"language": self.language},
        )


def _build_chatterbot(
    out_dir: str | Path,
    raw_dir: str | Path | None = None,
    corpus_dir: str | Path | None = None,
    *,
    classes: Languages | Topics,
    encode: EncodeOptions,
    split: Fractions,
) -> tuple[dict[str, Split], dict[str, Any]]:
    """The one chatterbot builder: read, dedupe, limit, hash-split and assemble the
    ``classes`` of the corpus at ``corpus_dir`` (None: the installed package's).

    ``meta["source"]`` is the corpus and its dir, the classes' source, the utterances
    read and kept per class, then the classes' source tail. ``raw_dir`` is unused (the
    corpus ships with the package).
    """
    chosen = classes.select(_corpus_dir(corpus_dir), split)
    name, minimum, min_key = chosen.name, chosen.minimum, chosen.min_key
    skipped: Counter = Counter()
    items: list[tuple[str, str]] = []
    read: dict[str, int] = {}
    for label, paths in chosen.files.items():
        texts = [t for p in paths for t in read_conversations(p, skipped)]
        read[label] = len(texts)
        items.extend((t, label) for t in texts)
    kept, dropped = limit_classes(dedupe(items, skipped), minimum, chosen.maximum, skipped)
    if dropped:
        log.warning("%s: dropped classes below %s=%s: %s", name, min_key, minimum, dropped)
    labels = sorted({label for _, label in kept})
    if len(labels) < 2:
        raise DataError(
            f"{chosen.where}: only {labels} have >= {min_key}={minimum} distinct utterances "
            f"(dropped {dropped}); {chosen.hint}"
        )
    per_class = Counter(label for _, label in kept)
    source = {
        "corpus": "chatterbot_corpus",
        "corpus_dir": str(corpus_dir) if corpus_dir else PACKAGED_CORPUS,
        **chosen.source,
        "utterances_read": read,
        "utterances_kept": {k: per_class[k] for k in labels},
        **chosen.source_tail,
    }
    return assemble(
        name,
        out_dir,
        split_by_hash(kept, labels, split.val_fraction, split.test_fraction),
        labels,
        encode,
        skipped=skipped,
        source=source,
        extra={"dropped_classes": dropped},
    )


build_text_langid = dataset_builder(
    "text_langid",
    _build_chatterbot,
    """Language identification of real, human-written chatterbot utterances.

    Why this shape: short utterances in related Latin-script languages are a small,
    offline, real-data task where a character-level RNN has to learn orthography.
    Utterances are deduplicated (one text under two languages is ambiguous and dropped),
    languages below ``min_per_language`` distinct utterances are dropped (counted), and
    the 80/10/10 split is a hash of the text, so no utterance is in two splits.
    ``corpus_dir`` overrides the corpus location (``<corpus_dir>/<language>/*.yml``).
    """,
    classes=Languages(),
    encode=EncodeOptions(tokenizer="char", lowercase=False),
    split=Fractions(),
)

build_text_topics = dataset_builder(
    "text_topics",
    _build_chatterbot,
    """Topic classification: each chatterbot file of ``language`` is one category.

    Classes with fewer than ``min_per_class`` distinct utterances are dropped (counted);
    the classes stay imbalanced, so meta carries ``balance`` and ``class_weights``
    (inverse train frequency, mean 1) for a weighted loss. An utterance found in two
    categories is ambiguous and dropped; the split is a hash of the text.
    """,
    classes=Topics(),
    encode=EncodeOptions(max_length=64),
    split=Fractions(),
)
