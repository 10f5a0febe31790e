"""Hydra plumbing shared by the entry points: config location, resolvers, printing."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rnnlab.safety import check_targets


def config_dir() -> str:
    """The ``conf/`` directory: $RNNLAB_CONFIG_DIR, else the checkout this package lives in."""
    env = os.environ.get("RNNLAB_CONFIG_DIR")
    if env:
        return str(Path(env).resolve())
    return str(Path(__file__).resolve().parents[2] / "conf")


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("rnnlab_pid"):
        OmegaConf.register_new_resolver("rnnlab_pid", lambda: str(os.getpid()))


def print_config_tree(cfg: DictConfig) -> None:
    """Print the composed config as a rich tree, one branch per top-level group."""
    import rich
    import rich.syntax
    import rich.tree

    tree = rich.tree.Tree("config", style="bold")
    for key, value in cfg.items():
        branch = tree.add(str(key), style="bold cyan")
        text = (
            OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        )
        branch.add(rich.syntax.Syntax(text, "yaml", theme="ansi_dark"))
    rich.print(tree)


def instantiate_group(cfg: Mapping[str, Any] | None, where: str) -> list[Any]:
    """Instantiate every entry with a ``_target_`` in a dict-of-configs group."""
    from hydra.utils import instantiate

    objects = []
    for name, sub in (cfg or {}).items():
        if isinstance(sub, Mapping) and "_target_" in sub:
            check_targets(sub, f"{where}.{name}")
            objects.append(instantiate(sub))
    return objects
