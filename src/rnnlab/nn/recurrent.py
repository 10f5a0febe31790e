"""A recurrent layer: one cell run over a padded, batch-first batch with lengths.

Parameters live in a one-layer ``nn.LSTM/GRU/RNN`` so that a state dict loads into
PyTorch's own modules and so the fused kernel (oneDNN/cuDNN) can run them whenever the
activations are the ones it implements. Any other activation runs the project's own
kernel (nn/kernels: a C++ time loop with a hand-written backward, or its portable
torch twin), which computes the same numbers on the same weights. Both paths honour lengths:
padded steps never change outputs at valid steps or the final state, and outputs at
padded steps are zero (as ``pad_packed_sequence`` leaves them).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnlab.nn.cells import (
    CellActivations,
    State,
    check_cell,
    init_recurrent_weights,
    initial_state,
)
from rnnlab.nn.kernels import recurrence

_TORCH_MODULES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def full_lengths(x: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0],), x.shape[1], dtype=torch.long)


def step_mask(lengths: torch.Tensor, steps: int, device: torch.device) -> torch.Tensor:
    """(T, B, 1) boolean mask, True at valid steps."""
    t = torch.arange(steps, device=device).unsqueeze(1)
    return (t < lengths.to(device).unsqueeze(0)).unsqueeze(-1)


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of a batch-first tensor within its own length.

    Padding stays where it is, so a reversed-then-run-forward pass is the backward
    direction of a bidirectional layer. Applying it twice is the identity.
    """
    batch, steps = x.shape[:2]
    t = torch.arange(steps, device=x.device).unsqueeze(0).expand(batch, steps)
    lens = lengths.to(x.device).unsqueeze(1)
    idx = torch.where(t < lens, lens - 1 - t, t)
    idx = idx.view(batch, steps, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, idx)


def run_direction(
    cell: str,
    acts: CellActivations,
    x: torch.Tensor,
    lengths: torch.Tensor,
    weights: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    state: State | None = None,
) -> tuple[torch.Tensor, State]:
    """Run one direction with the project's kernel. x: (B, T, I) -> (B, T, H), state.

    The input projection of every step is one matrix product here (autograd's matmul
    backward then gives dW_ih and dX as single products too); the kernel runs the loop
    and adds both biases in its elementwise pass.
    """
    w_ih, w_hh, b_ih, b_hh = weights
    if state is None:
        state = initial_state(cell, x.shape[0], w_hh.shape[1], x)
    gx = torch.matmul(x, w_ih.t())
    names = (acts.activation, acts.cell_activation or acts.activation, acts.gate_activation)
    c0 = state[1] if cell == "lstm" else None
    return recurrence(cell, names, gx, w_hh, b_hh, state[0], c0, lengths, b_ih)


class RecurrentLayer(nn.Module):
    """One recurrent layer, uni- or bidirectional, batch-first.

    ``forward(x, lengths, state)``: x (B, T, I), lengths (B,) or None (all full), state a
    tuple of (D, B, H) tensors or None. Returns outputs (B, T, D*H) and the final state as
    a tuple of (D, B, H) tensors (``(h,)`` or ``(h, c)``), like PyTorch's modules.

    ``fused``: ``"auto"`` uses PyTorch's fused kernel when it computes this cell exactly;
    ``False`` forces the project's kernel (used by parity tests); ``True`` demands the
    fused kernel and refuses activations it cannot run.
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        *,
        bidirectional: bool = False,
        activations: CellActivations | None = None,
        init: str = "default",
        forget_bias: float | None = None,
        fused: bool | str = "auto",
    ) -> None:
        super().__init__()
        self.cell = check_cell(cell)
        self.acts = activations or CellActivations()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(
                f"input_size={input_size}, hidden_size={hidden_size}: both must be >= 1"
            )
        if fused not in ("auto", True, False):
            raise ValueError(f"fused={fused!r}; valid: auto, true, false")
        if fused is True and not self.acts.is_fused_default(cell):
            raise ValueError(
                f"fused=true but PyTorch's fused {cell} cannot run activation="
                f"{self.acts.activation!r}, gate_activation={self.acts.gate_activation!r}; "
                "use fused=auto"
            )
        self.fused = fused
        self.input_size, self.hidden_size = input_size, hidden_size
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        kwargs = {"batch_first": True, "bidirectional": bidirectional}
        if cell == "rnn":
            kwargs["nonlinearity"] = "relu" if self.acts.activation == "relu" else "tanh"
        self.rnn = _TORCH_MODULES[cell](input_size, hidden_size, **kwargs)
        for d in range(self.num_directions):
            init_recurrent_weights(*self.weights(d), cell, init, forget_bias)

    @property
    def output_size(self) -> int:
        return self.num_directions * self.hidden_size

    @property
    def uses_fused(self) -> bool:
        return self.fused is not False and self.acts.is_fused_default(self.cell)

    def weights(self, direction: int) -> tuple[torch.Tensor, ...]:
        sfx = "_l0_reverse" if direction else "_l0"
        r = self.rnn
        return tuple(
            getattr(r, f"{n}{sfx}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        )

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor | None = None, state: State | None = None
    ) -> tuple[torch.Tensor, State]:
        if lengths is None:
            lengths = full_lengths(x)
        if self.uses_fused:
            return self._forward_fused(x, lengths, state)
        outs, finals = [], []
        for d in range(self.num_directions):
            s = None if state is None else tuple(t[d] for t in state)
            xd = reverse_padded(x, lengths) if d else x
            out, final = run_direction(self.cell, self.acts, xd, lengths, self.weights(d), s)
            outs.append(reverse_padded(out, lengths) if d else out)
            finals.append(final)
        out = torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0]
        return out, tuple(torch.stack(parts, 0) for parts in zip(*finals))

    def _forward_fused(
        self, x: torch.Tensor, lengths: torch.Tensor, state: State | None
    ) -> tuple[torch.Tensor, State]:
        hx = None
        if state is not None:
            hx = state if self.cell == "lstm" else state[0]
        if bool((lengths >= x.shape[1]).all()):
            # Nothing padded: skip packing, which would force PyTorch's slower per-step
            # path (oneDNN's fused RNN only runs on unpacked input on CPU).
            out, final = self.rnn(x, hx)
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, final = self.rnn(packed, hx)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return out, (final if isinstance(final, tuple) else (final,))
