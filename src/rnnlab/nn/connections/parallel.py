"""Parallel branches (seed 004's "connecting"): K recurrent stacks side by side.

Each branch is a whole stack with its own cell, activations and connection (an LSTM
branch beside a GRU branch, say). All read the same input; their outputs and final
states are concatenated on the feature axis before the head.
"""

from __future__ import annotations

import torch
from torch import nn

from rnnlab.nn.connections.base import RecurrentStack


class ParallelConnection(RecurrentStack):
    name = "parallel"

    def __init__(self, input_size: int, branches: list[RecurrentStack]):
        super().__init__(input_size, num_layers=1)
        if not branches:
            raise ValueError(
                "connection.branches is empty; a parallel connection needs >= 1 branch"
            )
        self.branches = nn.ModuleList(branches)
        self.output_size = sum(b.output_size for b in branches)
        self.segments = [seg for b in branches for seg in b.segments]

    def extra_repr(self) -> str:
        # num_layers is not an option here: each branch prints its own.
        return (
            f"name={self.name}, branches={len(self.branches)}, "
            f"input_size={self.input_size}, output_size={self.output_size}"
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        outs, states = [], []
        for branch in self.branches:
            out, st = branch(x, lengths)
            outs.append(out)
            states.append(st)
        return torch.cat(outs, dim=-1), states
