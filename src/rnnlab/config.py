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
    """``${rnnlab_pid:}``: the pid of the process that composed the config.

    Cached like Hydra's ``${now:}``: Hydra copies the resolver cache into every sweep
    job's config, so jobs run by a multi-process launcher (joblib workers) resolve the
    sweep dir to the launching process's pid and share one ``multiruns/<time>_<pid>/``,
    while two sweeps started in the same second still get different directories.
    """
    if not OmegaConf.has_resolver("rnnlab_pid"):
        OmegaConf.register_new_resolver("rnnlab_pid", lambda: str(os.getpid()), use_cache=True)
    if not OmegaConf.has_resolver("rnnlab_direction"):
        OmegaConf.register_new_resolver("rnnlab_direction", optuna_direction)
    # ${rnnlab_data_name:<kind>,${prepare.path},...}: a bring-your-own dataset's default name.
    from rnnlab.data.naming import RESOLVER, data_name

    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, data_name)


def optuna_direction(mode: str) -> str:
    """task.mode (max/min) -> the Optuna sweeper's direction (maximize/minimize)."""
    directions = {"max": "maximize", "min": "minimize"}
    if mode not in directions:
        raise ValueError(f"task.mode={mode!r}; valid: max, min")
    return directions[mode]


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


# data keys every DataModule shares, checked before any data preparation: key -> minimum
DATA_INT_KEYS = {
    "batch_size": 1,
    "num_workers": 0,
    "seq_len": 1,
    "num_train": 1,
    "num_val": 1,
    "num_test": 1,
    "pool": 1,
}


def check_run_config(cfg: DictConfig) -> None:
    """Refuse a bad run config at start, before data preparation or training.

    Checks that the output directory is writable, every model key (type, range,
    choice; see ``rnnlab.nn.model.check_model_config``), the shared data sizes, the
    seed and the epoch budget. Errors name the key, the value and what is valid.
    What needs the data (joining the input width) is checked when the model is built.
    """
    from rnnlab.checkpoints import check_output_dir
    from rnnlab.nn.model import check_model_config

    check_output_dir(cfg.paths.output_dir)
    check_model_config(OmegaConf.to_container(cfg.model, resolve=True))
    data = cfg.get("data") or {}
    for key, minimum in DATA_INT_KEYS.items():
        if key in data:
            _int_at_least(data[key], f"data.{key}", minimum)
    _int_at_least(cfg.get("seed"), "seed", 0)
    trainer = cfg.get("trainer") or {}
    epochs = trainer.get("max_epochs")
    if epochs is not None and epochs != -1:
        _int_at_least(
            epochs, "trainer.max_epochs", 1, "(or -1: no limit; train=false to only test)"
        )


def _int_at_least(value: Any, key: str, minimum: int, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{key}={value!r} must be an integer >= {minimum} {hint}".rstrip())
