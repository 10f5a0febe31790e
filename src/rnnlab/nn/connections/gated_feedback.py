"""Gated-feedback recurrence (Chung et al. 2015): the layers step in lockstep.

With h*_{t-1} = concat(h^1_{t-1}, ..., h^L_{t-1}) and scalar global reset gates
g^{i->j}_t = sigmoid(w^{i->j} . u^j_t + v^{i->j} . h*_{t-1}), the recurrent term of
layer j's candidate is sum_i g^{i->j}_t U^{i->j} h^i_{t-1} (the whole recurrent input
for Elman, the g/n candidate for LSTM/GRU; gates keep their own-layer recurrence).
U^{j->j} is the layer's own candidate block of weight_hh, so the layers' weights keep
PyTorch's layout. This is the one connection that lives inside the recurrence, so it
always runs the project's loop.

Bidirectional: two independent gated-feedback stacks, one per direction, whose
per-layer outputs are concatenated (a backward stack cannot step in lockstep with a
forward one).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from rnnlab.nn.cells import NUM_GATES, cell_step, initial_state
from rnnlab.nn.connections.base import LayerSpec, RecurrentStack
from rnnlab.nn.recurrent import full_lengths, reverse_padded, step_mask


class _FeedbackDirection(nn.Module):
    """One direction: L unidirectional layers plus the cross-layer feedback weights."""

    def __init__(self, input_size: int, num_layers: int, spec: LayerSpec):
        super().__init__()
        h = spec.hidden_size
        uni = spec.with_(bidirectional=False, fused=False)
        widths = [input_size] + [h] * (num_layers - 1)
        self.layers = nn.ModuleList(uni.build(w) for w in widths)
        self.cell, self.acts, self.hidden = spec.cell, spec.activations, h
        # U^{i->j} for i != j, stored per target layer j as one (H, (L-1)*H) block.
        bound = 1.0 / math.sqrt(h)
        self.cross = nn.ParameterList(
            nn.Parameter(torch.empty(h, (num_layers - 1) * h).uniform_(-bound, bound))
            for _ in range(num_layers)
        )
        self.gate_u = nn.ModuleList(nn.Linear(w, num_layers, bias=False) for w in widths)
        self.gate_h = nn.ModuleList(
            nn.Linear(num_layers * h, num_layers, bias=False) for _ in widths
        )

    def _feedback_matrix(self, j: int) -> torch.Tensor:
        """(H, L*H): U^{i->j} blocks in layer order, with the layer's own block in place j."""
        h, num_layers = self.hidden, len(self.layers)
        k = 2 if self.cell == "lstm" else NUM_GATES[self.cell] - 1  # candidate block index
        own = self.layers[j].weights(0)[1][k * h : (k + 1) * h]
        blocks = list(self.cross[j].split(h, dim=1)) if num_layers > 1 else []
        blocks.insert(j, own)
        return torch.cat(blocks, dim=1)

    def forward(self, x, lengths, dropout: nn.Module):
        batch, steps = x.shape[:2]
        h, num_layers = self.hidden, len(self.layers)
        k = 2 if self.cell == "lstm" else NUM_GATES[self.cell] - 1
        weights = [layer.weights(0) for layer in self.layers]
        feedback = [self._feedback_matrix(j) for j in range(num_layers)]
        cand_bias = [w[3][k * h : (k + 1) * h] for w in weights]
        gx0 = F.linear(x, weights[0][0], weights[0][2]).transpose(0, 1)
        xs = x.transpose(0, 1)
        ragged = bool((lengths < steps).any())
        mask = step_mask(lengths, steps, x.device) if ragged else None
        states = [initial_state(self.cell, batch, h, x) for _ in range(num_layers)]
        outputs = []
        for t, (gx_first, x_t) in enumerate(zip(gx0.unbind(0), xs.unbind(0))):
            h_all = torch.cat([s[0] for s in states], dim=1)  # h*_{t-1}
            u = x_t
            new_states = []
            for j, layer_w in enumerate(weights):
                w_ih, w_hh, b_ih, b_hh = layer_w
                gx = gx_first if j == 0 else F.linear(u, w_ih, b_ih)
                gates = torch.sigmoid(self.gate_u[j](u) + self.gate_h[j](h_all))  # (B, L)
                gated = (h_all.view(batch, num_layers, h) * gates.unsqueeze(-1)).flatten(1)
                cand = F.linear(gated, feedback[j], cand_bias[j])
                gh = F.linear(states[j][0], w_hh, b_hh)
                new = cell_step(self.cell, self.acts, gx, gh, states[j], candidate_rec=cand)
                if mask is not None:
                    new = tuple(torch.where(mask[t], n, s) for n, s in zip(new, states[j]))
                new_states.append(new)
                u = new[0] if j == num_layers - 1 else dropout(new[0])
            states = new_states
            out = states[-1][0]
            outputs.append(out * mask[t] if mask is not None else out)
        return torch.stack(outputs, dim=1), states


class GatedFeedbackConnection(RecurrentStack):
    def __init__(self, input_size: int, num_layers: int, spec: LayerSpec, dropout: float = 0.0):
        super().__init__(input_size, num_layers, dropout)
        self.directions = nn.ModuleList(
            _FeedbackDirection(input_size, num_layers, spec)
            for _ in range(2 if spec.bidirectional else 1)
        )
        self.output_size = spec.output_size
        self.segments = [(spec.output_size, spec.bidirectional)]

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        if lengths is None:
            lengths = full_lengths(x)
        outs, per_dir_states = [], []
        for d, direction in enumerate(self.directions):
            xd = reverse_padded(x, lengths) if d else x
            out, states = direction(xd, lengths, self.dropout)
            outs.append(reverse_padded(out, lengths) if d else out)
            per_dir_states.append(states)
        # Per layer: stack directions into PyTorch's (D, B, H) state layout.
        states = [
            tuple(torch.stack(parts, 0) for parts in zip(*layer_dirs))
            for layer_dirs in zip(*per_dir_states)
        ]
        return torch.cat(outs, dim=-1), states
