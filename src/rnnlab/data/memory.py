"""Handing freed heap memory back to the operating system while a large corpus is packed.

Preparing a corpus allocates one tensor per utterance (hundreds of KB each, served from
glibc's heap) and later one large tensor per split. Freed utterance tensors stay in the
process's heap, so without help the resident set grows by the whole split again while it
is packed. :func:`release_freed_memory` calls glibc's ``malloc_trim(0)``, which returns
free heap pages to the kernel; elsewhere (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache


@cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> None:
    """``malloc_trim(0)`` where glibc provides it; a no-op otherwise."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
