"""``python -m rnnlab.evaluate ckpt_path=…``: test a checkpoint on its data's test split.

The checkpoint is loaded with ``weights_only=True`` (no pickled code runs), its stored
config is upgraded through :func:`rnnlab.compat.upgrade_targets` (``_target_``\\ s that
moved) and checked so only allowed ``_target_``\\ s are instantiated. The test set is
run once (``trainer.test``); everything written comes from that pass. To
``<output_dir>/`` (every file atomically, through :mod:`rnnlab.io`):

* ``metrics.json``: the test metrics and the checkpoint path;
* for whole-sequence classification, from the task's test confusion matrix and
  predictions: ``per_class.json`` (precision/recall/F1/support per class,
  :func:`rnnlab.metrics.per_class`, plus the matrix and labels), ``predictions.csv``
  (``actual,predicted`` per test sequence, for ``dvc plots``) and
  ``confusion_matrix.png``;
* ``learning_curves.png`` when the run's ``csv/metrics.csv`` sits next to the
  checkpoint directory.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from rnnlab.checkpoints import load_checkpoint
from rnnlab.compat import upgrade_targets
from rnnlab.config import config_dir, register_resolvers
from rnnlab.io import atomic_write_json, atomic_write_text
from rnnlab.metrics import class_labels, per_class
from rnnlab.plots import plot_confusion_matrix, plot_learning_curves
from rnnlab.safety import check_targets
from rnnlab.train import _floats, build_datamodule, build_task

log = logging.getLogger(__name__)
register_resolvers()


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Rebuild the run from ``cfg.ckpt_path``, test it once, write every output."""
    ckpt_path = Path(cfg.ckpt_path)
    ckpt = load_checkpoint(ckpt_path)
    run_config = ckpt.get("hyper_parameters", {}).get("run_config")
    if not run_config:
        raise ValueError(f"{ckpt_path}: no rnnlab run config in the checkpoint's hyper_parameters")
    run_cfg = OmegaConf.create(upgrade_targets(run_config, "checkpoint"))
    run_cfg.data = OmegaConf.merge(run_cfg.data, cfg.get("data") or {})
    L.seed_everything(cfg.seed, workers=True)
    datamodule = build_datamodule(run_cfg.data)
    task = build_task(run_cfg, datamodule)
    task.load_state_dict(ckpt["state_dict"])
    check_targets(cfg.trainer, "trainer")
    trainer: L.Trainer = instantiate(cfg.trainer)
    out_dir = Path(cfg.paths.output_dir)
    metrics = run_test_pass(trainer, task, datamodule, out_dir)
    curves = ckpt_path.parent.parent / "csv" / "metrics.csv"
    if curves.is_file():
        plot_learning_curves(
            curves, out_dir / "learning_curves.png", title=str(ckpt_path.parent.parent.name)
        )
    out = out_dir / "metrics.json"
    atomic_write_json(out, {"ckpt_path": str(ckpt_path), **metrics})
    log.info("metrics written to %s", out)
    return metrics


def run_test_pass(
    trainer: L.Trainer, task: L.LightningModule, datamodule: L.LightningDataModule, out_dir: Path
) -> dict[str, float]:
    """``trainer.test`` (the only pass over the test set) and, for a whole-sequence
    classifier, the per-class report from the confusion matrix that pass computed."""
    trainer.test(task, datamodule=datamodule)
    metrics = _floats(trainer.callback_metrics)
    confusion = getattr(task, "test_confusion", None)
    if confusion is not None and task.io.output_per == "sequence":
        names = getattr(datamodule, "class_names", None) or task.class_names
        metrics.update(classification_report(confusion, task.test_predictions, names, out_dir))
    return metrics


def classification_report(
    confusion, predictions, class_names: list[str] | None, out_dir: Path
) -> dict[str, float]:
    """``per_class.json``, ``predictions.csv`` and ``confusion_matrix.png`` from the test
    pass: ``confusion`` ``(C, C)`` (rows the true class), ``predictions`` ``(N, 2)`` true and
    predicted class per test sequence (None: an empty predictions.csv)."""
    matrix = confusion.tolist()
    names = class_labels(len(matrix), class_names)
    record = {"per_class": per_class(matrix, names), "confusion_matrix": matrix, "labels": names}
    atomic_write_text(out_dir / "per_class.json", json.dumps(record, indent=2, ensure_ascii=False))
    pairs = predictions.tolist() if predictions is not None else []
    total = sum(map(sum, matrix))
    if len(pairs) != total:
        log.warning(
            "predictions.csv holds %d test sequences, the confusion matrix %d: with several "
            "processes each keeps only its own share of the predictions",
            len(pairs),
            total,
        )
    lines = ["actual,predicted"] + [f"{names[a]},{names[p]}" for a, p in pairs]
    atomic_write_text(out_dir / "predictions.csv", "\n".join(lines) + "\n")
    plot_confusion_matrix(matrix, names, out_dir / "confusion_matrix.png")
    correct = sum(matrix[k][k] for k in range(len(matrix)))
    return {"test/acc_from_confusion": correct / max(total, 1)}


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="evaluate")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
