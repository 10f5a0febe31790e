"""Recurrent cells (Elman, LSTM, GRU) with pluggable activations (docs/equations.md).

The math is split the way a fast recurrence needs it: ``W x_t + b_ih`` for every step is
one matrix product computed before the loop (``gx``), and each step only adds the
recurrent product ``U h_{t-1} + b_hh`` (``gh``) and applies the elementwise gate math.
Weights keep PyTorch's layout and gate order (LSTM: i, f, g, o; GRU: r, z, n), so they
load into ``nn.LSTM/GRU/RNN`` unchanged.

``candidate_rec`` lets the gated-feedback connection replace the recurrent term of the
candidate (Chung et al. 2015) while gates keep their own-layer recurrence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from rnnlab.nn.activations import Activation, get_activation, get_gate_activation

CELLS = ("rnn", "lstm", "gru")
# Gate blocks of weight_ih / weight_hh rows, in PyTorch's order (LSTM i, f, g, o; GRU r, z, n).
NUM_GATES = {"rnn": 1, "lstm": 4, "gru": 3}
# Index of the candidate's block (Elman: the whole pre-activation, LSTM g, GRU n): the
# recurrent term the gated-feedback connection replaces.
CANDIDATE_BLOCK = {"rnn": 0, "lstm": 2, "gru": 2}
INITS = ("default", "orthogonal", "identity")
State = tuple[torch.Tensor, ...]


def check_cell(cell: str, *, key: str = "cell") -> str:
    if cell not in NUM_GATES:
        raise ValueError(f"{key}={cell!r} is not a known cell; valid: {', '.join(CELLS)}")
    return cell


@dataclass(frozen=True)
class CellActivations:
    """The nonlinearities of one cell, resolved from their config names."""

    activation: str = "tanh"
    gate_activation: str = "sigmoid"
    cell_activation: str | None = None  # LSTM only: phi_c, defaults to ``activation``

    def __post_init__(self) -> None:
        get_activation(self.activation, key="activation")
        get_gate_activation(self.gate_activation, key="gate_activation")
        if self.cell_activation is not None:
            get_activation(self.cell_activation, key="cell_activation")

    @property
    def phi(self) -> Activation:
        return get_activation(self.activation)

    @property
    def phi_c(self) -> Activation:
        return get_activation(self.cell_activation or self.activation)

    @property
    def sigma(self) -> Activation:
        return get_gate_activation(self.gate_activation)

    @property
    def kernel_names(self) -> tuple[str, str, str]:
        """(phi, phi_c, sigma) names, as the kernels take them (phi_c resolved)."""
        return (self.activation, self.cell_activation or self.activation, self.gate_activation)

    def describe(self, cell: str) -> str:
        """The slots ``cell`` uses, for a repr: Elman has no gates, only LSTM has phi_c."""
        parts = [f"activation={self.activation}"]
        if cell != "rnn":
            parts.append(f"gate_activation={self.gate_activation}")
        if cell == "lstm":
            parts.append(f"cell_activation={self.kernel_names[1]}")
        return ", ".join(parts)

    def is_fused_default(self, cell: str) -> bool:
        """True when PyTorch's fused kernels compute exactly this cell."""
        if cell == "rnn":
            return self.activation in ("tanh", "relu")
        c_act = self.cell_activation or self.activation
        return self.activation == "tanh" and c_act == "tanh" and self.gate_activation == "sigmoid"


def initial_state(cell: str, batch: int, hidden: int, like: torch.Tensor) -> State:
    h = like.new_zeros(batch, hidden)
    return (h, h.clone()) if cell == "lstm" else (h,)


