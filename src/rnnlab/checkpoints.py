"""Loading checkpoints safely: tensors and plain containers only, never pickled code."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` with errors that name the file and the cause."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path={str(path)!r}: no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path}: refused to load — the checkpoint contains objects other than tensors and "
            f"plain containers (possible code payload); only weights_only checkpoints load. "
            f"Detail: {str(err).splitlines()[0]}"
        ) from None
