"""Transcript normalisation for speech recognition targets (``prepare.normalize_text``).

The same text must always give the same targets, and a recogniser should not be asked to
guess capitalisation or punctuation it cannot hear. Applied to every transcript, in order:

1. Unicode NFKC (full-width forms, ligatures and compatibility characters folded), and
   the typographic apostrophes ``’ ‘ ʼ`` turned into ``'``;
2. ``lowercase`` (default true);
3. ``digits``: ``keep`` (default), ``spell`` (each digit as its English word, separated
   by spaces: ``"42" -> "four two"``; numbers are *not* read as "forty-two") or ``drop``;
4. ``strip_punctuation`` (default true): every Unicode punctuation character
   (categories ``P*``) except the apostrophe becomes a space (``"well-known" ->
   "well known"``, ``"don't"`` stays); with ``keep_apostrophes=false`` apostrophes go too;
5. whitespace collapsed to single spaces, ends stripped.

A transcript left empty is skipped and counted (``empty_transcript``).
:meth:`TextNormalization.as_meta` is what ``meta["text_normalization"]`` records.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, fields
from typing import Any

from rnnlab.data.speech.labels import DIGITS
from rnnlab.errors import DataError

DIGIT_MODES = ("keep", "spell", "drop")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})
_DIGIT = re.compile(r"[0-9]")


@dataclass(frozen=True)
class TextNormalization:
    """The ``prepare.normalize_text`` settings (see the module docstring)."""

    lowercase: bool = True
    strip_punctuation: bool = True
    keep_apostrophes: bool = True
    digits: str = "keep"

    def __post_init__(self) -> None:
        if self.digits not in DIGIT_MODES:
            raise DataError(
                f"normalize_text.digits={self.digits!r}; valid: {', '.join(DIGIT_MODES)}"
            )
        for f in ("lowercase", "strip_punctuation", "keep_apostrophes"):
            if not isinstance(getattr(self, f), bool):
                raise DataError(f"normalize_text.{f}={getattr(self, f)!r} must be true or false")

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | None) -> TextNormalization:
        """From the config dict; an unknown key is a DataError naming the valid ones."""
        cfg = dict(cfg or {})
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(cfg) - set(valid))
        if unknown:
            raise DataError(f"normalize_text: unknown key(s) {unknown}; valid: {', '.join(valid)}")
        return cls(**cfg)

    def __call__(self, text: str) -> str:
        """``text`` normalised (see the module docstring)."""
        text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)
        if self.lowercase:
            text = text.lower()
        if self.digits == "spell":
            text = _DIGIT.sub(lambda m: f" {DIGITS[int(m.group(0))]} ", text)
        elif self.digits == "drop":
            text = _DIGIT.sub(" ", text)
        if self.strip_punctuation:
            text = "".join(
                " "
                if unicodedata.category(c).startswith("P")
                and (c != "'" or not self.keep_apostrophes)
                else c
                for c in text
            )
        return " ".join(text.split())

    def as_meta(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "unicode": "NFKC",
            "rules": "NFKC; typographic apostrophes -> '; lowercase; digits keep|spell "
            "(each digit as its word)|drop; punctuation (Unicode P*) -> space, "
            "apostrophes kept if keep_apostrophes; whitespace collapsed",
        }
