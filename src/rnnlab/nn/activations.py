"""Activation registry: one name -> one elementwise function (and its derivative).

Cells look activations up by name so a config can say ``activation: gelu``. Unknown
names fail when the model is built, with the list of valid names, never mid-training.
The recurrent kernels' hand-written backward needs f'(x) from the saved pre-activation
x: ``DERIVATIVES`` holds it for every name, and ``KERNEL_CODES`` numbers each name the
way the C++ kernels do (``enum Act`` in nn/kernels/common.h). The formulas each slot
takes are in docs/equations.md.
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


def _sigmoid_grad(x: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(x)
    return s * (1.0 - s)


def _gelu_grad(x: torch.Tensor) -> torch.Tensor:
    cdf = 0.5 * (1.0 + torch.erf(x * 0.7071067811865476))
    return cdf + x * torch.exp(-0.5 * x * x) * 0.3989422804014327


def _silu_grad(x: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(x)
    return s * (1.0 + x * (1.0 - s))


# d f / d x at the pre-activation x, with the same one-sided choices as torch's autograd
# at the kinks (relu'(0) = 0, hardtanh'(+-1) = 0, clamp passes the boundary).
DERIVATIVES: dict[str, Activation] = {
    "tanh": lambda x: 1.0 - torch.tanh(x) ** 2,
    "relu": lambda x: (x > 0).to(x.dtype),
    "leaky_relu": lambda x: torch.where(x > 0, torch.ones_like(x), torch.full_like(x, 0.01)),
    "elu": lambda x: torch.where(x > 0, torch.ones_like(x), torch.exp(x)),
    "gelu": _gelu_grad,
    "silu": _silu_grad,
    "softsign": lambda x: (1.0 + x.abs()).reciprocal() ** 2,
    "hardtanh": lambda x: ((x > -1.0) & (x < 1.0)).to(x.dtype),
    "sigmoid": _sigmoid_grad,
    "hard_sigmoid": lambda x: ((x >= -2.5) & (x <= 2.5)).to(x.dtype) * 0.2,
}

# Activation codes of the C++ kernels (enum Act in nn/kernels/common.h).
KERNEL_CODES: dict[str, int] = {
    "tanh": 0,
    "relu": 1,
    "leaky_relu": 2,
    "elu": 3,
    "gelu": 4,
    "silu": 5,
    "softsign": 6,
    "hardtanh": 7,
    "sigmoid": 8,
    "hard_sigmoid": 9,
}


def get_derivative(name: str) -> Activation:
    """f' of a registered (gate) activation, evaluated at the pre-activation."""
    return DERIVATIVES[name]


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
