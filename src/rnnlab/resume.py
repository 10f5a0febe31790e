"""Where a run starts: ``ckpt_path`` resolved, and the record that tells a finished run
from an interrupted one.

``ckpt_path`` takes

* ``null``: train from scratch;
* a file: continue from that checkpoint (its epoch and global step), after checking
  it loads with ``weights_only=True`` (:func:`rnnlab.checkpoints.load_checkpoint`) and
  that it was trained on the data this run has (:func:`check_same_data`);
* ``last``: Lightning's own lookup of ``last.ckpt`` in the checkpoint directory (checked
  the same way when that file exists);
* ``auto``: continue ``<output_dir>/checkpoints/last.ckpt`` if, and only if, it is an
  *interrupted* run of the same config, code and data; anything else starts fresh.

Checkpoints know their data: they record the sha256 of the split files they were
trained on (``ProcessedDataModule`` state). An explicit resume (a file, ``last``) whose
data directory now holds other data — prepared again from another source under the same
``data.name``, or with other ``prepare.*`` settings — is refused with both checksums and
the fix (:func:`check_same_data`; ``rnnlab.evaluate`` uses the same rule), never a raw
``size mismatch`` from ``load_state_dict`` or a silent continuation on other data. Giving
the checkpoint's own ``prepare.*`` settings is the fix: with ``auto_prepare`` (the
default) the train command prepares that data again before it resumes. ``auto`` starts
fresh instead (a changed dataset is a new run, as in DVC), saying why, with the
checksums.

DVC keeps both checkpoints of a train stage (``persist: true``) and runs it with
``ckpt_path=auto``, so an interrupted ``dvc repro`` resumes where it stopped, while a
stage DVC re-runs because a parameter, the code or the data changed starts over.

Finished or interrupted is not guessed (from epoch numbers or early-stopping state): the
run records it. ``last.ckpt`` holds the last completed epoch
(:class:`rnnlab.checkpoints.LastCheckpoint`); when ``trainer.fit`` ends — all epochs done,
early stopping, or training diverged — :func:`record_fit_end` writes
``checkpoint["rnnlab"]["fit_status"]`` into that same file. A run killed before that has
no ``fit_status`` and is resumed; one with a ``fit_status`` is finished and starts fresh.
Checkpoints set aside move to ``checkpoints/stale/``, so the new run's ``best.ckpt`` is
not renamed ``best-v1.ckpt`` by Lightning.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.trainer.states import TrainerStatus
from omegaconf import DictConfig, OmegaConf

from rnnlab.checkpoints import (
    AtomicCheckpointIO,
    code_fingerprint,
    last_checkpoint,
    load_checkpoint,
)
from rnnlab.compat import upgrade_targets
from rnnlab.errors import DataError

log = logging.getLogger(__name__)

# The run-config keys that make two runs the same run (the rest: logging, paths, …).
SAME_RUN_KEYS = ("model", "optim", "data", "task", "seed", "trainer")
FIT_STATUSES = ("completed", "diverged")


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    """The ``ckpt_path`` to hand ``trainer.fit`` (see the module docstring)."""
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path != "auto":
        if ckpt_path:
            check_explicit_resume(cfg, ckpt_path)
        return ckpt_path
    ckpt_dir = Path(cfg.paths.output_dir) / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    if not last.is_file():
        if any(ckpt_dir.glob("*.ckpt")):  # killed between best.ckpt and last.ckpt of epoch 0
            set_aside(ckpt_dir, "left without a last.ckpt")
        return None
    ckpt = load_checkpoint(last)
    reason = stale_reason(ckpt, cfg)
    if reason is None:
        epoch = int(ckpt.get("epoch", -1))
        log.info(
            "resuming interrupted run from %s: epoch %d was its last completed epoch; "
            "training continues with epoch %d",
            last,
            epoch,
            epoch + 1,
        )
        return str(last)
    set_aside(ckpt_dir, f"{last.name} was {reason}")
    return None


def check_explicit_resume(cfg: DictConfig, ckpt_path: str) -> None:
    """``ckpt_path=<file>`` (or ``last``, when ``<output_dir>/checkpoints/last.ckpt``
    exists): the file loads with ``weights_only=True`` (else an error naming it) and was
    trained on the data this run has (:func:`check_same_data`)."""
    path = Path(ckpt_path)
    if ckpt_path == "last":
        path = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
        if not path.is_file():
            return  # Lightning's own lookup (and its message)
    ckpt = load_checkpoint(path)
    data_dir = cfg.data.get("data_dir")
    check_same_data(ckpt, data_checksums(cfg), path, data_dir, fix=resume_fix(ckpt, cfg))


def stale_reason(ckpt: dict[str, Any], cfg: DictConfig) -> str | None:
    """Why ``ckpt`` (a ``last.ckpt``) is not a run to continue, or None if it is one."""
    record = ckpt.get("rnnlab", {})
    if record.get("fit_status"):
        return f"a finished run (fit_status={record['fit_status']!r})"
    stored = ckpt.get("hyper_parameters", {}).get("run_config", {})
    stored = upgrade_targets(stored, "checkpoint run_config")  # targets renamed since
    current = OmegaConf.to_container(cfg, resolve=True)
    if not all(stored.get(k) == current.get(k) for k in SAME_RUN_KEYS):
        return "written by a different config"
    if record.get("code_sha256") != code_fingerprint():
        return "written by other (or unrecorded) rnnlab code"
    differ = other_data(ckpt, data_checksums(cfg))
    if differ:
        return f"trained on other data (the dataset was prepared again: {differ})"
    return None


def data_checksums(cfg: DictConfig) -> dict[str, str] | None:
    """The split checksums ``<data.data_dir>/meta.json`` records now (None: no such file,
    or data that is not prepared into a directory)."""
    data_dir = cfg.data.get("data_dir")
    meta = Path(data_dir) / "meta.json" if data_dir else None
    if meta is None or not meta.is_file():
        return None
    return json.loads(meta.read_text()).get("checksums")


def other_data(ckpt: dict[str, Any], now: dict[str, str] | None) -> str | None:
    """How the data ``now`` (split file -> sha256) differs from what ``ckpt`` was trained
    on: ``"<split file>: checkpoint <12 hex>…, data now <12 hex>…"`` per differing file;
    None when they agree or the checkpoint recorded no data checksums (generated data)."""
    trained = (ckpt.get("ProcessedDataModule") or {}).get("checksums")
    if not trained or now == trained:
        return None
    now = now or {}
    differ = sorted(k for k in {*trained, *now} if trained.get(k) != now.get(k))
    return "; ".join(
        f"{k}: checkpoint {str(trained.get(k))[:12]}…, data now {str(now.get(k))[:12]}…"
        for k in differ
    )


def check_same_data(
    ckpt: dict[str, Any],
    now: dict[str, str] | None,
    ckpt_path: Path,
    data_dir: Any,
    fix: str,
) -> None:
    """Refuse data that is not what ``ckpt`` was trained on (:func:`other_data`): a
    DataError naming the checkpoint, the data directory, both checksums and ``fix``."""
    differ = other_data(ckpt, now)
    if differ:
        raise DataError(
            f"{ckpt_path}: was trained on other data than {data_dir} holds now ({differ}). {fix}"
        )


def resume_fix(ckpt: dict[str, Any], cfg: DictConfig) -> str:
    """What to do when a resume's data differs: the checkpoint's own ``prepare.*``
    settings (those this run changes, when it changes any), or starting fresh."""
    stored = ckpt.get("hyper_parameters", {}).get("run_config", {}).get("prepare") or {}
    current = OmegaConf.to_container(cfg.prepare, resolve=True) if cfg.get("prepare") else {}
    changed = [
        f"prepare.{k}={stored.get(k)!r} (this run: {current.get(k)!r})"
        for k in sorted({*stored, *current})
        if stored.get(k) != current.get(k)
    ]
    again = (
        f"give the checkpoint's own settings: {', '.join(changed)}; with auto_prepare=true "
        "(the default) the train command prepares that data again, then resumes"
        if changed
        else "this run has the checkpoint's prepare settings, so the data was prepared "
        "again by other code or by hand: prepare it again with python -m rnnlab.data.prepare "
        "and the same overrides"
    )
    name = cfg.data.get("name", "?")
    return (
        f"To resume, {again}. To train on the data as it is now, start fresh: ckpt_path=null "
        f"(or keep both datasets apart with another data.name than {name!r})"
    )


def set_aside(ckpt_dir: Path, why: str) -> None:
    """Move every ``*.ckpt`` in ``ckpt_dir`` to ``ckpt_dir/stale/`` and say why."""
    stale = ckpt_dir / "stale"
    stale.mkdir(exist_ok=True)
    for old in ckpt_dir.glob("*.ckpt"):
        old.replace(stale / old.name)
    log.info("%s; moved its checkpoints to %s and starting fresh", why, stale)


def record_fit_end(trainer: L.Trainer, status: str) -> None:
    """Write ``fit_status`` into the run's ``last.ckpt`` once ``trainer.fit`` has ended.

    ``status``: ``completed`` (fit returned: every epoch ran or early stopping stopped
    it) or ``diverged`` (a non-finite loss stopped it; last.ckpt is the last good
    epoch). An interrupted fit (SIGKILL, or Ctrl-C, which Lightning turns into exit 1)
    never gets here, and a fit that returned without finishing is not recorded. Rank 0
    rewrites the file atomically; the weights are unchanged.
    """
    if status not in FIT_STATUSES:
        raise ValueError(f"fit status {status!r}; valid: {', '.join(FIT_STATUSES)}")
    if status == "completed" and trainer.state.status != TrainerStatus.FINISHED:
        return
    path = last_checkpoint(trainer)
    if path is None or not trainer.is_global_zero:
        return
    ckpt = load_checkpoint(path)
    ckpt["rnnlab"] = {**ckpt.get("rnnlab", {}), "fit_status": status}
    AtomicCheckpointIO().save_checkpoint(ckpt, path)


def continue_logs(trainer: L.Trainer, ckpt_path: str) -> None:
    """Before a resumed fit: file loggers keep the epochs the checkpoint completed.

    Lightning's CSV writer deletes the old ``metrics.csv`` when it starts; loggers with a
    ``keep_history(epoch)`` (:class:`rnnlab.csv_logger.ResumableCSVLogger`) write back
    the rows of epochs ``0..epoch``, so the learning curves show the whole run.
    """
    loggers = [lg for lg in trainer.loggers if hasattr(lg, "keep_history")]
    if not loggers or not trainer.is_global_zero:
        return
    epoch = load_checkpoint(ckpt_path).get("epoch")
    if isinstance(epoch, int):
        for logger in loggers:
            logger.keep_history(epoch)
