"""Saturated and dead units of one recurrent layer on the gradient-flow probe batch.

A unit passes (almost) no gradient when its nonlinearity sits at a flat part:

* **saturated candidate**: a bounded activation (tanh, softsign, hardtanh in ``(-1, 1)``;
  sigmoid in ``(0, 1)``) within ``eps`` of a bound, ``|phi(a)| > 1 - eps``, where
  ``phi'(a)`` is near 0;
* **saturated gate**: a gate value ``sigma(a) < eps`` or ``> 1 - eps`` (LSTM i, f, o;
  GRU r, z);
* **dead unit**: a unit whose candidate is ``|phi(a)| <= 1e-6`` at every valid step of
  the probe (a relu unit that never fires).

Fractions count valid (unpadded) steps only: ``saturated_frac`` over steps x units
(``None`` for unbounded activations), ``gate_saturated_frac`` over steps x gates x
units (``None`` for the Elman cell), ``dead_frac`` over units.
"""

from __future__ import annotations

import torch

from rnnlab.nn.activations import get_activation, get_gate_activation
from rnnlab.nn.cells import NUM_GATES, recurrent_term
from rnnlab.nn.recurrent import RecurrentLayer

BOUNDED = {"tanh": (-1.0, 1.0), "softsign": (-1.0, 1.0), "hardtanh": (-1.0, 1.0)}
BOUNDED01 = {"sigmoid"}


class LayerStats:
    """Saturation and dead-unit counts of one layer's candidate (and gates) on the probe.

    The replay records each step's input and previous state; the gate pre-activations
    are then computed for many steps in one matrix product (``update``), not step by step.
    """

    # Elements of one (steps, batch, gates * hidden) block: bounds the memory of a long probe.
    BLOCK_ELEMENTS = 1 << 22

    def __init__(self, layer: RecurrentLayer, eps: float) -> None:
        self.layer, self.eps = layer, eps
        acts = layer.acts
        self.act_name = acts.activation
        self.phi = get_activation(acts.activation)
        self.sigma = get_gate_activation(acts.gate_activation)
        self.valid = 0
        self.saturated = 0
        self.gate_valid = 0
        self.gate_saturated = 0
        self.alive = torch.zeros(layer.hidden_size, dtype=torch.bool)

    @torch.no_grad()
    def update(self, x: torch.Tensor, h_prev: torch.Tensor, valid: torch.Tensor) -> None:
        """Count over steps: ``x`` (T, B, I) inputs, ``h_prev`` (T, B, H) the state each
        step starts from, ``valid`` (T, B) which steps are real (not padding)."""
        w_ih, w_hh, b_ih, b_hh = self.layer.step_weights(0)  # IndRNN: u bounded, (H,)
        size = self.layer.hidden_size
        block = max(1, self.BLOCK_ELEMENTS // max(1, x.shape[1] * w_ih.shape[0]))
        saturated = gate_saturated = torch.zeros((), dtype=torch.long)
        alive = torch.zeros(size, dtype=torch.bool, device=x.device)
        cell = self.layer.cell
        n_gates = NUM_GATES[cell] - 1  # gate blocks except the candidate
        padded = not bool(valid.all())

        def count(hit: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return (hit & mask).sum() if padded else hit.sum()

        for start in range(0, x.shape[0], block):
            xs, hs = x[start : start + block], h_prev[start : start + block]
            mask = valid[start : start + block].unsqueeze(-1)  # (t, B, 1)
            gx = torch.matmul(xs, w_ih.T) + b_ih
            gh = recurrent_term(cell, hs, w_hh, b_hh)
            gates: list[torch.Tensor] = []
            if cell in ("rnn", "indrnn"):
                cand = self.phi(gx + gh)
            elif cell == "lstm":
                i, f, g, o = (gx + gh).split(size, dim=-1)
                gates = [self.sigma(i), self.sigma(f), self.sigma(o)]
                cand = self.phi(g)
            else:  # gru: r, z, n
                xr, xz, xn = gx.split(size, dim=-1)
                hr, hz, hn = gh.split(size, dim=-1)
                r, z = self.sigma(xr + hr), self.sigma(xz + hz)
                gates = [r, z]
                cand = self.phi(xn + r * hn)
            if self.act_name in BOUNDED:
                saturated = saturated + count(cand.abs() > 1 - self.eps, mask)
            elif self.act_name in BOUNDED01:
                saturated = saturated + count((cand < self.eps) | (cand > 1 - self.eps), mask)
            for gate in gates:
                gate_saturated = gate_saturated + count(
                    (gate < self.eps) | (gate > 1 - self.eps), mask
                )
            active = cand.abs() > 1e-6
            alive |= (active & mask if padded else active).flatten(0, 1).any(dim=0)
        n_valid = int(valid.sum()) * size
        self.valid += n_valid
        self.saturated += int(saturated)
        self.gate_valid += n_valid * n_gates
        self.gate_saturated += int(gate_saturated)
        self.alive |= alive.cpu()

    def summary(self) -> dict[str, float | None]:
        bounded = self.act_name in BOUNDED or self.act_name in BOUNDED01
        return {
            "saturated_frac": self.saturated / max(self.valid, 1) if bounded else None,
            "gate_saturated_frac": (
                self.gate_saturated / self.gate_valid if self.gate_valid else None
            ),
            "dead_frac": float((~self.alive).float().mean()),
        }
