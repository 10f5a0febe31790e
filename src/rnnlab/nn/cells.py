"""Recurrent cells (Elman, LSTM, GRU, IndRNN) with pluggable activations (docs/equations.md).

The math is split the way a fast recurrence needs it: ``W x_t + b_ih`` for every step is
one matrix product computed before the loop (``gx``), and each step only adds the
recurrent product ``U h_{t-1} + b_hh`` (``gh``) and applies the elementwise gate math.
Weights keep PyTorch's layout and gate order (LSTM: i, f, g, o; GRU: r, z, n), so they
load into ``nn.LSTM/GRU/RNN`` unchanged.

``candidate_rec`` lets the gated-feedback connection replace the recurrent term of the
candidate (Chung et al. 2015) while gates keep their own-layer recurrence.

IndRNN (Li et al. 2018) is the Elman step with a *vector* recurrent weight ``u``:
``gh = u * h_{t-1} + b_hh`` (``recurrent_term``), bounded in nn/indrnn.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from rnnlab.nn.activations import Activation, get_activation, get_gate_activation
from rnnlab.nn.indrnn import bounded, check_max_weight, init_indrnn_weights

CELLS = ("rnn", "lstm", "gru", "indrnn")
# Gate blocks of weight_ih / weight_hh rows, in PyTorch's order (LSTM i, f, g, o; GRU r, z, n).
NUM_GATES = {"rnn": 1, "lstm": 4, "gru": 3, "indrnn": 1}
# Index of the candidate's block (Elman: the whole pre-activation, LSTM g, GRU n): the
# recurrent term the gated-feedback connection replaces (IndRNN has no matrix to gate).
CANDIDATE_BLOCK = {"rnn": 0, "lstm": 2, "gru": 2}
# Cells whose recurrent weight is a vector (h_{t-1} enters elementwise, no matmul).
ELEMENTWISE_CELLS = ("indrnn",)
INITS = ("default", "orthogonal", "identity", "indrnn")
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
        """The slots ``cell`` uses, for a repr: Elman/IndRNN have no gates, only LSTM phi_c."""
        parts = [f"activation={self.activation}"]
        if cell not in ("rnn", "indrnn"):
            parts.append(f"gate_activation={self.gate_activation}")
        if cell == "lstm":
            parts.append(f"cell_activation={self.kernel_names[1]}")
        return ", ".join(parts)

    def is_fused_default(self, cell: str) -> bool:
        """True when PyTorch's fused kernels compute exactly this cell."""
        if cell in ELEMENTWISE_CELLS:
            return False  # PyTorch has no IndRNN
        if cell == "rnn":
            return self.activation in ("tanh", "relu")
        c_act = self.cell_activation or self.activation
        return self.activation == "tanh" and c_act == "tanh" and self.gate_activation == "sigmoid"


def initial_state(cell: str, batch: int, hidden: int, like: torch.Tensor) -> State:
    h = like.new_zeros(batch, hidden)
    return (h, h.clone()) if cell == "lstm" else (h,)


def recurrent_term(
    cell: str, h: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor
) -> torch.Tensor:
    """``gh``: ``U h_{t-1} + b_hh`` (B, G*H), or ``u * h_{t-1} + b_hh`` for IndRNN."""
    if cell in ELEMENTWISE_CELLS:
        return torch.addcmul(b_hh, h, w_hh)
    return nn.functional.linear(h, w_hh, b_hh)


def cell_step(
    cell: str,
    acts: CellActivations,
    gx: torch.Tensor,
    gh: torch.Tensor,
    state: State,
    candidate_rec: torch.Tensor | None = None,
) -> State:
    """One step. ``gx = W x_t + b_ih`` and ``gh = U h_{t-1} + b_hh``, both (B, G*H)."""
    if cell in ("rnn", "indrnn"):
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
    gates = NUM_GATES[cell]
    hidden = weight_hh.shape[0] // gates  # weight_hh is (G*H, H), or (4H, P) with proj_size
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
                    block = weight_hh[k * hidden : (k + 1) * hidden]
                    block.copy_(torch.eye(hidden, block.shape[1]))
            bias_ih.zero_()
            bias_hh.zero_()
        elif init == "indrnn":
            raise ValueError(
                f"init='indrnn' is IndRNN's init (Li et al. 2018) and needs cell=indrnn, not "
                f"cell={cell!r}; valid for {cell}: {', '.join(i for i in INITS if i != 'indrnn')}"
            )
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
    IndRNN's ``weight_hh`` is a vector (H,), clamped to ``max_weight`` (nn/indrnn.py).
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        activations: CellActivations | None = None,
        init: str = "default",
        forget_bias: float | None = None,
        max_weight: float | None = None,
    ) -> None:
        super().__init__()
        self.cell = check_cell(cell)
        self.acts = activations or CellActivations()
        self.input_size, self.hidden_size = input_size, hidden_size
        g = NUM_GATES[cell] * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(g, input_size))
        elementwise = cell in ELEMENTWISE_CELLS
        self.weight_hh = nn.Parameter(
            torch.empty(g) if elementwise else torch.empty(g, hidden_size)
        )
        self.bias_ih = nn.Parameter(torch.empty(g))
        self.bias_hh = nn.Parameter(torch.empty(g))
        weights = (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        if elementwise:
            self.max_weight = check_max_weight(max_weight)
            init_indrnn_weights(*weights, init, self.max_weight)
        else:
            self.max_weight = None
            init_recurrent_weights(*weights, cell, init, forget_bias)

    def forward(self, x: torch.Tensor, state: State | None = None) -> State:
        if state is None:
            state = initial_state(self.cell, x.shape[0], self.hidden_size, x)
        gx = nn.functional.linear(x, self.weight_ih, self.bias_ih)
        w_hh = self.weight_hh
        if self.cell in ELEMENTWISE_CELLS:
            w_hh = bounded(w_hh, self.max_weight)
        gh = recurrent_term(self.cell, state[0], w_hh, self.bias_hh)
        return cell_step(self.cell, self.acts, gx, gh, state)
