"""Durable file writes and content hashes, shared by every writer in rnnlab (no torch).

Every file rnnlab writes — processed data, checkpoints, metrics, plots, reports,
gradient-flow records — goes through :func:`atomic_write_with` (or
:func:`atomic_write_bytes`): a temp file beside the target, written as a stream, fsynced, renamed over it, and the directory fsynced. A reader sees the old
file or the new one, never a torn mix; a failed write leaves the old file intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from rnnlab.errors import OutputError

_CHUNK = 1 << 20


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path``, fsync it, then rename it over ``path``.

    On any failure (full disk, crash, interrupt) the temp file is removed and ``path``
    is untouched; an OSError is re-raised as :class:`OutputError` naming the path.
    """
    atomic_write_with(path, lambda f: f.write(data))


def atomic_write_with(path: str | Path, write: Callable[[BinaryIO], Any]) -> None:
    """:func:`atomic_write_bytes` for a writer that streams into the open temp file
    (``torch.save(obj, f)``), so a multi-GB file never exists as one bytes object too."""
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        fsync_dir(path.parent)
    except OSError as err:
        if isinstance(err, OutputError):
            raise
        raise OutputError(
            err.errno,
            f"{path}: cannot write ({err.strerror or err}); the previous file, if any, is intact",
        ) from err
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` streamed into :func:`atomic_write_with`'s temp file (torch is
    imported here, not by this module). Saving to a file object, not a path, names the
    archive's inner folder ``archive`` as for an in-memory buffer, so identical objects
    give identical bytes whatever the temp file is called, and no copy of a multi-GB
    split is held in memory. torch reports a failed write (a full disk) as a RuntimeError
    about the archive's position; the OSError behind it is raised instead."""
    import torch

    def save(f: BinaryIO) -> None:
        sink = _RecordingWriter(f)
        try:
            torch.save(obj, sink)
        except RuntimeError as err:
            if sink.error is not None:
                raise sink.error from err
            raise

    atomic_write_with(path, save)


class _RecordingWriter:
    """A write-only file wrapper that remembers the OSError a write raised."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.error = f, None

    def write(self, data: bytes) -> int:
        try:
            return self.f.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.f.flush()


def atomic_write_text(path: str | Path, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON (sorted keys, trailing newline) atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=True) + "\n")


def atomic_save_figure(fig: Any, path: str | Path, **savefig_kwargs: Any) -> None:
    """Render a matplotlib figure in memory, then write it atomically (format from suffix)."""
    import io as _io

    buffer = _io.BytesIO()
    fmt = Path(path).suffix.lstrip(".") or "png"
    fig.savefig(buffer, format=fmt, **savefig_kwargs)
    atomic_write_bytes(path, buffer.getvalue())


def fsync_dir(directory: str | Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def file_digest(path: str | Path, algo: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 1 MiB chunks (``algo``: any hashlib name)."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_file(path: str | Path) -> str:
    """sha256 hex digest of a file."""
    return file_digest(path, "sha256")


def sha256_bytes(data: bytes) -> str:
    """sha256 hex digest of bytes."""
    return hashlib.sha256(data).hexdigest()
