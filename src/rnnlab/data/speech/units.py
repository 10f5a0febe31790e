"""CTC target units of transcribed speech: characters, words or subword pieces.

The label vocabulary is learnt from the TRAIN transcripts only (``prepare.units``):

* ``char`` (default): one label per character; the space between words is the label
  :data:`~rnnlab.data.text.tokenizer.WORD_BOUNDARY` (``▁``);
* ``word``: one label per whitespace-separated word;
* ``bpe`` / ``unigram``: subword pieces trained with HF ``tokenizers``
  (:func:`~rnnlab.data.text.tokenizer.train_piece_tokenizer`), words starting with ``▁``;
  the tokenizer is saved as ``tokenizer.json`` beside the processed splits.

Label 0 is always ``<unk>``: a val/test character or word never seen in training maps to
it (counted in ``meta["oov"]``), so every split encodes. Dataset label ``k`` is model
output ``k + 1`` (the CTC blank is output 0, the task's business). ``vocab_size`` caps
char/word vocabularies to the most frequent symbols (``<unk>`` included) and bounds the
piece vocabulary. Text back from labels (:meth:`Units.decode`): ``word`` joins with
spaces; the others join with nothing and turn ``▁`` into spaces —
``meta["decode"]`` records which.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from rnnlab.data.text.tokenizer import (
    PIECE_KINDS,
    PIECE_UNK,
    TOKENIZER_FILE,
    WORD_BOUNDARY,
    train_piece_tokenizer,
)
from rnnlab.errors import DataError
from rnnlab.io import atomic_write_text

UNITS = ("char", "word", *PIECE_KINDS)
UNK = PIECE_UNK


def symbols(text: str, kind: str) -> list[str]:
    """``text`` as char or word symbols (spaces as :data:`WORD_BOUNDARY` for chars)."""
    if kind == "word":
        return text.split()
    return [WORD_BOUNDARY if c == " " else c for c in text]


@dataclass
class Units:
    """A trained label vocabulary: ``labels[k]`` is dataset label ``k`` (``<unk>`` = 0)."""

    kind: str
    labels: list[str]
    tokenizer: Tokenizer | None = None

    def __post_init__(self) -> None:
        self._index = {s: i for i, s in enumerate(self.labels)}

    def encode(self, text: str) -> tuple[list[int], int]:
        """(label ids, how many of them are ``<unk>``) of a normalised transcript."""
        if self.tokenizer is not None:
            ids = self.tokenizer.encode(text).ids
        else:
            ids = [self._index.get(s, 0) for s in symbols(text, self.kind)]
        return ids, sum(1 for i in ids if i == 0)

    def decode(self, ids: Sequence[int]) -> str:
        """The text of label ids (see the module docstring)."""
        return labels_to_text([self.labels[i] for i in ids], self.kind)

    def save(self, out_dir: str | Path | None) -> str | None:
        """Write ``tokenizer.json`` (pieces only) to ``out_dir``; its file name, or None."""
        if self.tokenizer is None or out_dir is None:
            return None
        atomic_write_text(Path(out_dir) / TOKENIZER_FILE, self.tokenizer.to_str())
        return TOKENIZER_FILE

    def as_meta(self) -> dict[str, Any]:
        return {
            "units": self.kind,
            "unk": UNK,
            "decode": {
                "join": " " if self.kind == "word" else "",
                "word_boundary": None if self.kind == "word" else WORD_BOUNDARY,
            },
        }


def labels_to_text(labels: Sequence[str], kind: str) -> str:
    """Spell label strings as text: words joined by spaces, or chars/pieces joined with
    ``▁`` read as a space."""
    if kind == "word":
        return " ".join(labels)
    return "".join(labels).replace(WORD_BOUNDARY, " ").strip()


def train_units(texts: Sequence[str], kind: str = "char", vocab_size: int | None = None) -> Units:
    """The label vocabulary of ``kind`` learnt from the TRAIN transcripts ``texts``."""
    if kind not in UNITS:
        raise DataError(f"units={kind!r} is not valid; valid: {', '.join(UNITS)}")
    if vocab_size is not None and (
        isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 2
    ):
        raise DataError(f"vocab_size={vocab_size!r} must be an integer >= 2 or null")
    if not texts:
        raise DataError(f"units={kind}: no train transcripts to learn a vocabulary from")
    if kind in PIECE_KINDS:
        tok = train_piece_tokenizer(texts, kind, vocab_size)
        labels = [tok.id_to_token(i) for i in range(tok.get_vocab_size())]
        return Units(kind, labels, tok)
    counts = Counter(s for t in texts for s in symbols(t, kind))
    counts.pop(UNK, None)
    ranked = sorted(counts, key=lambda s: (-counts[s], s))
    if vocab_size is not None:
        ranked = ranked[: vocab_size - 1]
    return Units(kind, [UNK, *sorted(ranked)])
