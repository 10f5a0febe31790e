"""Residual connections between layers (GNMT, Wu et al. 2016).

u^{l+1} = h^l + P(u^l) for layers l >= start_layer (1-based), else u^{l+1} = h^l.
The stack's output is u^{L+1}, so the last layer's skip reaches the head too (as in
GNMT and ResNets); with start_layer > L this is plain stacking.
"""

from __future__ import annotations

import torch
from torch import nn

from rnnlab.nn.connections.base import LayerSpec, RecurrentStack, projection
from rnnlab.nn.masks import zero_padding


class ResidualConnection(RecurrentStack):
    name = "residual"

    def __init__(
        self,
        input_size: int,
        num_layers: int,
        spec: LayerSpec,
        dropout: float = 0.0,
        start_layer: int = 2,
        project: bool = True,
    ):
        super().__init__(input_size, num_layers, dropout)
        if not isinstance(start_layer, int) or start_layer < 1:
            raise ValueError(f"connection.start_layer={start_layer!r} must be an integer >= 1")
        self.start_layer, self.project = start_layer, project
        width = spec.output_size
        widths = [input_size] + [width] * (num_layers - 1)
        self.layers = nn.ModuleList(spec.build(w) for w in widths)
        self.skips = nn.ModuleList(
            projection(w, width, project=project, where=f"residual layer {i + 1}")
            if i + 1 >= start_layer
            else nn.Identity()
            for i, w in enumerate(widths)
        )
        self.output_size = width
        self.segments = [(width, spec.bidirectional)]

    def options(self) -> dict[str, object]:
        return {"start_layer": self.start_layer, "project": self.project}

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        states = []
        u = x
        for i, (layer, skip) in enumerate(zip(self.layers, self.skips)):
            h, state = layer(u, lengths)
            states.append(state)
            if i < self.num_layers - 1:
                h = self.dropout(h)
            u = h + zero_padding(skip(u), lengths) if i + 1 >= self.start_layer else h
        return u, states
