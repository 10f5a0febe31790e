"""Gated-feedback recurrence (Chung et al. 2015): the layers step in lockstep.

With h*_{t-1} = concat(h^1_{t-1}, ..., h^L_{t-1}) and scalar global reset gates
g^{i->j}_t = sigmoid(w^{i->j} . u^j_t + v^{i->j} . h*_{t-1}), the recurrent term of
layer j's candidate is sum_i g^{i->j}_t U^{i->j} h^i_{t-1} (the whole recurrent input
for Elman, the g/n candidate for LSTM/GRU; gates keep their own-layer recurrence).
U^{j->j} is the layer's own candidate block of weight_hh, so the layers' weights keep
PyTorch's layout. This is the one connection that lives inside the recurrence, so it
never runs nn.*: it runs the project's gated-feedback kernel (nn/kernels/gated_feedback:
one matmul per layer and step, a hand-written backward with batched weight gradients,
C++ on CPU or torch ops elsewhere). ``_autograd_oracle`` keeps the plain autograd
loop it replaced: the test oracle (and benchmark baseline), never a production path.
A stack with cell variants (layer norm, recurrent dropout, zoneout, peepholes, Greff's
LSTM variants) or an LSTM projection (fed-back states of width proj_size) runs the
gated-feedback variant kernel (nn/kernels/gated_feedback_variants*: the same lockstep
algorithm with the variant kernel's row math, C++ on CPU, Triton on CUDA:
triton_feedback_variants*) where it can, else the variant loop of connections/gated_feedback_variants.py: the per-step autograd loop
built on the variant step math of nn/variant_cells.py, which defines it.
The full equations are in docs/equations.md.

Dropout between layers: the fast path samples every step's mask up front (inverted
dropout, as nn.Dropout) and hands them to the kernel, so a seeded run draws a
different random stream than the old per-step loop did (same distribution).

Bidirectional: two independent gated-feedback stacks, one per direction, whose
per-layer outputs are concatenated (a backward stack cannot step in lockstep with a
forward one).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from rnnlab.nn.cells import CANDIDATE_BLOCK, cell_step, initial_state
from rnnlab.nn.connections.base import LayerSpec, RecurrentStack
from rnnlab.nn.connections.gated_feedback_variants import feedback_variant_direction
from rnnlab.nn.kernels import describe_backend, feedback_recurrence
from rnnlab.nn.kernels.gated_feedback_variants import (
    describe_feedback_path,
    feedback_kernel_runs,
    feedback_variant_kernel_direction,
)
from rnnlab.nn.masks import full_lengths, reverse_padded, step_mask_or_none

FEEDBACK_CELLS = tuple(CANDIDATE_BLOCK)


def check_feedback_cell(cell: str, key: str = "cell") -> None:
    """Gated feedback gates a recurrent *matrix* per layer pair; IndRNN has only a vector."""
    if cell not in FEEDBACK_CELLS:
        raise ValueError(
            f"{key}={cell!r} cannot run with connection.name=gated_feedback (it gates the "
            f"candidate's recurrent matrix U^(i->j), which an elementwise cell does not "
            f"have); valid cells: {', '.join(FEEDBACK_CELLS)}"
        )


class _FeedbackDirection(nn.Module):
    """One direction: L unidirectional layers plus the cross-layer feedback weights."""

    def __init__(self, input_size: int, num_layers: int, spec: LayerSpec):
        super().__init__()
        check_feedback_cell(spec.cell)
        h = spec.hidden_size
        # the width of the fed-back states h^i: P with an LSTM projection, else H
        self.state_size = s = spec.proj_size or h
        self.variant, self.proj_size = spec.variant, spec.proj_size
        uni = spec.with_(bidirectional=False, fused=False)
        widths = [input_size] + [s] * (num_layers - 1)
        self.layers = nn.ModuleList(uni.build(w) for w in widths)
        for layer in self.layers:
            layer.run_by = "gated_feedback " + ("kernel" if self.runs_kernel else "variant path")
        self.cell, self.acts, self.hidden = spec.cell, spec.activations, h
        # U^{i->j} for i != j, stored per target layer j as one (H, (L-1)*S) block.
        bound = 1.0 / math.sqrt(h)
        self.cross = nn.ParameterList(
            nn.Parameter(torch.empty(h, (num_layers - 1) * s).uniform_(-bound, bound))
            for _ in range(num_layers)
        )
        self.gate_u = nn.ModuleList(nn.Linear(w, num_layers, bias=False) for w in widths)
        self.gate_h = nn.ModuleList(
            nn.Linear(num_layers * s, num_layers, bias=False) for _ in widths
        )

    @property
    def runs_kernel(self) -> bool:
        """Plain cells without a projection run the plain gated-feedback kernel; any cell
        variant or ``proj_size`` runs the gated-feedback variant kernel
        (kernels/gated_feedback_variants*), or the variant loop where that cannot run."""
        return self.variant.is_plain and not self.proj_size

    @property
    def path_name(self) -> str:
        if self.runs_kernel:
            return "kernel"
        return describe_feedback_path(self.layers[0].weights(0)[0])

    def extra_repr(self) -> str:
        backend = describe_backend(self.layers[0].weights(0)[0])
        path = f"path=gated_feedback kernel, backend={backend}"
        if not self.runs_kernel:
            options = [f"proj_size={self.proj_size}"] if self.proj_size else []
            options += [self.variant.describe()] if not self.variant.is_plain else []
            path = ", ".join(options) + f", path=gated_feedback {self.path_name}"
        return (
            f"cell={self.cell}, num_layers={len(self.layers)}, hidden_size={self.hidden}, "
            f"{self.acts.describe(self.cell)}, {path}"
        )

    def _feedback_matrix(self, j: int) -> torch.Tensor:
        """(H, L*S): U^{i->j} blocks in layer order, with the layer's own block in place j
        (S: the state width, H or proj_size)."""
        h, num_layers = self.hidden, len(self.layers)
        k = CANDIDATE_BLOCK[self.cell]
        own = self.layers[j].weights(0)[1][k * h : (k + 1) * h]
        blocks = list(self.cross[j].split(self.state_size, dim=1)) if num_layers > 1 else []
        blocks.insert(j, own)
        return torch.cat(blocks, dim=1)

    def input_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """w0 = [W_ih_0; gate_u_0] (G*H + L, I) and w_in (L-1, G*H + L, S): every layer's
        input weights with its reset-gate input weights, as the kernels read them."""
        num_layers = len(self.layers)
        w_ih = [layer.weights(0)[0] for layer in self.layers]
        w0 = torch.cat([w_ih[0], self.gate_u[0].weight])
        if num_layers == 1:
            return w0, w0.new_empty(0, w0.shape[0], self.state_size)
        return w0, torch.stack(
            [torch.cat([w_ih[j], self.gate_u[j].weight]) for j in range(1, num_layers)]
        )

    def biases(self) -> tuple[torch.Tensor, torch.Tensor]:
        """b_ih, b_hh stacked per layer (L, G*H)."""
        weights = [layer.weights(0) for layer in self.layers]
        return torch.stack([w[2] for w in weights]), torch.stack([w[3] for w in weights])

    def recurrent_weights(self) -> torch.Tensor:
        """w_rec (L, N, S) of gated_feedback.cpp: per SOURCE layer i, every product that
        reads h^i_{t-1}: its own gate rows of W_hh (without the candidate block), U^{i->j}
        for every target j, and its columns of every reset gate's gate_h_j."""
        h, s = self.hidden, self.state_size
        kc = CANDIDATE_BLOCK[self.cell]
        feedback_of = [self._feedback_matrix(j) for j in range(len(self.layers))]
        rows = []
        for i, layer in enumerate(self.layers):
            w_hh = layer.weights(0)[1]
            own = [w_hh[: kc * h], w_hh[(kc + 1) * h :]]
            feedback = [f[:, i * s : (i + 1) * s] for f in feedback_of]
            reset = [g.weight[:, i * s : (i + 1) * s] for g in self.gate_h]
            rows.append(torch.cat(own + feedback + reset))
        return torch.stack(rows)

    def kernel_weights(self) -> tuple[torch.Tensor, ...]:
        """The plain kernel's weight layout (gated_feedback.cpp), assembled from the
        parameters: the input weights with b_ih (and zero reset-gate biases) appended.

        Built by differentiable cat/stack, so autograd hands the kernel's gradients back
        to the layers' weights, ``cross``, ``gate_u`` and ``gate_h``.
        """
        num_layers = len(self.layers)
        w0, w_in = self.input_weights()
        b_ih, b_rec = self.biases()
        zeros = w0.new_zeros(num_layers)
        b0 = torch.cat([b_ih[0], zeros])
        if num_layers > 1:
            b_in = torch.stack([torch.cat([b, zeros]) for b in b_ih[1:]])
        else:
            b_in = w0.new_empty(0, w0.shape[0])
        return w0, b0, w_in, b_in, self.recurrent_weights(), b_rec

    def drop_masks(self, x: torch.Tensor, dropout: nn.Module) -> torch.Tensor:
        """(L-1, T, B, S) inverted-dropout masks for every step, or empty without dropout."""
        p = float(getattr(dropout, "p", 0.0))
        num_layers = len(self.layers)
        if not dropout.training or p == 0.0 or num_layers == 1:
            return x.new_empty(0)
        shape = (num_layers - 1, x.shape[1], x.shape[0], self.state_size)
        return x.new_empty(shape).bernoulli_(1.0 - p).div_(1.0 - p)

    def forward(
        self,
        x: torch.Tensor,
        lengths: torch.Tensor,
        dropout: nn.Module,
        drop_masks: torch.Tensor | None = None,
    ):
        """x (B, T, I) -> out (B, T, S), per-layer final states: the kernel for plain
        cells, the variant kernel (else the variant loop) for variants and projections."""
        if not self.runs_kernel and not feedback_kernel_runs(x):
            return feedback_variant_direction(self, x, lengths, dropout, drop_masks)
        if not self.runs_kernel:
            out, h_last, c_last = feedback_variant_kernel_direction(
                self, x, lengths, dropout, drop_masks
            )
        else:
            w0, b0, w_in, b_in, w_rec, b_rec = self.kernel_weights()
            gx0 = F.linear(x.transpose(0, 1), w0, b0)  # (T, B, G*H + L): one matmul
            if drop_masks is None:
                drop_masks = self.drop_masks(x, dropout)
            out, h_last, c_last = feedback_recurrence(
                self.cell, self.acts.kernel_names, gx0, w_in, b_in, w_rec, b_rec, drop_masks,
                lengths,
            )  # fmt: skip
        if self.cell == "lstm":
            states = [(h, c) for h, c in zip(h_last.unbind(0), c_last.unbind(0))]
        else:
            states = [(h,) for h in h_last.unbind(0)]
        return out.transpose(0, 1), states

    def _autograd_oracle(
        self,
        x: torch.Tensor,
        lengths: torch.Tensor,
        dropout: nn.Module,
        drop_masks: torch.Tensor | None = None,
    ):
        """Test oracle: the per-step autograd loop (the definition the kernel must reproduce).

        ``drop_masks`` (L-1, T, B, H), when given, replaces ``dropout`` between layers
        (the kernel's masks), so tests can compare both paths under dropout.
        """
        batch, steps = x.shape[:2]
        h, num_layers = self.hidden, len(self.layers)
        k = CANDIDATE_BLOCK[self.cell]
        weights = [layer.weights(0) for layer in self.layers]
        feedback = [self._feedback_matrix(j) for j in range(num_layers)]
        cand_bias = [w[3][k * h : (k + 1) * h] for w in weights]
        gx0 = F.linear(x, weights[0][0], weights[0][2]).transpose(0, 1)
        xs = x.transpose(0, 1)
        mask = step_mask_or_none(lengths, steps, x.device)
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
                if j == num_layers - 1:
                    u = new[0]
                elif drop_masks is not None:
                    u = new[0] * drop_masks[j, t]
                else:
                    u = dropout(new[0])
            states = new_states
            out = states[-1][0]
            outputs.append(out * mask[t] if mask is not None else out)
        return torch.stack(outputs, dim=1), states


class GatedFeedbackConnection(RecurrentStack):
    name = "gated_feedback"

    def __init__(self, input_size: int, num_layers: int, spec: LayerSpec, dropout: float = 0.0):
        super().__init__(input_size, num_layers, dropout)
        self.directions = nn.ModuleList(
            _FeedbackDirection(input_size, num_layers, spec)
            for _ in range(2 if spec.bidirectional else 1)
        )
        self.output_size = spec.output_size
        self.segments = [(spec.output_size, spec.bidirectional)]
        self.bidirectional = spec.bidirectional

    def options(self) -> dict[str, object]:
        return {"bidirectional": self.bidirectional}

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
