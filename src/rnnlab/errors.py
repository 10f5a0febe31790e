"""The errors a user can cause, shared by every package (no torch import).

Each message names the file or config key, the bad value and what would be valid.
"""

from __future__ import annotations


class DataError(ValueError):
    """A user-caused data problem: the message names the file, the value and what is valid."""


class OutputError(OSError):
    """An output file or directory cannot be written; the message names the path."""
