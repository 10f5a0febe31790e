"""The bad-input policy every reader shares: skip and count, or stop naming file and line.

``on_bad_input=skip`` (the default) drops a bad record or file, counts it under a reason
key that ends up in ``meta["skipped"]`` and logs it; ``on_bad_input=error`` raises a
:class:`~rnnlab.errors.DataError` naming the file (and line), the reason, the value and
what would be valid. Nothing is lost silently either way.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rnnlab.errors import DataError

BAD_INPUT_MODES = ("skip", "error")

log = logging.getLogger(__name__)


def check_mode(mode: str, where: str) -> str:
    """``mode`` if it is a valid ``on_bad_input`` value, else a DataError naming ``where``."""
    if mode not in BAD_INPUT_MODES:
        raise DataError(
            f"{where}: on_bad_input={mode!r} is not valid; valid: {', '.join(BAD_INPUT_MODES)}"
        )
    return mode


def location(path: str | Path, line: int | None = None) -> str:
    """'file:line' (or 'file') — how every bad-input message starts."""
    return f"{path}:{line}" if line is not None else str(path)


class BadInput:
    """Counts or raises on a bad record, depending on ``on_bad_input``.

    ``bad(reason, where, detail, hint)``: ``where`` from :func:`location`, ``reason`` a
    short key (``invalid_utf8``, ``too_short``, ...), ``detail`` what was wrong (the
    value), ``hint`` what would be valid.
    """

    def __init__(self, mode: str, where: str, skipped: Counter | None = None) -> None:
        self.mode = check_mode(mode, where)
        self.where = where
        self.skipped: Counter = skipped if skipped is not None else Counter()

    def __call__(self, reason: str, where: str, detail: str, hint: str = "") -> None:
        message = f"{where}: {reason.replace('_', ' ')}: {detail}" + (f"; {hint}" if hint else "")
        if self.mode == "error":
            raise DataError(message + " (set on_bad_input=skip to skip and count such input)")
        self.skipped[reason] += 1
        log.debug("skipping %s", message)

    @property
    def counts(self) -> dict[str, int]:
        """Skipped items by reason, sorted by reason (what ``meta["skipped"]`` records)."""
        return dict(sorted(self.skipped.items()))

    def log_summary(self) -> None:
        """One warning line with every reason's count (nothing when nothing was skipped)."""
        if self.skipped:
            total = sum(self.skipped.values())
            log.warning("%s: skipped %d bad item(s): %s", self.where, total, self.counts)


@dataclass(frozen=True)
class OnBadInput:
    """The ``on_bad_input`` option of every builder that reads user files: ``skip`` or
    ``error`` (:data:`BAD_INPUT_MODES`); :meth:`policy` is the :class:`BadInput` it sets."""

    on_bad_input: str = "skip"

    def validate(self, where: str) -> None:
        check_mode(self.on_bad_input, where)

    def policy(self, where: str, skipped: Counter | None = None) -> BadInput:
        """A :class:`BadInput` in this mode; ``where`` starts its summary line."""
        return BadInput(self.on_bad_input, where, skipped)
