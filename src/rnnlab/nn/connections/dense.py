"""Densely connected layers (Ding et al. 2018): u^{l+1} = concat(x, h^1, ..., h^l).

Output: h^L, or concat(h^1, ..., h^L) with concat_output=true.
"""

from __future__ import annotations

import torch
from torch import nn

from rnnlab.nn.connections.base import LayerSpec, RecurrentStack


class DenseConnection(RecurrentStack):
    name = "dense"

    def __init__(
        self,
        input_size: int,
        num_layers: int,
        spec: LayerSpec,
        dropout: float = 0.0,
        concat_output: bool = False,
    ):
        super().__init__(input_size, num_layers, dropout)
        width = spec.output_size
        self.layers = nn.ModuleList(spec.build(input_size + i * width) for i in range(num_layers))
        self.concat_output = concat_output
        n_out = num_layers if concat_output else 1
        self.output_size = width * n_out
        self.segments = [(width, spec.bidirectional)] * n_out

    def options(self) -> dict[str, object]:
        return {"concat_output": self.concat_output}

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        states, hs = [], []
        features = [x]
        for i, layer in enumerate(self.layers):
            h, state = layer(torch.cat(features, dim=-1), lengths)
            states.append(state)
            if i < self.num_layers - 1:
                h = self.dropout(h)
            hs.append(h)
            features.append(h)
        return (torch.cat(hs, dim=-1) if self.concat_output else hs[-1]), states
