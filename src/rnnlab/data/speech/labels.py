"""The label vocabularies of the speech datasets, and the one check of a ``words`` list.

:data:`CORE_WORDS` are the ten Speech Commands core words (Warden 2018), used by the real
archive and by its synthetic stand-in; :data:`DIGITS` are the CTC labels of the spoken
digit strings (label id = the digit).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rnnlab.errors import DataError

CORE_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def check_words(where: str, words: Sequence[Any]) -> None:
    """Non-empty, unique, all text — or a DataError (YAML reads unquoted yes/no as bools)."""
    bad = [w for w in words if not isinstance(w, str) or not w.strip()]
    if bad:
        raise DataError(
            f"{where}: words={list(words)!r} has non-text entries {bad}; quote them in YAML "
            '(yes/no/on/off are booleans unquoted), e.g. ["yes", "no", "on", "off"]'
        )
    if not words or len(set(words)) != len(words):
        raise DataError(f"{where}: words={list(words)!r} must be non-empty and unique")
