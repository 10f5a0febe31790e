"""Plain stacking: u^{l+1} = h^l (seed 004's "stacking")."""

from __future__ import annotations

import torch
from torch import nn

from rnnlab.nn.connections.base import LayerSpec, RecurrentStack


class StackConnection(RecurrentStack):
    name = "stack"

    def __init__(self, input_size: int, num_layers: int, spec: LayerSpec, dropout: float = 0.0):
        super().__init__(input_size, num_layers, dropout)
        widths = [input_size] + [spec.output_size] * (num_layers - 1)
        self.layers = nn.ModuleList(spec.build(w) for w in widths)
        self.output_size = spec.output_size
        self.segments = [(spec.output_size, spec.bidirectional)]

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        states = []
        for i, layer in enumerate(self.layers):
            x, state = layer(x, lengths)
            states.append(state)
            if i < self.num_layers - 1:
                x = self.dropout(x)
        return x, states
