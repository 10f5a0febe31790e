"""Guard for configs read back from checkpoints or files: only allowed ``_target_``s.

A checkpoint or YAML file from elsewhere could name any callable as ``_target_``;
instantiating it would run arbitrary code. Only rnnlab's own, torch's and the
configured libraries' callables may be built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

ALLOWED_TARGET_PREFIXES = (
    "rnnlab.",
    "torch.",
    "torchmetrics.",
    "torchaudio.",
    "lightning.",
    "pytorch_lightning.",
)


def check_targets(cfg: Any, where: str, allowed: Sequence[str] = ALLOWED_TARGET_PREFIXES) -> None:
    """Raise ValueError if any ``_target_`` in ``cfg`` is outside the allowed prefixes."""
    if isinstance(cfg, Mapping):
        target = cfg.get("_target_")
        if target is not None and not str(target).startswith(tuple(allowed)):
            raise ValueError(
                f"{where}._target_={target!r} is not allowed; targets must start with one of "
                f"{', '.join(allowed)}"
            )
        for key, value in cfg.items():
            check_targets(value, f"{where}.{key}", allowed)
    elif isinstance(cfg, Sequence) and not isinstance(cfg, str):
        for i, value in enumerate(cfg):
            check_targets(value, f"{where}[{i}]", allowed)
