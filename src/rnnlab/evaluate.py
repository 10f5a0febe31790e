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
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from rnnlab.checkpoints import load_checkpoint
from rnnlab.config import config_dir, register_resolvers
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
    run_cfg = OmegaConf.create(run_config)
    run_cfg.data = OmegaConf.merge(run_cfg.data, cfg.get("data") or {})
    L.seed_everything(cfg.seed, workers=True)
    datamodule = build_datamodule(run_cfg.data)
    task = build_task(run_cfg, datamodule)
    task.load_state_dict(ckpt["state_dict"])
    check_targets(cfg.trainer, "trainer")
    trainer: L.Trainer = instantiate(cfg.trainer)
    trainer.test(task, datamodule=datamodule)
    metrics = _floats(trainer.callback_metrics)
    out = Path(cfg.paths.output_dir) / "metrics.json"
    out.write_text(json.dumps({"ckpt_path": str(ckpt_path), **metrics}, indent=2, sort_keys=True))
    log.info("metrics written to %s", out)
    return metrics


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="evaluate")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
