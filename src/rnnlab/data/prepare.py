"""``python -m rnnlab.data.prepare data=<name>``: the DVC prepare stage.

Builds the dataset that ``conf/data/<name>.yaml`` describes (its ``prepare`` block) and
writes ``data/processed/<name>/{train,val,test}.pt`` + ``meta.json``. Deterministic: the
same config and raw data give byte-identical split files.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from rnnlab.config import config_dir, register_resolvers
from rnnlab.data.format import write_processed
from rnnlab.errors import DataError
from rnnlab.safety import check_targets

log = logging.getLogger(__name__)
register_resolvers()


def prepare(cfg: DictConfig) -> dict:
    if "prepare" not in cfg or cfg.prepare is None:
        raise DataError(
            f"data={cfg.data.get('name', '?')}: this dataset has no `prepare` block "
            "(synthetic datasets are generated on the fly and need no prepare stage)"
        )
    check_targets(cfg.prepare, "prepare", allowed=("rnnlab.data.",))
    out_dir = Path(cfg.data.data_dir)
    start = time.perf_counter()
    splits, meta = instantiate(cfg.prepare, out_dir=out_dir, _convert_="all")
    meta = {
        **meta,
        "name": cfg.data.name,  # the dataset's own (user-given or derived) name wins
        "prepare_config": OmegaConf.to_container(cfg.prepare, resolve=True),
    }
    meta = write_processed(out_dir, splits, meta)
    counts = {k: v["total"] for k, v in meta["counts"].items()}
    log.info(
        "prepared %s in %.1fs -> %s; counts %s; skipped %s",
        cfg.data.name,
        time.perf_counter() - start,
        out_dir,
        counts,
        meta.get("skipped", {}),
    )
    return meta


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="prepare")
def main(cfg: DictConfig) -> None:
    prepare(cfg)


if __name__ == "__main__":
    main()
