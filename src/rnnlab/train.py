"""``python -m rnnlab.train``: compose a config, train, test the best checkpoint.

The entry point only wires the pieces together: Hydra composes the config
(``params_file`` merged by :mod:`rnnlab.params_file`), :func:`train` checks it
(:func:`rnnlab.config.check_run_config`), prepares the data if needed
(:mod:`rnnlab.auto_prepare`), builds data, task and Trainer, fits from the checkpoint
:mod:`rnnlab.resume` picks, tests the best checkpoint and writes ``metrics.json``
(:mod:`rnnlab.run_record`).

:func:`train` returns every logged metric (floats). :func:`main` returns the sweep
objective: ``<task.monitor>_best`` (the best validation value, i.e. the checkpoint that
was tested), else the last ``task.monitor``; in a multirun, a diverged or non-finite job
returns :func:`sweep_penalty` instead so the sweep goes on.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ProgressBar
from omegaconf import DictConfig, OmegaConf

from rnnlab.auto_prepare import prepare_for_run
from rnnlab.checkpoints import AtomicCheckpointIO, best_checkpoint, last_checkpoint
from rnnlab.config import (
    check_run_config,
    config_dir,
    instantiate_group,
    print_config_tree,
    register_resolvers,
)
from rnnlab.loggers import (
    finish_wandb,
    log_classification_report,
    log_full_config,
    quiet_lightning_tips,
    wandb_loggers,
)
from rnnlab.params_file import apply_params_file
from rnnlab.resume import continue_logs, record_fit_end, resolve_ckpt_path
from rnnlab.run_record import run_summary, write_metrics
from rnnlab.safety import check_targets
from rnnlab.tasks import RecurrentTask, TrainingDiverged, create_task

log = logging.getLogger(__name__)
register_resolvers()


def build_datamodule(data_cfg: DictConfig) -> L.LightningDataModule:
    """The DataModule ``data._target_`` names (only allowed targets are instantiated)."""
    check_targets(data_cfg, "data")
    return instantiate(data_cfg, _convert_="all")


def build_task(cfg: DictConfig, datamodule: L.LightningDataModule) -> RecurrentTask:
    """The LightningModule for ``task.name`` (rnnlab.tasks.create_task: refuses a task the
    data was not prepared for, and task keys that task does not take)."""
    task_cfg = OmegaConf.to_container(cfg.task, resolve=True)
    name = task_cfg.pop("name")
    return create_task(
        name,
        datamodule,
        model=OmegaConf.to_container(cfg.model, resolve=True),
        optim=OmegaConf.to_container(cfg.optim, resolve=True),
        run_config=OmegaConf.to_container(cfg, resolve=True),
        **task_cfg,
    )


def build_trainer(cfg: DictConfig) -> tuple[L.Trainer, list]:
    """The Trainer with the configured callbacks and loggers (and atomic checkpoint saves).

    Without a logger (``logger=none``, or W&B with ``mode=disabled``) the learning-rate
    monitor has nothing to log to (Lightning refuses it), so it is left out; with
    ``trainer.enable_progress_bar=false`` so is the progress-bar callback (the epoch log
    prints one line per epoch instead).
    """
    quiet_lightning_tips()
    callbacks = instantiate_group(cfg.get("callbacks"), "callbacks")
    # A logger factory may return None (W&B with mode=disabled).
    loggers = [lg for lg in instantiate_group(cfg.get("logger"), "logger") if lg is not None]
    if not loggers and any(isinstance(cb, LearningRateMonitor) for cb in callbacks):
        log.info("no logger: the learning-rate monitor (callbacks.lr_monitor) is left out")
        callbacks = [cb for cb in callbacks if not isinstance(cb, LearningRateMonitor)]
    if cfg.trainer.get("enable_progress_bar") is False:  # Lightning refuses a bar callback then
        callbacks = [cb for cb in callbacks if not isinstance(cb, ProgressBar)]
    check_targets(cfg.trainer, "trainer")
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()]
    )
    return trainer, loggers


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit, test the best checkpoint, write ``metrics.json``; return every logged metric.

    Raises :class:`TrainingDiverged` (after writing ``metrics.json`` with status
    ``diverged`` and keeping the last good checkpoint) when the loss went non-finite.
    """
    if cfg.get("print_config"):
        print_config_tree(cfg)
    check_run_config(cfg)  # output dir, model keys, sizes: before any data preparation
    prepare_for_run(cfg)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = build_datamodule(cfg.data)
    task = build_task(cfg, datamodule)
    trainer, loggers = build_trainer(cfg)

    metrics: dict[str, float] = {}
    diverged: TrainingDiverged | None = None
    try:
        if trainer.is_global_zero:
            log_full_config(loggers, OmegaConf.to_container(cfg, resolve=True))
        if cfg.get("train", True):
            diverged = _fit(trainer, task, datamodule, resolve_ckpt_path(cfg))
            metrics.update(_floats(trainer.callback_metrics))
        if cfg.get("test", True) and diverged is None:
            metrics.update(_test(trainer, task, datamodule, loggers))
        status = "completed" if diverged is None else "diverged"
        if trainer.is_global_zero:
            write_metrics(Path(cfg.paths.output_dir) / "metrics.json", metrics, trainer, status)
    except BaseException:
        finish_wandb(exit_code=1, summary={"status": "failed"})
        raise
    finish_wandb(
        exit_code=0 if diverged is None else 1,
        summary=run_summary(trainer, status, str(cfg.paths.output_dir)),
    )
    if diverged is not None:
        raise diverged
    return metrics


def _fit(
    trainer: L.Trainer,
    task: RecurrentTask,
    datamodule: L.LightningDataModule,
    ckpt_path: str | None,
) -> TrainingDiverged | None:
    """``trainer.fit``; record its end in last.ckpt; the divergence, if it diverged."""
    if ckpt_path:
        continue_logs(trainer, ckpt_path)  # metrics.csv keeps the epochs before the resume
    try:
        trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except TrainingDiverged as err:
        log.error("%s. Last good checkpoint kept: %s", err, last_checkpoint(trainer))
        record_fit_end(trainer, "diverged")
        return err
    record_fit_end(trainer, "completed")
    return None


def _test(
    trainer: L.Trainer, task: RecurrentTask, datamodule: L.LightningDataModule, loggers: list
) -> dict[str, float]:
    """Test the best checkpoint (the current weights when none was written)."""
    best = best_checkpoint(trainer)
    if best is None:
        log.warning("no checkpoint was written; testing the current weights")
    else:
        log.info("testing best checkpoint %s", best)
    trainer.test(task, datamodule=datamodule, ckpt_path=best, weights_only=True)
    _log_test_report(trainer, task, loggers)
    return _floats(trainer.callback_metrics)


def _log_test_report(trainer: L.Trainer, task: RecurrentTask, loggers: list) -> None:
    """Per-class table and confusion matrix to W&B (classification tasks, rank 0)."""
    confusion = getattr(task, "test_confusion", None)
    if confusion is None or not trainer.is_global_zero:
        return
    for logger in wandb_loggers(loggers):
        log_classification_report(logger, confusion, task.class_names)


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    """The numeric entries of Lightning's ``callback_metrics``, as Python floats."""
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (torch.Tensor, float, int))}


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Train one composed config; return the sweep objective (see the module docstring)."""
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
