"""IndRNN (Li et al. 2018): the Elman step with a vector recurrent weight (docs/equations.md).

```text
h_t = phi(W u_t + b_i + u_rec * h_{t-1} + b_h)        u_rec in R^H, |u_rec_k| <= u_max
```

Each unit sees only its own previous value, so the recurrent product is elementwise
(``cells.recurrent_term``) and a unit's gradient through time is ``prod_t u_k phi'``:
bounding ``|u_k|`` (``model.indrnn_max_weight``, the clamp in ``bounded``) is what keeps
long relu stacks from exploding. Li et al. bound ``|u_k|`` by ``2^{1/T}`` for relu (a
gradient that may grow at most 2x over T steps); the default 1.0 is that bound's limit
for long T and makes each unit non-expansive; ``null`` removes the bound.

The layer keeps nn.RNN's parameter names (``weight_ih_l0``, ``weight_hh_l0``,
``bias_ih_l0``, ``bias_hh_l0``, ``*_reverse``) in ``IndRNNParams`` so the rest of the
layer code reads them one way; ``weight_hh_l0`` is (H,). Both biases are kept (their sum
is the paper's single ``b``) so the kernel takes IndRNN exactly as it takes Elman.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

DEFAULT_MAX_WEIGHT = 1.0
# init=indrnn (Li et al. 2018): input-weight std, and 1 in LONG_MEMORY_SHARE units of a
# layer starts with u in the long-memory range (see init_indrnn_weights).
LI_INPUT_STD = 1e-3
LONG_MEMORY_SHARE = 8


def check_max_weight(value: Any, key: str = "indrnn_max_weight") -> float | None:
    """``value`` as a bound: a number > 0, or None (no bound)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{key}={value!r} must be a number > 0 or null (no bound)")
    return float(value)


def bounded(u: torch.Tensor, max_weight: float | None) -> torch.Tensor:
    """The recurrent weight the step uses: ``clamp(u, -u_max, u_max)`` (autograd passes
    the gradient inside the bound, zero outside it)."""
    return u if max_weight is None else u.clamp(-max_weight, max_weight)


def init_indrnn_weights(
    weight_ih: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_ih: torch.Tensor,
    bias_hh: torch.Tensor,
    init: str,
    max_weight: float | None,
) -> None:
    """Initialise one direction in place (Li et al. 2018: u ~ U(0, u_max)).

    ``default``: W and the biases U(-1/sqrt(H), 1/sqrt(H)), u ~ U(0, u_max);
    ``orthogonal``: W Xavier-uniform, biases 0, u ~ U(0, u_max);
    ``identity``: W Xavier-uniform, biases 0, u = min(1, u_max);
    ``indrnn`` (Li et al. 2018's adding-problem recipe): W ~ N(0, 0.001^2), biases 0,
    u ~ U(0, u_max) for the first H - H//8 units and, for the last H//8 units (at least
    one), u ~ U(1/u_max, u_max): the range Li et al. give their last layer so that it
    starts with memory over the whole sequence (with u_max = 2^{1/T}: u^T in (1/2, 2)).
    An init sees one layer, not its depth, so every layer gets a few such units (the
    residual stack sums all layers' outputs into the head). For u_max <= 1 they start at
    u_max. u_max = 1 when unbounded.
    """
    from rnnlab.nn.cells import INITS

    top = 1.0 if max_weight is None else max_weight
    with torch.no_grad():
        if init == "default":
            bound = 1.0 / math.sqrt(weight_hh.shape[0])
            for w in (weight_ih, bias_ih, bias_hh):
                w.uniform_(-bound, bound)
        elif init in ("orthogonal", "identity", "indrnn"):
            if init == "indrnn":
                weight_ih.normal_(0.0, LI_INPUT_STD)
            else:
                nn.init.xavier_uniform_(weight_ih)
            bias_ih.zero_()
            bias_hh.zero_()
        else:
            raise ValueError(
                f"init={init!r} is not a known initialisation; valid: {', '.join(INITS)}"
            )
        if init == "identity":
            weight_hh.fill_(min(1.0, top))
        else:
            weight_hh.uniform_(0.0, top)
        if init == "indrnn":
            n_long = max(1, weight_hh.shape[0] // LONG_MEMORY_SHARE)
            weight_hh[-n_long:].uniform_(min(1.0 / top, top), top)


class IndRNNParams(nn.Module):
    """Parameter container of an IndRNN layer, named as nn.RNN names its parameters."""

    def __init__(self, input_size: int, hidden_size: int, bidirectional: bool = False):
        super().__init__()
        for sfx in ("_l0", "_l0_reverse") if bidirectional else ("_l0",):
            self.register_parameter(
                f"weight_ih{sfx}", nn.Parameter(torch.empty(hidden_size, input_size))
            )
            self.register_parameter(f"weight_hh{sfx}", nn.Parameter(torch.empty(hidden_size)))
            self.register_parameter(f"bias_ih{sfx}", nn.Parameter(torch.empty(hidden_size)))
            self.register_parameter(f"bias_hh{sfx}", nn.Parameter(torch.empty(hidden_size)))
