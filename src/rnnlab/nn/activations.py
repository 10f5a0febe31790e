"""Activation registry: one name -> one elementwise function.

Cells look activations up by name so a config can say ``activation: gelu``. Unknown
names fail when the model is built, with the list of valid names, never mid-training.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Activation = Callable[[torch.Tensor], torch.Tensor]


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Keras' piecewise-linear sigmoid: clip(0.2 x + 0.5, 0, 1)."""
    return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)


ACTIVATIONS: dict[str, Activation] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "leaky_relu": F.leaky_relu,
    "elu": F.elu,
    "gelu": F.gelu,
    "silu": F.silu,
    "softsign": F.softsign,
    "hardtanh": F.hardtanh,
    "sigmoid": torch.sigmoid,
}

GATE_ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": torch.sigmoid,
    "hard_sigmoid": hard_sigmoid,
}


def get_activation(name: str, *, key: str = "activation") -> Activation:
    """Return the activation called ``name``; ``key`` names the config entry in errors."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"{key}={name!r} is not a known activation; valid: {', '.join(sorted(ACTIVATIONS))}"
        ) from None


def get_gate_activation(name: str, *, key: str = "gate_activation") -> Activation:
    """Return the gate activation called ``name`` (gates must map into [0, 1])."""
    try:
        return GATE_ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"{key}={name!r} is not a known gate activation; "
            f"valid: {', '.join(sorted(GATE_ACTIVATIONS))}"
        ) from None
