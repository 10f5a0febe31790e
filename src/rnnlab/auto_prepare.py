"""``auto_prepare=true``: prepare the run's dataset first when it is missing or stale.

This makes bring-your-own data one command (``python -m rnnlab.train data=csv
prepare.path=…``). A dataset is current when ``<data.data_dir>/meta.json`` records the
same ``prepare`` config as the run's. DVC stages pass ``auto_prepare=false``: there the
prepare stage owns the data.

Under a multi-process launch (SLURM, torchrun, Lightning's ``ddp``) every rank starts the
same command at once: rank 0 prepares, every other rank waits until rank 0's
``meta.json`` records the wanted config (:func:`wait_for_prepared`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

RANK_VARIABLES = ("RANK", "SLURM_PROCID", "LOCAL_RANK")


def prepare_for_run(cfg: DictConfig) -> None:
    """Rank 0 prepares the dataset if needed; the other ranks wait for it."""
    if launch_rank() == 0:
        ensure_prepared(cfg)
    else:
        wait_for_prepared(cfg)


def launch_rank() -> int:
    """This process's global rank as set by the launcher (SLURM, torchrun, Lightning)."""
    for var in RANK_VARIABLES:
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def _wanted(cfg: DictConfig) -> dict | None:
    """The prepare config this run needs, or None when nothing is to be prepared."""
    if not cfg.get("prepare") or not cfg.get("auto_prepare", True):
        return None
    return OmegaConf.to_container(cfg.prepare, resolve=True)


def _prepared_with(meta_path: Path) -> dict | None:
    """The prepare config ``meta.json`` records (None: absent or being written)."""
    if not meta_path.is_file():
        return None
    try:
        return json.loads(meta_path.read_text()).get("prepare_config")
    except ValueError:  # written atomically, but a network filesystem may lag
        return None


def ensure_prepared(cfg: DictConfig) -> None:
    """Prepare the dataset when it is missing or was prepared with other settings."""
    wanted = _wanted(cfg)
    if wanted is None:
        return
    meta_path = Path(cfg.data.data_dir) / "meta.json"
    if meta_path.is_file():
        if _prepared_with(meta_path) == wanted:
            return
        log.info("%s was prepared with other settings; preparing again", meta_path.parent)
    from rnnlab.data.prepare import prepare

    prepare(cfg)


def wait_for_prepared(cfg: DictConfig, timeout_s: float = 3600.0, poll_s: float = 2.0) -> None:
    """Block until rank 0 has prepared the wanted dataset; TimeoutError after ``timeout_s``."""
    wanted = _wanted(cfg)
    if wanted is None:
        return
    meta_path = Path(cfg.data.data_dir) / "meta.json"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _prepared_with(meta_path) == wanted:
            return
        time.sleep(poll_s)
    raise TimeoutError(
        f"rank {launch_rank()}: {meta_path} not prepared by rank 0 in {timeout_s:.0f} s"
    )
