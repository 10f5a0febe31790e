"""Checkpoint and output files, safely.

* loading: tensors and plain containers only (``weights_only=True``), never pickled code;
* saving: atomically (:func:`rnnlab.io.atomic_torch_save`: temp file in the same
  directory, fsync, rename), so a crash or a full disk during a save leaves the previous
  checkpoint intact and no reader ever sees a torn file;
* which files a run keeps: ``best.ckpt`` (the monitored ``ModelCheckpoint``) and
  ``last.ckpt`` (:class:`LastCheckpoint`, the last completed epoch);
* the output directory is checked at start, so an unwritable one fails before training.
"""

from __future__ import annotations

import errno
import hashlib
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from rnnlab.errors import OutputError
from rnnlab.io import atomic_torch_save


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` with errors that name the file and the cause."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path={str(path)!r}: no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path}: refused to load — the checkpoint contains objects other than tensors and "
            f"plain containers (possible code payload); only weights_only checkpoints load. "
            f"Detail: {str(err).splitlines()[0]}"
        ) from None


_CODE_FINGERPRINT: str | None = None


def code_fingerprint() -> str:
    """sha256 over the rnnlab package's Python sources (paths and contents).

    Stored in every checkpoint, so ``ckpt_path=auto`` resumes only a run written by the
    same code: after a code change (DVC re-runs the stage) an interrupted run's
    checkpoint is stale, not something to continue.
    """
    global _CODE_FINGERPRINT
    if _CODE_FINGERPRINT is None:
        package = Path(__file__).resolve().parent
        h = hashlib.sha256()
        for path in sorted(package.rglob("*.py")):
            h.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes() + b"\0")
        _CODE_FINGERPRINT = h.hexdigest()
    return _CODE_FINGERPRINT


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's TorchCheckpointIO, but every save is atomic in the target directory.

    (Lightning's own save goes through an fsspec transaction that writes the file in
    the system temp directory and moves it, which is a plain copy across filesystems
    and never fsyncs.) Every checkpoint records the code that wrote it under
    ``checkpoint["rnnlab"]["code_sha256"]``; other ``rnnlab`` entries (the run's
    ``fit_status``, see :mod:`rnnlab.resume`) are kept.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        record = {**checkpoint.get("rnnlab", {}), "code_sha256": code_fingerprint()}
        atomic_torch_save({**checkpoint, "rnnlab": record}, path)


class LastCheckpoint(ModelCheckpoint):
    """``<dirpath>/last.ckpt``: the last completed epoch, rewritten after every epoch.

    Since Lightning 2.6, ``ModelCheckpoint(save_last=True)`` writes ``last.ckpt`` only
    at a step where it also saved a top-k checkpoint, so beside ``save_top_k=1`` it is a
    copy of the *best* epoch, and a resumed run would train the epochs after the best
    one again. This callback monitors nothing and keeps one file, ``last.ckpt``,
    replaced (atomically, through :class:`AtomicCheckpointIO`) after every
    ``every_n_epochs``-th epoch. Lightning runs checkpoint callbacks after the others,
    in the order given, so listed after the monitored checkpoint it stores that
    callback's (and early stopping's) state including the epoch just finished.
    """

    def __init__(self, dirpath: str | Path, every_n_epochs: int = 1) -> None:
        super().__init__(
            dirpath=dirpath,
            filename=self.CHECKPOINT_NAME_LAST,
            monitor=None,
            save_top_k=1,
            save_last=False,
            every_n_epochs=every_n_epochs,
            enable_version_counter=False,
            auto_insert_metric_name=False,
        )

    @property
    def path(self) -> str | None:
        """The file this callback last wrote (or restored), if it exists."""
        path = self.best_model_path
        return path if path and Path(path).is_file() else None


def last_checkpoint(trainer: L.Trainer) -> str | None:
    """The run's ``last.ckpt`` (its :class:`LastCheckpoint`), or None."""
    for cb in trainer.callbacks:
        if isinstance(cb, LastCheckpoint) and cb.path:
            return cb.path
    return None


def best_checkpoint(trainer: L.Trainer) -> str | None:
    """The monitored checkpoint's best file, else ``last.ckpt``; None under fast_dev_run
    (which writes no checkpoint) or when no checkpoint callback wrote one."""
    if trainer.fast_dev_run:
        return None
    for cb in trainer.callbacks:
        if isinstance(cb, ModelCheckpoint) and not isinstance(cb, LastCheckpoint):
            for path in (cb.best_model_path, cb.last_model_path):
                if path and Path(path).is_file():
                    return path
    return last_checkpoint(trainer)


def check_output_dir(path: str | Path, key: str = "paths.output_dir") -> Path:
    """Create ``path`` if needed and prove it is writable, or fail naming it.

    Probes with a real file write (not ``os.access``, which says yes to root even on
    read-only mounts), so a read-only, full or misplaced output directory stops the
    run before any data preparation or training.
    """
    path = Path(path)
    hint = "choose another with hydra.run.dir=<dir> (sweeps: hydra.sweep.dir=<dir>)"
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".rnnlab-write-probe.")
        try:
            os.write(fd, b"rnnlab")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as err:
        reason = err.strerror or str(err)
        if err.errno == errno.ENOSPC:
            reason += " (the disk is full)"
        raise OutputError(
            err.errno, f"{key}={str(path)!r} is not writable: {reason}; {hint}"
        ) from err
    return path