def cell_step(
    cell: str,
    acts: CellActivations,
    gx: torch.Tensor,
    gh: torch.Tensor,
    state: State,
    candidate_rec: torch.Tensor | None = None,
) -> State:
    """One step. ``gx = W x_t + b_ih`` and ``gh = U h_{t-1} + b_hh``, both (B, G*H)."""
    if cell == "rnn":
        rec = gh if candidate_rec is None else candidate_rec
        return (acts.phi(gx + rec),)
    if cell == "lstm":
        c = state[1]
        i, f, g, o = (gx + gh).chunk(4, dim=1)
        if candidate_rec is not None:
            g = gx.chunk(4, dim=1)[2] + candidate_rec
        sig = acts.sigma
        c = sig(f) * c + sig(i) * acts.phi(g)
        return (sig(o) * acts.phi_c(c), c)
    if cell == "gru":
        h = state[0]
        xr, xz, xn = gx.chunk(3, dim=1)
        hr, hz, hn = gh.chunk(3, dim=1)
        if candidate_rec is not None:
            hn = candidate_rec
        sig = acts.sigma
        r, z = sig(xr + hr), sig(xz + hz)
        n = acts.phi(xn + r * hn)
        return ((1.0 - z) * n + z * h,)
    raise ValueError(f"cell={cell!r} is not a known cell; valid: {', '.join(CELLS)}")


def init_recurrent_weights(
    weight_ih: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_ih: torch.Tensor,
    bias_hh: torch.Tensor,
    cell: str,
    init: str = "default",
    forget_bias: float | None = None,
) -> None:
    """Initialise one direction of one layer in place.

    ``default`` is PyTorch's U(-1/sqrt(H), 1/sqrt(H)); ``orthogonal`` draws each gate's
    recurrent block orthogonal and the input weights Xavier-uniform; ``identity`` is the
    IRNN of Le et al. (2015): U = I, b = 0 (meant for relu Elman networks).
    ``forget_bias`` (LSTM) sets the forget-gate bias (Jozefowicz et al. 2015 use 1).
    """
    hidden = weight_hh.shape[1]
    gates = weight_hh.shape[0] // hidden
    with torch.no_grad():
        if init == "default":
            bound = 1.0 / math.sqrt(hidden)
            for w in (weight_ih, weight_hh, bias_ih, bias_hh):
                w.uniform_(-bound, bound)
        elif init in ("orthogonal", "identity"):
            for k in range(gates):
                nn.init.xavier_uniform_(weight_ih[k * hidden : (k + 1) * hidden])
                if init == "orthogonal":
                    nn.init.orthogonal_(weight_hh[k * hidden : (k + 1) * hidden])
                else:
                    weight_hh[k * hidden : (k + 1) * hidden].copy_(torch.eye(hidden))
            bias_ih.zero_()
            bias_hh.zero_()
        else:
            raise ValueError(
                f"init={init!r} is not a known initialisation; valid: {', '.join(INITS)}"
            )
        if forget_bias is not None and cell == "lstm":
            # The two biases add up: put the whole value in bias_ih, none in bias_hh.
            bias_ih[hidden : 2 * hidden].fill_(forget_bias)
            bias_hh[hidden : 2 * hidden].zero_()


class RecurrentCell(nn.Module):
    """A single-step cell module like ``nn.LSTMCell``, for any activation.

    ``forward(x, state)`` takes x of shape (B, I) and the previous state (a tuple:
    ``(h,)`` or ``(h, c)`` for LSTM; zeros when None) and returns the new state tuple.
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        activations: CellActivations | None = None,
        init: str = "default",
        forget_bias: float | None = None,
    ) -> None:
        super().__init__()
        self.cell = check_cell(cell)
        self.acts = activations or CellActivations()
        self.input_size, self.hidden_size = input_size, hidden_size
        g = NUM_GATES[cell] * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(g, input_size))
        self.weight_hh = nn.Parameter(torch.empty(g, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(g))
        self.bias_hh = nn.Parameter(torch.empty(g))
        init_recurrent_weights(
            self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, cell, init, forget_bias
        )

    def forward(self, x: torch.Tensor, state: State | None = None) -> State:
        if state is None:
            state = initial_state(self.cell, x.shape[0], self.hidden_size, x)
        gx = nn.functional.linear(x, self.weight_ih, self.bias_ih)
        gh = nn.functional.linear(state[0], self.weight_hh, self.bias_hh)
        return cell_step(self.cell, self.acts, gx, gh, state)
