"""LSTM with a projection (LSTMP, Sak et al. 2014; ``nn.LSTM(proj_size=P)``), per step.

```text
a_k = W_k u_t + b_ik + U_k h_{t-1} + b_hk          U: (4H, P)
c_t = σ_g(a_f) ⊙ c_{t-1} + σ_g(a_i) ⊙ φ(a_g)        c: (B, H)
h_t = W_hr (σ_g(a_o) ⊙ φ_c(c_t))                    W_hr: (P, H), h: (B, P)
```

With the default activations the layer runs ``nn.LSTM(proj_size=P)`` itself (fused).
Any other activation (or ``fused: false``) runs ``projected_direction``: the input
product for every step as one matmul, then a per-step autograd loop of the cell math
above (the rnnlab C++ kernel does not carry the per-step projection product; the
measured cost of this path is in benchmarks/results/variants.md). Padding follows the
one rule of nn/masks.py: a padded step keeps both states and outputs zero.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from rnnlab.nn.cells import CellActivations, State, cell_step
from rnnlab.nn.masks import step_mask_or_none


def check_proj_size(proj_size: object, cell: str, hidden_size: int, where: str = "model") -> int:
    """``proj_size`` as an int: 0 (no projection) or 0 < P < hidden_size on an LSTM."""
    key = f"{where}.proj_size"
    if isinstance(proj_size, bool) or not isinstance(proj_size, int) or proj_size < 0:
        raise ValueError(f"{key}={proj_size!r} must be an integer >= 0 (0: no projection)")
    if proj_size and cell != "lstm":
        raise ValueError(
            f"{key}={proj_size} needs {where}.cell=lstm (got {cell!r}); valid cells for "
            "proj_size: lstm (the projection maps o ⊙ φ_c(c_t) of width H to h_t of width P)"
        )
    if proj_size and proj_size >= hidden_size:
        raise ValueError(
            f"{key}={proj_size} must be smaller than {where}.hidden_size={hidden_size}"
        )
    return proj_size


def init_projection(w_hr: torch.Tensor, init: str) -> None:
    """W_hr in place: U(-1/sqrt(H), 1/sqrt(H)) as nn.LSTM (``default``), a random
    orthogonal (``orthogonal``) or the (P, H) identity (``identity``)."""
    with torch.no_grad():
        if init == "orthogonal":
            torch.nn.init.orthogonal_(w_hr)
        elif init == "identity":
            w_hr.copy_(torch.eye(*w_hr.shape))
        else:
            bound = 1.0 / math.sqrt(w_hr.shape[1])
            w_hr.uniform_(-bound, bound)


def projected_direction(
    acts: CellActivations,
    x: torch.Tensor,
    lengths: torch.Tensor,
    weights: tuple[torch.Tensor, ...],
    w_hr: torch.Tensor,
    state: State | None = None,
) -> tuple[torch.Tensor, State]:
    """One direction of an LSTMP layer. x (B, T, I) -> out (B, T, P), (h (B, P), c (B, H))."""
    w_ih, w_hh, b_ih, b_hh = weights
    batch, steps = x.shape[:2]
    if state is None:
        state = (x.new_zeros(batch, w_hr.shape[0]), x.new_zeros(batch, w_hr.shape[1]))
    gx = F.linear(x, w_ih, b_ih)
    mask = step_mask_or_none(lengths, steps, x.device)
    h, c = state
    outs = []
    for t in range(steps):
        r, c_new = cell_step("lstm", acts, gx[:, t], F.linear(h, w_hh, b_hh), (h, c))
        h_new = F.linear(r, w_hr)
        if mask is None:
            h, c = h_new, c_new
            outs.append(h_new)
        else:
            m = mask[t]
            h, c = torch.where(m, h_new, h), torch.where(m, c_new, c)
            outs.append(h_new * m)
    return torch.stack(outs, 1), (h, c)
