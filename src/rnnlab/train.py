"""``python -m rnnlab.train``: compose a config, train, test the best checkpoint.

Returns the optimized metric (``task.monitor``) so Hydra sweepers can use it.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from rnnlab.checkpoints import AtomicCheckpointIO
from rnnlab.config import (
    check_run_config,
    config_dir,
    instantiate_group,
    print_config_tree,
    register_resolvers,
)
from rnnlab.io import atomic_write_bytes
from rnnlab.loggers import (
    finish_wandb,
    log_classification_report,
    log_full_config,
    wandb_loggers,
)
from rnnlab.safety import check_targets
from rnnlab.tasks import TASKS, RecurrentTask, TrainingDiverged

log = logging.getLogger(__name__)
register_resolvers()


def build_datamodule(data_cfg: DictConfig) -> L.LightningDataModule:
    check_targets(data_cfg, "data")
    return instantiate(data_cfg, _convert_="all")


def build_task(cfg: DictConfig, datamodule: L.LightningDataModule) -> RecurrentTask:
    """The LightningModule for ``task.name`` with the model the data's I/O needs."""
    task_cfg = OmegaConf.to_container(cfg.task, resolve=True)
    name = task_cfg.pop("name")
    if name not in TASKS:
        raise ValueError(f"task.name={name!r} is not known; valid: {', '.join(TASKS)}")
    if task_cfg.get("class_weights") == "auto":
        task_cfg["class_weights"] = getattr(datamodule, "class_weights", None)
    return TASKS[name](
        model=OmegaConf.to_container(cfg.model, resolve=True),
        io=datamodule.io,
        class_names=getattr(datamodule, "class_names", None),
        optim=OmegaConf.to_container(cfg.optim, resolve=True),
        run_config=OmegaConf.to_container(cfg, resolve=True),
        **task_cfg,
    )


def ensure_prepared(cfg: DictConfig) -> None:
    """Prepare the dataset first when it is missing or was prepared with other settings.

    This makes bring-your-own data one command (``python -m rnnlab.train data=csv
    prepare.path=…``). DVC stages pass ``auto_prepare=false``: there the prepare stage
    owns the data and train only checks that it exists.
    """
    if not cfg.get("prepare"):
        return
    meta_path = Path(cfg.data.data_dir) / "meta.json"
    if not cfg.get("auto_prepare", True):
        return
    wanted = OmegaConf.to_container(cfg.prepare, resolve=True)
    if meta_path.is_file():
        stored = json.loads(meta_path.read_text()).get("prepare_config")
        if stored == wanted:
            return
        log.info("%s was prepared with other settings; preparing again", meta_path.parent)
    from rnnlab.data.prepare import prepare

    prepare(cfg)


