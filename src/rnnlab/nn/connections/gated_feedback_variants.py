"""Gated feedback with the cell variants: the lockstep loop on the variant step math.

The gated-feedback kernel (nn/kernels/gated_feedback*) runs the plain cells only; a
gated-feedback stack whose layers carry a ``Variant`` (Greff's LSTM variants,
peepholes, layer norm, recurrent dropout, zoneout) or an LSTM projection runs the
gated-feedback variant kernel (nn/kernels/gated_feedback_variants* on CPU,
triton_feedback_variants* on CUDA), and this per-step autograd loop where neither
runs (``RNNLAB_KERNEL=python``, other dtypes, a failed build). The loop is the definition the kernel is tested against
(docs/equations.md, "gated_feedback with the cell variants"). Per step t and layer j,
with every layer's previous state h^i_{t-1}:

- recurrent dropout: ``h~^i = m^i ⊙ h^i_{t-1}`` with one mask per layer and sequence
  (fixed over the steps, training only); every recurrent product reads ``h~``: the
  reset gates' ``v^{i->j} · h~*``, the feedback products ``U^{i->j} h~^i`` and the
  own-layer gate products ``U_k h~^j``;
- the recurrent term of layer j, without bias, is the own-layer gate products with the
  candidate block replaced by the gated sum ``Σ_i g^{i->j} U^{i->j} h~^i``; it and
  ``W u^j_t`` go through ``variant_cells.products_step`` (layer norm per gate block of
  each, then the biases, then the variant's gate math: peepholes, Greff variants,
  LN(c_t), the projection ``W_hr``);
- zoneout on the new (h, c) of each layer (keep masks in training, expectation in
  eval); the zoned h^j_t is what layer j+1 reads (after dropout D) and what is fed
  back at t+1; padded steps keep the whole state, as for every connection.

Masks come from torch's global generator (``variant_masks.draw_masks`` per layer,
bottom up: that layer's recurrent-dropout mask, then its zoneout keep masks for all
steps; then the between-layer dropout masks of ``_FeedbackDirection.drop_masks``), so a
seeded run reproduces them; eval draws nothing.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from rnnlab.nn.cells import CANDIDATE_BLOCK
from rnnlab.nn.masks import step_mask_or_none
from rnnlab.nn.variant_cells import products_step, zoneout
from rnnlab.nn.variant_masks import draw_masks


def _layer_params(direction: nn.Module) -> list[dict]:
    """Per layer: weights, extra variant parameters, W_hr, the feedback matrix (H, L*S)
    and the own-layer gate rows of weight_hh without the candidate block."""
    h, k = direction.hidden, CANDIDATE_BLOCK[direction.cell]
    params = []
    for j, layer in enumerate(direction.layers):
        w_ih, w_hh, b_ih, b_hh = layer.weights(0)
        params.append(
            {
                "w_ih": w_ih,
                "biases": (b_ih, b_hh),
                "own": torch.cat([w_hh[: k * h], w_hh[(k + 1) * h :]]),
                "feedback": direction._feedback_matrix(j),
                "extra": layer.variant_params[0] if layer.variant_params is not None else None,
                "w_hr": layer.projection(0) if layer.proj_size else None,
            }
        )
    return params


def _recurrent_term(own: torch.Tensor, cand: torch.Tensor, k: int, h: int) -> torch.Tensor:
    """(B, G*H) in gate order: the own-layer gate products with ``cand`` at block k."""
    return torch.cat([own[:, : k * h], cand, own[:, k * h :]], dim=1)


def feedback_variant_direction(
    direction: nn.Module,
    x: torch.Tensor,
    lengths: torch.Tensor,
    dropout: nn.Module,
    drop_masks: torch.Tensor | None = None,
) -> tuple[torch.Tensor, list]:
    """One direction of ``_FeedbackDirection`` with variants: x (B, T, I) -> out (B, T, S),
    the per-layer final states ((h,) or (h, c); h of width S = proj_size or H)."""
    cell, acts, variant = direction.cell, direction.acts, direction.variant
    batch, steps = x.shape[:2]
    h, s, num_layers = direction.hidden, direction.state_size, len(direction.layers)
    k, training = CANDIDATE_BLOCK[cell], direction.training
    params = _layer_params(direction)
    gate_h = torch.cat([g.weight for g in direction.gate_h])  # (L*L, L*S): every v^{i->j}
    h0 = x.new_zeros(batch, s)
    states = [(h0, x.new_zeros(batch, h)) if cell == "lstm" else (h0,)] * num_layers
    masks = [draw_masks(cell, variant, h0, h, steps, training) for _ in range(num_layers)]
    if drop_masks is None:
        drop_masks = direction.drop_masks(x, dropout)
    # layer 0's input products for every step in one matmul each; biases added per step
    gx0 = F.linear(x, params[0]["w_ih"]).unbind(1)
    ru0 = direction.gate_u[0](x).unbind(1)
    valid = step_mask_or_none(lengths, steps, x.device)
    outs = []
    for t in range(steps):
        h_in = [st[0] * m[0] if m[0].numel() else st[0] for st, m in zip(states, masks)]
        h_all = torch.cat(h_in, dim=1)  # h~*_{t-1} (B, L*S)
        reset_h = F.linear(h_all, gate_h)  # (B, L*L): v^{i->j} . h~*_{t-1}
        new_states, u = [], None
        for j, p in enumerate(params):
            gx = gx0[t] if j == 0 else F.linear(u, p["w_ih"])
            ru = ru0[t] if j == 0 else direction.gate_u[j](u)
            g = torch.sigmoid(ru + reset_h[:, j * num_layers : (j + 1) * num_layers])
            gated = (h_all.view(batch, num_layers, s) * g.unsqueeze(-1)).flatten(1)
            cand = F.linear(gated, p["feedback"])  # Σ_i g^{i->j} U^{i->j} h~^i, no bias
            gh = _recurrent_term(F.linear(h_in[j], p["own"]), cand, k, h)
            new = products_step(
                cell, acts, variant, gx, gh, states[j], p["biases"], p["extra"], p["w_hr"]
            )
            if variant.zoneout > 0:
                keeps = [m[t] for m in masks[j][1:] if m.numel()] if training else None
                new = zoneout(new, states[j], variant.zoneout, keeps)
            if valid is not None:
                new = tuple(torch.where(valid[t], n, o) for n, o in zip(new, states[j]))
            new_states.append(new)
            u = new[0] * drop_masks[j, t] if drop_masks.numel() and j < num_layers - 1 else new[0]
        states = new_states
        out = states[-1][0]
        outs.append(out if valid is None else out * valid[t])
    return torch.stack(outs, dim=1), states
