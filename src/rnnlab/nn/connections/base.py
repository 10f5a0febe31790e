"""What every cross-layer connection shares: the layer recipe and the stack contract.

Each connection's equations are in docs/equations.md ("Cross-layer connections").
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import nn

from rnnlab.nn.cells import CellActivations, check_cell
from rnnlab.nn.indrnn import DEFAULT_MAX_WEIGHT
from rnnlab.nn.recurrent import RecurrentLayer
from rnnlab.nn.variants import Variant


@dataclass(frozen=True)
class LayerSpec:
    """How to build one recurrent layer; the stack decides only its input width."""

    cell: str = "lstm"
    hidden_size: int = 128
    activations: CellActivations = field(default_factory=CellActivations)
    bidirectional: bool = False
    init: str = "default"
    forget_bias: float | None = None
    fused: bool | str = "auto"
    max_weight: float | None = DEFAULT_MAX_WEIGHT  # IndRNN's |u| bound (nn/indrnn.py)
    variant: Variant = field(default_factory=Variant)  # nn/variants.py
    proj_size: int = 0  # LSTMP: h_t = W_hr (o ⊙ φ_c(c_t)) of width proj_size (nn/variants.py)

    def __post_init__(self) -> None:
        check_cell(self.cell)
        if not isinstance(self.hidden_size, int) or self.hidden_size < 1:
            raise ValueError(f"hidden_size={self.hidden_size!r} must be a positive integer")

    @property
    def output_size(self) -> int:
        return (self.proj_size or self.hidden_size) * (2 if self.bidirectional else 1)

    def build(self, input_size: int) -> RecurrentLayer:
        return RecurrentLayer(
            self.cell,
            input_size,
            self.hidden_size,
            bidirectional=self.bidirectional,
            activations=self.activations,
            init=self.init,
            forget_bias=self.forget_bias,
            fused=self.fused,
            max_weight=self.max_weight,
            proj_size=self.proj_size,
            variant=self.variant,
        )

    def with_(self, **changes) -> LayerSpec:
        return replace(self, **changes)


Segments = list[tuple[int, bool]]


class RecurrentStack(nn.Module):
    """Base class of connections: L recurrent layers wired together.

    ``forward(x, lengths)`` maps (B, T, input_size) to ``(output, states)``: output is
    (B, T, output_size) with zeros at padded steps, states a list with each layer's
    final state tuple. ``segments`` describes output columns as (width, bidirectional)
    blocks so a head can take each direction's last valid step.
    """

    name: str  # the config's connection.name
    input_size: int
    output_size: int
    segments: Segments

    def __init__(self, input_size: int, num_layers: int, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"num_layers={num_layers!r} must be an integer >= 1")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout!r} must be in [0, 1)")
        if input_size < 1:
            raise ValueError(f"input_size={input_size!r} must be >= 1")
        self.input_size = input_size
        self.num_layers = num_layers
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list]:
        raise NotImplementedError

    def options(self) -> dict[str, object]:
        """The connection's own config options and their values (for the repr)."""
        return {}

    def extra_repr(self) -> str:
        parts = [
            f"name={self.name}",
            f"num_layers={self.num_layers}",
            f"input_size={self.input_size}",
            f"output_size={self.output_size}",
        ]
        parts += [f"{key}={value}" for key, value in self.options().items()]
        return ", ".join(parts)


def projection(in_size: int, out_size: int, *, project: bool, where: str) -> nn.Module:
    """P in docs/equations.md: identity when widths match, else a bias-free linear map."""
    if in_size == out_size:
        return nn.Identity()
    if not project:
        raise ValueError(
            f"{where}: cannot join width {in_size} to width {out_size} with project=false; "
            f"set connection.project=true (learned projection) or make the widths equal"
        )
    return nn.Linear(in_size, out_size, bias=False)
