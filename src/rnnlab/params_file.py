"""``params_file=params.yaml``: the DVC train stages take model, optim and seed from it.

DVC composes ``conf/pipeline.yaml`` (plus ``dvc exp run -S`` overrides) into
``params.yaml`` and tracks that file's ``model``/``optim``/``seed`` as the stage's
parameters; the train stage passes ``params_file=params.yaml`` so that file, not
``conf/``, decides them, exactly as DVC tracks them. Dotted CLI overrides of those keys
(``model.hidden_size=16`` in a stage's ``train:`` string) still win.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

PARAMS_KEYS = ("model", "optim", "seed")


def apply_params_file(cfg: DictConfig, path: str, cli_overrides: list[str]) -> DictConfig:
    """A copy of ``cfg`` with ``PARAMS_KEYS`` from ``path``, then the dotted CLI overrides
    of those keys applied again on top (group overrides such as ``model/cell=gru`` are
    what DVC composed the file from, so the file already has them)."""
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
