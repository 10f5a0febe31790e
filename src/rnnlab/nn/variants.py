"""Cell variants beyond the textbook cells: their config, checks and extra parameters.

- LSTM projection (LSTMP, Sak et al. 2014; ``nn.LSTM(proj_size=P)``), ``proj_size``:
  ``h_t = W_hr (σ_g(a_o) ⊙ φ_c(c_t))``, W_hr (P, H), so U is (4H, P).
- Greff et al. 2017's LSTM variants, ``lstm_variant``: ``cifg`` (i = 1 − f), ``nig``
  (i = 1), ``nfg`` (f = 1), ``nog`` (o = 1), ``niaf`` (g = a_g), ``noaf`` (h = o ⊙ c).
- Peepholes (Gers & Schmidhuber 2000), ``peephole``: diagonal p_i, p_f on c_{t-1} and
  p_o on c_t.
- Layer normalisation inside the recurrence (Ba et al. 2016), ``layer_norm``.
- Recurrent (variational) dropout (Gal & Ghahramani 2016), ``recurrent_dropout``, and
  zoneout (Krueger et al. 2017), ``zoneout``.

The exact equations are in docs/equations.md; the per-step math and its reference loop
are in nn/variant_cells.py, the C++ kernel that runs them on CPU in
nn/kernels/variant_recurrence.cpp, the Triton kernel for CUDA in
nn/kernels/triton_variant*.py. ``Variant`` is what a layer needs to know; ``VariantParams``
holds a direction's extra parameters (peepholes, layer-norm gains and biases) next to,
not inside, the nn.LSTM/GRU/RNN container, so the container's state dict still loads
into PyTorch's modules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rnnlab.nn.cells import NUM_GATES

LSTM_VARIANTS = ("vanilla", "cifg", "nig", "nfg", "nog", "niaf", "noaf")


@dataclass(frozen=True)
class Variant:
    """The in-recurrence options of a layer (all off: the plain cell)."""

    lstm_variant: str = "vanilla"
    peephole: bool = False
    layer_norm: bool = False
    recurrent_dropout: float = 0.0
    zoneout: float = 0.0

    @property
    def is_plain(self) -> bool:
        return self == Variant()

    def describe(self) -> str:
        """The options that differ from the plain cell, for a repr."""
        plain = Variant()
        return ", ".join(
            f"{k}={getattr(self, k)}" for k in self.__dataclass_fields__
            if getattr(self, k) != getattr(plain, k)
        )  # fmt: skip


def _probability(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{key}={value!r} must be a number in [0, 1)")
    return float(value)


def check_variant(cfg: dict[str, Any], cell: str, where: str = "model") -> Variant:
    """The ``Variant`` of the model keys in ``cfg``; a bad value or a key on a cell that
    has no such part fails here, naming the key and what is valid."""
    name = cfg.get("lstm_variant", "vanilla")
    if name not in LSTM_VARIANTS:
        raise ValueError(
            f"{where}.lstm_variant={name!r} is not valid; valid: {', '.join(LSTM_VARIANTS)}"
        )
    for key in ("peephole", "layer_norm"):
        if not isinstance(cfg.get(key, False), bool):
            raise ValueError(f"{where}.{key}={cfg[key]!r} must be true or false")
    variant = Variant(
        lstm_variant=name,
        peephole=cfg.get("peephole", False),
        layer_norm=cfg.get("layer_norm", False),
        recurrent_dropout=_probability(
            cfg.get("recurrent_dropout", 0.0), f"{where}.recurrent_dropout"
        ),
        zoneout=_probability(cfg.get("zoneout", 0.0), f"{where}.zoneout"),
    )
    if cell != "lstm":
        for key, value in (("lstm_variant", name != "vanilla"), ("peephole", variant.peephole)):
            if value:
                raise ValueError(
                    f"{where}.{key}={cfg[key]!r} needs {where}.cell=lstm (got {cell!r}); "
                    f"valid cells for {key}: lstm"
                )
    return variant


class VariantParams(nn.Module):
    """One direction's extra parameters: peepholes (3, H) as (p_i, p_f, p_o), and for
    layer norm the gains (init 1) and biases (init 0) of each gate block of ``W u`` and
    ``U h`` (G, H), and of the LSTM cell state (H,)."""

    def __init__(self, cell: str, hidden_size: int, variant: Variant) -> None:
        super().__init__()
        h, g = hidden_size, NUM_GATES[cell]
        self.peephole = nn.Parameter(torch.zeros(3, h)) if variant.peephole else None
        if variant.peephole:
            bound = 1.0 / math.sqrt(h)
            with torch.no_grad():
                self.peephole.uniform_(-bound, bound)
        self.layer_norm = variant.layer_norm
        if variant.layer_norm:
            self.ln_x_gain, self.ln_x_bias = (
                nn.Parameter(torch.ones(g, h)),
                nn.Parameter(torch.zeros(g, h)),
            )
            self.ln_h_gain, self.ln_h_bias = (
                nn.Parameter(torch.ones(g, h)),
                nn.Parameter(torch.zeros(g, h)),
            )
            if cell == "lstm":
                self.ln_c_gain, self.ln_c_bias = (
                    nn.Parameter(torch.ones(h)),
                    nn.Parameter(torch.zeros(h)),
                )


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