def _launch_rank() -> int:
    """This process's global rank as set by the launcher (SLURM, torchrun, Lightning)."""
    import os

    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def _wait_for_prepared(cfg: DictConfig, timeout_s: float = 3600.0) -> None:
    import time

    if not cfg.get("prepare") or not cfg.get("auto_prepare", True):
        return
    meta_path = Path(cfg.data.data_dir) / "meta.json"
    wanted = OmegaConf.to_container(cfg.prepare, resolve=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if meta_path.is_file():
            try:
                if json.loads(meta_path.read_text()).get("prepare_config") == wanted:
                    return
            except ValueError:
                pass  # being written (atomically, but a network filesystem may lag)
        time.sleep(2.0)
    raise TimeoutError(
        f"rank {_launch_rank()}: {meta_path} not prepared by rank 0 in {timeout_s:.0f} s"
    )


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit and test; return all logged metrics (floats)."""
    if cfg.get("print_config"):
        print_config_tree(cfg)
    check_run_config(cfg)  # output dir, model keys, sizes: before any data preparation
    if _launch_rank() == 0:
        ensure_prepared(cfg)
    else:  # SLURM/torchrun start every rank at once: rank 0 prepares, the others wait
        _wait_for_prepared(cfg)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = build_datamodule(cfg.data)
    task = build_task(cfg, datamodule)
    callbacks = instantiate_group(cfg.get("callbacks"), "callbacks")
    # A logger factory may return None (W&B with mode=disabled).
    loggers = [lg for lg in instantiate_group(cfg.get("logger"), "logger") if lg is not None]
    check_targets(cfg.trainer, "trainer")
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()]
    )

    metrics: dict[str, float] = {}
    diverged: TrainingDiverged | None = None
    try:
        if trainer.is_global_zero:
            log_full_config(loggers, OmegaConf.to_container(cfg, resolve=True))
        if cfg.get("train", True):
            ckpt_path = resolve_ckpt_path(cfg)
            if ckpt_path and ckpt_path != "last" and not Path(ckpt_path).is_file():
                raise FileNotFoundError(f"ckpt_path={ckpt_path!r}: no such checkpoint file")
            try:
                trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
            except TrainingDiverged as err:
                diverged = err
                log.error("%s. Last good checkpoint kept: %s", err, _last_checkpoint(trainer))
            metrics.update(_floats(trainer.callback_metrics))
        if cfg.get("test", True) and diverged is None:
            best = _best_checkpoint(trainer)
            if best is None:
                log.warning("no checkpoint was written; testing the current weights")
            else:
                log.info("testing best checkpoint %s", best)
            trainer.test(task, datamodule=datamodule, ckpt_path=best, weights_only=True)
            metrics.update(_floats(trainer.callback_metrics))
            _log_test_report(trainer, task, loggers)
        status = "completed" if diverged is None else "diverged"
        if trainer.is_global_zero:
            write_metrics(Path(cfg.paths.output_dir) / "metrics.json", metrics, trainer, status)
    except BaseException:
        finish_wandb(exit_code=1, summary={"status": "failed"})
        raise
    finish_wandb(
        exit_code=0 if diverged is None else 1,
        summary={
            "status": status,
            "best_checkpoint": _portable(_best_checkpoint(trainer)),
            "last_checkpoint": _portable(_last_checkpoint(trainer)),
            "output_dir": _portable(str(cfg.paths.output_dir)),
        },
    )
    if diverged is not None:
        raise diverged
    return metrics


def _log_test_report(trainer: L.Trainer, task: RecurrentTask, loggers: list) -> None:
    """Per-class table and confusion matrix to W&B (classification tasks, rank 0)."""
    confusion = getattr(task, "test_confusion", None)
    if confusion is None or not trainer.is_global_zero:
        return
    for logger in wandb_loggers(loggers):
        log_classification_report(logger, confusion, task.class_names)


def write_metrics(
    path: Path, metrics: dict[str, float], trainer: L.Trainer, status: str = "completed"
) -> None:
    """Final metrics plus where the checkpoints are (atomically: temp file, fsync, rename).

    ``status`` is ``completed`` or ``diverged`` (training stopped on a NaN/Inf loss)."""
    record = {
        "status": status,
        "metrics": metrics,
        "best_checkpoint": _portable(_best_checkpoint(trainer)),
        "epoch": trainer.current_epoch,
        "global_step": trainer.global_step,
    }
    atomic_write_bytes(path, json.dumps(record, indent=2, sort_keys=True).encode())


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    """``ckpt_path=auto``: resume an *interrupted* run of the same config from last.ckpt.

    DVC keeps the checkpoints (persist: true) so an interrupted ``dvc repro`` resumes.
    A finished run, or one written by another config, other code or for other data
    (DVC re-runs the stage because a parameter, the code or the data changed; each is
    recorded in the checkpoint), starts fresh: its checkpoints move to
    ``checkpoints/stale/`` so the new run's best.ckpt is not renamed best-v1.ckpt.
    """
    from rnnlab.checkpoints import code_fingerprint, load_checkpoint

    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path != "auto":
        if ckpt_path and ckpt_path != "last":
            load_checkpoint(ckpt_path)  # refuses pickled code with a message naming the file
        return ckpt_path
    ckpt_dir = Path(cfg.paths.output_dir) / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    if not last.is_file():
        return None
    ckpt = load_checkpoint(last)
    stored = ckpt.get("hyper_parameters", {}).get("run_config", {})
    current = OmegaConf.to_container(cfg, resolve=True)
    keys = ("model", "optim", "data", "task", "seed", "trainer")
    reason = None
    if not all(stored.get(k) == current.get(k) for k in keys):
        reason = "written by a different config"
    elif ckpt.get("rnnlab", {}).get("code_sha256") != code_fingerprint():
        reason = "written by other (or unrecorded) rnnlab code"
    elif "ProcessedDataModule" in ckpt and cfg.data.get("data_dir"):
        meta = Path(cfg.data.data_dir) / "meta.json"
        data_now = json.loads(meta.read_text()).get("checksums") if meta.is_file() else None
        if ckpt["ProcessedDataModule"].get("checksums") != data_now:
            reason = "trained on other data (the dataset was prepared again)"
    same = reason is None
    stopped = any(
        isinstance(state, dict) and state.get("stopped_epoch", 0) > 0
        for name, state in ckpt.get("callbacks", {}).items()
        if str(name).startswith("EarlyStopping")
    )
    finished = stopped or ckpt.get("epoch", -1) + 1 >= cfg.trainer.max_epochs
    if same and not finished:
        log.info("resuming interrupted run from %s", last)
        return str(last)
    stale = ckpt_dir / "stale"
    stale.mkdir(exist_ok=True)
    for old in ckpt_dir.glob("*.ckpt"):
        old.replace(stale / old.name)
    reason = reason or "finished"
    log.info("%s was %s; moved checkpoints to %s and starting fresh", last, reason, stale)
    return None


def _last_checkpoint(trainer: L.Trainer) -> str | None:
    for cb in trainer.callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.last_model_path:
            if Path(cb.last_model_path).is_file():
                return cb.last_model_path
    return None


def _best_checkpoint(trainer: L.Trainer) -> str | None:
    if trainer.fast_dev_run:
        return None
    for cb in trainer.callbacks:
        if isinstance(cb, ModelCheckpoint):
            for path in (cb.best_model_path, cb.last_model_path):
                if path and Path(path).is_file():
                    return path
    return None


def _portable(path: str | None) -> str | None:
    """A path inside the working directory is written relative to it (results/ stay
    identical across checkouts); any other path stays absolute."""
    if not path:
        return path
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (torch.Tensor, float, int))}


PARAMS_KEYS = ("model", "optim", "seed")


def apply_params_file(cfg: DictConfig, path: str, cli_overrides: list[str]) -> DictConfig:
    """Take model/optim/seed from a DVC params file; dotted CLI overrides still win.

    DVC composes ``conf/pipeline.yaml`` (plus ``-S`` overrides) into params.yaml on
    ``dvc exp run``; the train stage passes ``params_file=params.yaml`` so that file,
    not conf/, decides the model, exactly as DVC tracks it.
    """
    import yaml
    from hydra.core.override_parser.overrides_parser import OverridesParser

    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"params_file={path!r}: no such file")
    params = yaml.safe_load(file.read_text()) or {}
    missing = [k for k in PARAMS_KEYS if k not in params]
    if missing:
        raise ValueError(
            f"{path}: missing key(s) {missing}; a params file needs {list(PARAMS_KEYS)}"
        )
    cfg = cfg.copy()
    for key in PARAMS_KEYS:
        cfg[key] = params[key]
    for override in OverridesParser.create().parse_overrides(cli_overrides):
        key = override.key_or_group
        if "/" not in key and key.split(".")[0] in PARAMS_KEYS and not override.is_delete():
            OmegaConf.update(cfg, key, override.value(), merge=True)
    return cfg


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def main(cfg: DictConfig) -> float | None:
    if cfg.get("params_file"):
        from hydra.core.hydra_config import HydraConfig

        cfg = apply_params_file(cfg, cfg.params_file, list(HydraConfig.get().overrides.task))
    monitor = cfg.task.monitor
    try:
        metrics = train(cfg)
    except TrainingDiverged as err:
        if not _in_multirun():
            raise SystemExit(f"rnnlab.train: {err}") from None  # message, exit code 1
        penalty = sweep_penalty(cfg)
        log.error("job diverged; %s=%s goes to the sweeper and the sweep goes on", monitor, penalty)
        return penalty
    # The sweeper optimizes the best validation value (the checkpoint that gets tested).
    value = metrics.get(f"{monitor}_best", metrics.get(monitor))
    log.info("final metrics: %s", {k: round(v, 6) for k, v in sorted(metrics.items())})
    if value is not None and not math.isfinite(value) and _in_multirun():
        log.error("%s=%s is not finite; the sweeper gets %s", monitor, value, sweep_penalty(cfg))
        return sweep_penalty(cfg)
    return value


def sweep_penalty(cfg: DictConfig) -> float:
    """The finite objective a sweeper gets for a diverged job: ``diverged_value``, or by
    default 1e6 on the bad side of the task's direction (Optuna refuses NaN)."""
    value = cfg.get("diverged_value")
    if value is None:
        value = -1e6 if cfg.task.mode == "max" else 1e6
    return float(value)


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


if __name__ == "__main__":
    main()
