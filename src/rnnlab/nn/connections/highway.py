"""Highway (gated skip) connections between layers — the seed's "skip-gate".

tau = sigmoid(W_tau u^l + b_tau);  u^{l+1} = tau * h^l + (1 - tau) * P(u^l).
b_tau starts negative (gate_bias, default -1.5) so each layer starts close to carrying
its input through, which keeps deep stacks trainable from the first step.
"""

from __future__ import annotations

import torch
from torch import nn

from rnnlab.nn.connections.base import LayerSpec, RecurrentStack, projection
from rnnlab.nn.masks import zero_padding


class HighwayConnection(RecurrentStack):
    name = "highway"

    def __init__(
        self,
        input_size: int,
        num_layers: int,
        spec: LayerSpec,
        dropout: float = 0.0,
        gate_bias: float = -1.5,
        project: bool = True,
    ):
        super().__init__(input_size, num_layers, dropout)
        width = spec.output_size
        widths = [input_size] + [width] * (num_layers - 1)
        self.layers = nn.ModuleList(spec.build(w) for w in widths)
        self.skips = nn.ModuleList(
            projection(w, width, project=project, where=f"highway layer {i + 1}")
            for i, w in enumerate(widths)
        )
        self.gates = nn.ModuleList(nn.Linear(w, width) for w in widths)
        for gate in self.gates:
            nn.init.constant_(gate.bias, gate_bias)
        self.gate_bias, self.project = gate_bias, project
        self.output_size = width
        self.segments = [(width, spec.bidirectional)]

    def options(self) -> dict[str, object]:
        return {"gate_bias": self.gate_bias, "project": self.project}

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        states = []
        u = x
        for i, (layer, skip, gate) in enumerate(zip(self.layers, self.skips, self.gates)):
            h, state = layer(u, lengths)
            states.append(state)
            if i < self.num_layers - 1:
                h = self.dropout(h)
            tau = torch.sigmoid(gate(u))
            u = zero_padding(tau * h + (1.0 - tau) * skip(u), lengths)
        return u, states
