"""A recurrent layer: one cell run over a padded, batch-first batch with lengths.

Parameters live in a one-layer ``nn.LSTM/GRU/RNN`` so that a state dict loads into
PyTorch's own modules and so the fused module (cuDNN/oneDNN) can run them when the
activations are the ones it implements. Any other activation runs the project's own
kernel (nn/kernels: a C++ time loop with a hand-written backward, or its Triton or
torch-ops twins), which computes the same numbers on the same weights; with the default
activations ``fused=auto`` runs whichever is faster on the device (the C++ kernel on
CPU, cuDNN on CUDA; benchmarks/fused_auto.py). Both paths honour lengths:
padded steps never change outputs at valid steps or the final state, and outputs at
padded steps are zero (as ``pad_packed_sequence`` leaves them). The equations are in
docs/equations.md. The layer's repr names the path that really runs it: the inner
``nn.RNN`` is only the parameter container when the kernel runs (a gelu Elman layer is
not ``nn.RNN(nonlinearity='tanh')``), so it is not printed. An IndRNN layer keeps its
parameters in ``IndRNNParams`` (nn.RNN's names, a vector ``weight_hh``) and always runs
the kernel, with its recurrent vector clamped to ``max_weight`` (nn/indrnn.py). An LSTM
with ``proj_size`` (LSTMP) keeps its parameters in ``nn.LSTM(proj_size=P)`` (so state
dicts load both ways); with the default activations ``fused`` chooses for it as for a
plain layer. A layer with a non-plain ``Variant`` (Greff variants, peepholes, layer
norm, recurrent dropout, zoneout; nn/variants.py), or a projection the fused module
does not run, runs the variant kernel
(nn/kernels/variant_recurrence: C++, hand-written backward) on CPU float32/float64, and
the per-step autograd loop of nn/variant_cells.py otherwise and for layer norm; its
extra parameters live in ``variant_params`` (one per direction).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnlab.nn.cells import (
    ELEMENTWISE_CELLS,
    CellActivations,
    State,
    check_cell,
    init_recurrent_weights,
    initial_state,
)
from rnnlab.nn.indrnn import (
    DEFAULT_MAX_WEIGHT,
    IndRNNParams,
    bounded,
    check_max_weight,
    init_indrnn_weights,
)
from rnnlab.nn.kernels import describe_backend, recurrence
from rnnlab.nn.kernels.backend import kernel_preferred
from rnnlab.nn.kernels.variant_recurrence import (
    describe_path,
    kernel_runs,
    variant_kernel_direction,
)
from rnnlab.nn.masks import full_lengths, is_padded, reverse_padded
from rnnlab.nn.variant_cells import variant_direction
from rnnlab.nn.variants import Variant, VariantParams, check_proj_size, init_projection

_TORCH_MODULES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
FUSED_MODES = ("auto", True, False)


# Inference computes the input products in time chunks of at most this many bytes: a
# larger fresh tensor is above glibc's dynamic mmap threshold (at most 32 MiB), so it is
# mapped anew and page-faulted on every forward (benchmarks/forward_chunked.py).
INFERENCE_CHUNK_BYTES = 16 << 20


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
    and adds both biases in its elementwise pass. Without autograd (evaluation) on CPU,
    a projection larger than ``INFERENCE_CHUNK_BYTES`` runs in time chunks, the kernel
    once per chunk with the state carried over: the same numbers, without mapping one
    big tensor per call.
    """
    w_ih, w_hh, b_ih, b_hh = weights
    if state is None:
        state = initial_state(cell, x.shape[0], w_hh.shape[-1], x)
    batch, steps = x.shape[:2]
    step_bytes = batch * w_ih.shape[0] * x.element_size()
    chunk = max(1, INFERENCE_CHUNK_BYTES // step_bytes)
    if torch.is_grad_enabled() or x.device.type != "cpu" or chunk >= steps:
        gx = torch.matmul(x, w_ih.t())
        c0 = state[1] if cell == "lstm" else None
        return recurrence(cell, acts.kernel_names, gx, w_hh, b_hh, state[0], c0, lengths, b_ih)
    outs = []
    for t0 in range(0, steps, chunk):
        gx = torch.matmul(x[:, t0 : t0 + chunk], w_ih.t())
        part = (lengths - t0).clamp(0, gx.shape[1])  # steps of each sequence in the chunk
        c0 = state[1] if cell == "lstm" else None
        out, state = recurrence(cell, acts.kernel_names, gx, w_hh, b_hh, state[0], c0, part, b_ih)
        outs.append(out)
    return torch.cat(outs, 1), state


class RecurrentLayer(nn.Module):
    """One recurrent layer, uni- or bidirectional, batch-first.

    ``forward(x, lengths, state)``: x (B, T, I), lengths (B,) or None (all full), state a
    tuple of (D, B, H) tensors or None. Returns outputs (B, T, D*H) and the final state as
    a tuple of (D, B, H) tensors (``(h,)`` or ``(h, c)``), like PyTorch's modules.

    ``fused``: ``"auto"`` runs whichever of PyTorch's fused module and the project's
    kernel is faster on the input's device when both compute this layer exactly (the
    kernel on CPU, cuDNN on CUDA: ``kernels.backend.kernel_preferred``, measured by
    benchmarks/fused_auto.py); ``False`` forces the project's kernel (used by parity
    tests); ``True`` demands the fused module and refuses activations it cannot run.
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
        max_weight: float | None = DEFAULT_MAX_WEIGHT,
        proj_size: int = 0,
        variant: Variant | None = None,
    ) -> None:
        super().__init__()
        self.cell = check_cell(cell)
        self.acts = activations or CellActivations()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(
                f"input_size={input_size}, hidden_size={hidden_size}: both must be >= 1"
            )
        if fused not in FUSED_MODES:
            raise ValueError(f"fused={fused!r}; valid: auto, true, false")
        self.variant = variant or Variant()
        if cell != "lstm" and (self.variant.lstm_variant != "vanilla" or self.variant.peephole):
            raise ValueError(
                f"lstm_variant={self.variant.lstm_variant!r}, peephole={self.variant.peephole} "
                f"need cell=lstm (got {cell!r})"
            )
        if fused is True and not self.variant.is_plain:
            raise ValueError(f"fused=true but PyTorch's {cell} has no {self.variant.describe()}")
        if fused is True and not self.acts.is_fused_default(cell):
            raise ValueError(
                f"fused=true but PyTorch's fused {cell} cannot run activation="
                f"{self.acts.activation!r}, gate_activation={self.acts.gate_activation!r}; "
                "use fused=auto"
            )
        self.fused = fused
        self.input_size, self.hidden_size = input_size, hidden_size
        self.proj_size = check_proj_size(proj_size, cell, hidden_size, where="RecurrentLayer")
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        # IndRNN's bound on |u| (None: unbounded); other cells have none.
        self.max_weight = None
        if cell in ELEMENTWISE_CELLS:
            self.max_weight = check_max_weight(max_weight)
            self.rnn = IndRNNParams(input_size, hidden_size, bidirectional)
            for d in range(self.num_directions):
                init_indrnn_weights(*self.weights(d), init, self.max_weight)
        else:
            kwargs = {"batch_first": True, "bidirectional": bidirectional}
            if self.proj_size:
                kwargs["proj_size"] = self.proj_size
            if cell == "rnn":
                kwargs["nonlinearity"] = "relu" if self.acts.activation == "relu" else "tanh"
            self.rnn = _TORCH_MODULES[cell](input_size, hidden_size, **kwargs)
            for d in range(self.num_directions):
                init_recurrent_weights(*self.weights(d), cell, init, forget_bias)
                if self.proj_size:
                    init_projection(self.projection(d), init)
        self.variant_params = None
        if self.variant.peephole or self.variant.layer_norm:
            self.variant_params = nn.ModuleList(
                VariantParams(cell, hidden_size, self.variant) for _ in range(self.num_directions)
            )
        # Set by a connection that runs this layer's weights itself (gated feedback).
        self.run_by: str | None = None

    @property
    def output_size(self) -> int:
        return self.num_directions * (self.proj_size or self.hidden_size)

    @property
    def fusable(self) -> bool:
        """PyTorch's fused module computes this layer exactly (its default activations,
        no variant): ``fused`` may then choose it."""
        return self.variant.is_plain and self.acts.is_fused_default(self.cell)

    def _runs_fused(self, x: torch.Tensor, build: bool) -> bool:
        if self.fused is False or not self.fusable:
            return False
        return self.fused is True or not kernel_preferred(x, build=build)

    @property
    def uses_fused(self) -> bool:
        """True when forward runs PyTorch's fused module: ``fused=true``, or ``auto`` where
        that is the faster path for the weights' device (``kernel_preferred``)."""
        return self._runs_fused(self.weights(0)[0], build=False)

    @property
    def has_variant(self) -> bool:
        """A projection or a non-plain variant: the variant path runs it when not fused."""
        return bool(self.proj_size) or not self.variant.is_plain

    @property
    def uses_variant_path(self) -> bool:
        """A variant or projection layer: the variant kernel, or the variant loop where that
        cannot run (``path()`` says which)."""
        return not self.uses_fused and self.has_variant

    def path(self) -> str:
        """What runs this layer: PyTorch's fused module, or the rnnlab kernel and its backend."""
        if self.run_by is not None:
            return f"{self.run_by} (this layer holds weights only)"
        if self.uses_fused:
            return f"fused nn.{type(self.rnn).__name__}"
        if self.uses_variant_path:
            return describe_path(self.variant, self.weights(0)[0])
        return f"kernel, backend={describe_backend(self.weights(0)[0])}"

    def extra_repr(self) -> str:
        return (
            f"cell={self.cell}, input_size={self.input_size}, hidden_size={self.hidden_size}, "
            f"{self.acts.describe(self.cell)}, bidirectional={self.bidirectional}, "
            + (f"max_weight={self.max_weight}, " if self.cell in ELEMENTWISE_CELLS else "")
            + (f"proj_size={self.proj_size}, " if self.proj_size else "")
            + (f"{self.variant.describe()}, " if not self.variant.is_plain else "")
            + f"path={self.path()}"
        )

    def __repr__(self) -> str:
        # One line: the inner nn.RNN/LSTM/GRU is a parameter container, and its own repr
        # (tanh, no gate activations) would contradict the activations above.
        return f"{self._get_name()}({self.extra_repr()})"

    def weights(self, direction: int) -> tuple[torch.Tensor, ...]:
        sfx = "_l0_reverse" if direction else "_l0"
        r = self.rnn
        return tuple(
            getattr(r, f"{n}{sfx}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        )

    def projection(self, direction: int) -> torch.Tensor:
        """W_hr (P, H) of an LSTMP layer (``proj_size > 0``)."""
        return getattr(self.rnn, "weight_hr_l0_reverse" if direction else "weight_hr_l0")

    def step_weights(self, direction: int) -> tuple[torch.Tensor, ...]:
        """The weights the step uses: ``weights(direction)``, IndRNN's vector bounded."""
        w = self.weights(direction)
        if self.cell in ELEMENTWISE_CELLS:
            return (w[0], bounded(w[1], self.max_weight).contiguous(), w[2], w[3])
        return w

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor | None = None, state: State | None = None
    ) -> tuple[torch.Tensor, State]:
        if lengths is None:
            lengths = full_lengths(x)
        fused = self._runs_fused(x, build=True)
        if fused:
            return self._forward_fused(x, lengths, state)
        outs, finals = [], []
        for d in range(self.num_directions):
            s = None if state is None else tuple(t[d] for t in state)
            xd = reverse_padded(x, lengths) if d else x
            if self.has_variant:
                w_hr = self.projection(d) if self.proj_size else None
                extra = self.variant_params[d] if self.variant_params is not None else None
                run = (
                    variant_kernel_direction if kernel_runs(self.variant, xd) else variant_direction
                )
                out, final = run(
                    self.cell, self.acts, self.variant, xd, lengths, self.step_weights(d),
                    extra, w_hr, s, self.training,
                )  # fmt: skip
            else:
                out, final = run_direction(
                    self.cell, self.acts, xd, lengths, self.step_weights(d), s
                )
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
        if not is_padded(lengths, x.shape[1]):
            # Nothing padded: skip packing, which would force PyTorch's slower per-step
            # path (oneDNN's fused RNN only runs on unpacked input on CPU).
            out, final = self.rnn(x, hx)
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, final = self.rnn(packed, hx)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return out, (final if isinstance(final, tuple) else (final,))
