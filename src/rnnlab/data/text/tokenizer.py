"""Tokenizers of the text datasets: HF ``tokenizers`` with ``[PAD]`` = 0 and ``[UNK]`` = 1.

A tokenizer is trained on the TRAIN split only, so no vocabulary leaks from val/test:
a character or word never seen in training maps to ``[UNK]``. It is saved as
``<data_dir>/tokenizer.json`` next to the processed splits; :func:`load_tokenizer`
reads it back (to decode predictions, or to encode new text the same way).

Kinds (``TOKENIZER_KINDS``):

* ``char``: one token per grapheme cluster (regex ``\\X``), spaces included;
* ``word``: words and punctuation runs (``Whitespace`` pre-tokenizer);
* ``bpe``: byte-pair merges over words, up to ``vocab_size`` (default 8000).

Every kind NFC-normalises first (and lower-cases with ``lowercase=True``).

Speech-recognition targets use :func:`train_piece_tokenizer` instead: BPE or unigram
subword pieces with a ``<unk>`` = 0 special only (CTC needs no padding token) and the
SentencePiece word-boundary marker ``▁`` at the start of each word, so a decoded text is
``"".join(pieces).replace("▁", " ").strip()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from rnnlab.errors import DataError

PAD, UNK = "[PAD]", "[UNK]"
PAD_ID, UNK_ID = 0, 1
TOKENIZER_KINDS = ("char", "word", "bpe")
TOKENIZER_FILE = "tokenizer.json"
DEFAULT_BPE_VOCAB = 8000
PIECE_KINDS = ("bpe", "unigram")
PIECE_UNK = "<unk>"
WORD_BOUNDARY = "\u2581"  # "▁", as in SentencePiece
DEFAULT_PIECE_VOCAB = 256


def _model_and_trainer(
    kind: str, vocab_size: int | None, min_frequency: int
) -> tuple[Tokenizer, Any]:
    """An untrained tokenizer of ``kind`` and the trainer that fills its vocabulary."""
    specials = [PAD, UNK]
    if kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        trainer = trainers.BpeTrainer(
            vocab_size=int(vocab_size or DEFAULT_BPE_VOCAB),
            min_frequency=int(min_frequency),
            special_tokens=specials,
            show_progress=False,
        )
        return tok, trainer
    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    if kind == "char":
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"\X"), behavior="isolated")
    else:
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(
        vocab_size=int(vocab_size) if vocab_size else 10_000_000,
        min_frequency=int(min_frequency),
        special_tokens=specials,
        show_progress=False,
    )
    return tok, trainer


def train_tokenizer(
    texts: Iterable[str],
    kind: str = "char",
    *,
    vocab_size: int | None = None,
    min_frequency: int = 1,
    lowercase: bool = False,
) -> Tokenizer:
    """Train a HF tokenizer of ``kind`` on ``texts`` with ``[PAD]``=0 and ``[UNK]``=1.

    ``vocab_size`` caps the vocabulary (specials included; null = every token seen at
    least ``min_frequency`` times, 8000 for ``bpe``). Unseen symbols map to ``[UNK]``.
    """
    if kind not in TOKENIZER_KINDS:
        raise DataError(f"tokenizer={kind!r} is not valid; valid: {', '.join(TOKENIZER_KINDS)}")
    if vocab_size is not None and int(vocab_size) < 3:
        raise DataError(f"tokenizer vocab_size={vocab_size} is too small; use >= 3 or null")
    tok, trainer = _model_and_trainer(kind, vocab_size, min_frequency)
    norm = [normalizers.NFC()] + ([normalizers.Lowercase()] if lowercase else [])
    tok.normalizer = normalizers.Sequence(norm)
    tok.train_from_iterator(list(texts), trainer)
    if tok.token_to_id(PAD) != PAD_ID or tok.token_to_id(UNK) != UNK_ID:  # pragma: no cover
        raise DataError("tokenizer training broke the [PAD]=0/[UNK]=1 convention")
    return tok


def load_tokenizer(data_dir: str | Path) -> Tokenizer:
    """The tokenizer a builder saved next to the processed splits in ``data_dir``."""
    path = Path(data_dir) / TOKENIZER_FILE
    if not path.is_file():
        raise DataError(f"{path}: tokenizer not found; re-run the prepare stage")
    return Tokenizer.from_file(str(path))


def train_piece_tokenizer(
    texts: Iterable[str], kind: str = "bpe", vocab_size: int | None = None
) -> Tokenizer:
    """BPE or unigram pieces trained on ``texts`` (TRAIN transcripts only): ``<unk>`` = 0,
    then the pieces; words start with :data:`WORD_BOUNDARY` (Metaspace).

    ``vocab_size`` (default :data:`DEFAULT_PIECE_VOCAB`, ``<unk>`` included) is an upper
    bound: a small corpus may give fewer pieces.
    """
    if kind not in PIECE_KINDS:
        raise DataError(f"piece tokenizer kind={kind!r}; valid: {', '.join(PIECE_KINDS)}")
    size = int(vocab_size or DEFAULT_PIECE_VOCAB)
    if size < 2:
        raise DataError(f"vocab_size={vocab_size!r} is too small for {kind} pieces; use >= 2")
    if kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token=PIECE_UNK))
        trainer: Any = trainers.BpeTrainer(
            vocab_size=size, special_tokens=[PIECE_UNK], show_progress=False
        )
    else:
        tok = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(
            vocab_size=size, special_tokens=[PIECE_UNK], unk_token=PIECE_UNK, show_progress=False
        )
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=WORD_BOUNDARY, prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement=WORD_BOUNDARY, prepend_scheme="always")
    tok.train_from_iterator(list(texts), trainer)
    if tok.token_to_id(PIECE_UNK) != 0:  # pragma: no cover
        raise DataError(f"{kind} tokenizer training broke the <unk>=0 convention")
    return tok
