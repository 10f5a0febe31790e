"""Every registered activation and its derivative as Triton device functions.

The code is ``KERNEL_CODES`` (nn/activations.py), passed as a ``tl.constexpr`` so each
compiled kernel holds only its own branch. Formulas and the one-sided choices at the
kinks are those of ``DERIVATIVES`` (relu'(0) = 0, hardtanh'(+-1) = 0, hard_sigmoid'
counts its boundary), evaluated in float32:

    tanh(x) = sign(x) (1 - e^{-2|x|}) / (1 + e^{-2|x|})    (no overflow, no cancellation)
    gelu(x) = x Phi(x),  gelu'(x) = Phi(x) + x e^{-x^2/2} / sqrt(2 pi)
"""

from __future__ import annotations

import triton
import triton.language as tl

from rnnlab.nn.activations import KERNEL_CODES

TANH: tl.constexpr = tl.constexpr(KERNEL_CODES["tanh"])
RELU: tl.constexpr = tl.constexpr(KERNEL_CODES["relu"])
LEAKY_RELU: tl.constexpr = tl.constexpr(KERNEL_CODES["leaky_relu"])
ELU: tl.constexpr = tl.constexpr(KERNEL_CODES["elu"])
GELU: tl.constexpr = tl.constexpr(KERNEL_CODES["gelu"])
SILU: tl.constexpr = tl.constexpr(KERNEL_CODES["silu"])
SOFTSIGN: tl.constexpr = tl.constexpr(KERNEL_CODES["softsign"])
HARDTANH: tl.constexpr = tl.constexpr(KERNEL_CODES["hardtanh"])
SIGMOID: tl.constexpr = tl.constexpr(KERNEL_CODES["sigmoid"])
HARD_SIGMOID: tl.constexpr = tl.constexpr(KERNEL_CODES["hard_sigmoid"])


@triton.jit
def _tanh(x):
    e = tl.exp(-2.0 * tl.abs(x))
    t = (1.0 - e) / (1.0 + e)
    return tl.where(x < 0, -t, t)


@triton.jit
def _sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def act(x, CODE: tl.constexpr):
    """f(x) for activation code ``CODE``."""
    if CODE == TANH:
        y = _tanh(x)
    elif CODE == RELU:
        y = tl.maximum(x, 0.0)
    elif CODE == LEAKY_RELU:
        y = tl.where(x > 0, x, 0.01 * x)
    elif CODE == ELU:
        y = tl.where(x > 0, x, tl.exp(tl.minimum(x, 0.0)) - 1.0)
    elif CODE == GELU:
        y = 0.5 * x * (1.0 + tl.math.erf(x * 0.7071067811865476))
    elif CODE == SILU:
        y = x * _sigmoid(x)
    elif CODE == SOFTSIGN:
        y = x / (1.0 + tl.abs(x))
    elif CODE == HARDTANH:
        y = tl.minimum(tl.maximum(x, -1.0), 1.0)
    elif CODE == SIGMOID:
        y = _sigmoid(x)
    else:  # HARD_SIGMOID
        y = tl.minimum(tl.maximum(0.2 * x + 0.5, 0.0), 1.0)
    return y


@triton.jit
def dact(x, CODE: tl.constexpr):
    """f'(x) at the pre-activation x for activation code ``CODE``."""
    if CODE == TANH:
        t = _tanh(x)
        y = 1.0 - t * t
    elif CODE == RELU:
        y = tl.where(x > 0, 1.0, 0.0)
    elif CODE == LEAKY_RELU:
        y = tl.where(x > 0, 1.0, 0.01)
    elif CODE == ELU:
        y = tl.where(x > 0, 1.0, tl.exp(tl.minimum(x, 0.0)))
    elif CODE == GELU:
        cdf = 0.5 * (1.0 + tl.math.erf(x * 0.7071067811865476))
        y = cdf + x * tl.exp(-0.5 * x * x) * 0.3989422804014327
    elif CODE == SILU:
        s = _sigmoid(x)
        y = s * (1.0 + x * (1.0 - s))
    elif CODE == SOFTSIGN:
        a = 1.0 / (1.0 + tl.abs(x))
        y = a * a
    elif CODE == HARDTANH:
        y = tl.where((x > -1.0) & (x < 1.0), 1.0, 0.0)
    elif CODE == SIGMOID:
        s = _sigmoid(x)
        y = s * (1.0 - s)
    else:  # HARD_SIGMOID
        y = tl.where((x >= -2.5) & (x <= 2.5), 0.2, 0.0)
    return y
