"""``python -m rnnlab.evaluate ckpt_path=…``: test a checkpoint on its data's test split.

The checkpoint is loaded with ``weights_only=True`` (no pickled code runs) and the
config stored in it is checked so only allowed ``_target_``s are instantiated.
Metrics are printed and written to ``<output_dir>/metrics.json``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from rnnlab.checkpoints import load_checkpoint
from rnnlab.compat import upgrade_targets
from rnnlab.config import config_dir, register_resolvers
from rnnlab.io import atomic_write_bytes
from rnnlab.plots import plot_confusion_matrix, plot_learning_curves
from rnnlab.safety import check_targets
from rnnlab.train import _floats, build_datamodule, build_task

log = logging.getLogger(__name__)
register_resolvers()


def evaluate(cfg: DictConfig) -> dict[str, float]:
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
    trainer.test(task, datamodule=datamodule)
    metrics = _floats(trainer.callback_metrics)
    out_dir = Path(cfg.paths.output_dir)
    if run_cfg.task.name == "classification" and task.io.output_per == "sequence":
        metrics.update(classification_report(task, datamodule, out_dir))
    curves = ckpt_path.parent.parent / "csv" / "metrics.csv"
    if curves.is_file():
        plot_learning_curves(
            curves, out_dir / "learning_curves.png", title=str(ckpt_path.parent.parent.name)
        )
    out = out_dir / "metrics.json"
    atomic_write_bytes(
        out, json.dumps({"ckpt_path": str(ckpt_path), **metrics}, indent=2, sort_keys=True).encode()
    )
    log.info("metrics written to %s", out)
    return metrics


@torch.no_grad()
def classification_report(task, datamodule, out_dir: Path) -> dict[str, float]:
    """Per-class precision/recall/F1, confusion matrix (JSON, CSV for `dvc plots`, PNG)."""
    task.eval()
    names = getattr(datamodule, "class_names", None) or [str(i) for i in range(task.io.output_dim)]
    n = len(names)
    matrix = torch.zeros(n, n, dtype=torch.long)
    rows = []
    for batch in datamodule.test_dataloader():
        preds = task(batch["inputs"], batch["lengths"]).argmax(-1)
        for t, p in zip(batch["targets"].tolist(), preds.tolist()):
            matrix[t, p] += 1
            rows.append((names[t], names[p]))
    per_class = {}
    for k, name in enumerate(names):
        tp = matrix[k, k].item()
        support, predicted = matrix[k].sum().item(), matrix[:, k].sum().item()
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(
        out_dir / "per_class.json",
        json.dumps(
            {"per_class": per_class, "confusion_matrix": matrix.tolist(), "labels": names},
            indent=2,
            ensure_ascii=False,
        ).encode(),
    )
    lines = ["actual,predicted"] + [f"{a},{p}" for a, p in rows]
    atomic_write_bytes(out_dir / "predictions.csv", ("\n".join(lines) + "\n").encode())
    plot_confusion_matrix(matrix, names, out_dir / "confusion_matrix.png")
    return {"test/acc_from_confusion": matrix.diag().sum().item() / max(matrix.sum().item(), 1)}


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="evaluate")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
