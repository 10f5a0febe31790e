"""One gradient-flow probe: ``‖∂L/∂h_t‖`` of every time step of every layer.

For a probe batch of ``B`` sequences with lengths ``n_b`` and loss ``L``, the profile of
a layer with states ``h_t`` (``B x H``) is the mean, over the sequences still running at
step ``t``, of the per-sequence L2 norm::

    dh_norm[t] = sum_b [t < n_b] ‖∂L/∂h_{b,t}‖ / max(1, sum_b [t < n_b])

``∂L/∂h_t`` is the *total* derivative, through the output and through the recurrence.
PyTorch's fused kernels do not expose ``h_t`` inside the recurrence, so for the probe
every unidirectional recurrent layer runs as a step-by-step replay (same weights, same
cell equations, :func:`rnnlab.nn.cells.cell_step`) and the gradient is taken at each
step's state (IndRNN's recurrent term is elementwise). Bidirectional layers, layers
with a cell variant or projection (``replayable``) and the gated-feedback stack (whose
layers step inside one loop) are not replayed; every model also gets ``input.dx_norm``, the same
profile of ``∂L/∂x_t`` at the stack input.

With ``dtype=torch.float64`` the probe runs on a float64 copy of the network (and of
the batch's float tensors and the task's own float buffers, e.g. class weights): a
tanh Elman RNN's ‖∂L/∂h_t‖ falls by orders of magnitude per step and underflows to 0
in float32 (below 1.4e-45) within a few hundred steps; float64 reaches 1e-308. The
norms are reduced in float64 either way.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import lightning as L
import torch
from torch.nn import functional as F

from rnnlab.callbacks.gradient_saturation import LayerStats
from rnnlab.nn.cells import cell_step, initial_state, recurrent_term
from rnnlab.nn.masks import valid_steps
from rnnlab.nn.recurrent import RecurrentLayer


def layer_name(path: str) -> str:
    """``layers.0`` -> ``layer_0``; nested ``branches.1.layers.0`` -> ``branches/1/layer_0``."""
    return path.replace("layers.", "layer_").replace(".", "/") or "layer"


def named_layers(pl_module) -> list[tuple[str, RecurrentLayer]]:
    """``(module path, layer)`` of every recurrent layer of the task's stack."""
    stack = pl_module.net.stack
    return [(p, m) for p, m in stack.named_modules() if isinstance(m, RecurrentLayer)]


def valid_mask(
    lengths: torch.Tensor | None, steps: int, batch: int, device: torch.device
) -> torch.Tensor:
    """(B, T) bool: step t is a real (unpadded) step of sequence b."""
    if lengths is None:
        return torch.ones(batch, steps, dtype=torch.bool, device=device)
    return valid_steps(lengths, steps, device)


def profile(grad: torch.Tensor | None, valid: torch.Tensor) -> list[float]:
    """Mean over the sequences still running at step t of ‖∂L/∂·_t‖ (per-sample L2)."""
    if grad is None:
        return [0.0] * valid.shape[1]
    norms = grad.detach().double().norm(dim=-1) * valid  # (B, T)
    counts = valid.sum(dim=0).clamp(min=1)
    return [float(v) for v in (norms.sum(dim=0) / counts)]


def replayable(layer: RecurrentLayer) -> bool:
    """The replay runs :func:`cell_step`: exact for unidirectional plain cells (Elman,
    LSTM, GRU, IndRNN), not for cell variants (peepholes, layer norm, Greff variants,
    projection, zoneout's eval expectation), whose layers keep their own forward."""
    return not layer.bidirectional and layer.variant.is_plain and not layer.proj_size


def make_replay(
    module: RecurrentLayer,
    name: str,
    replayed: dict[str, list[torch.Tensor]],
    stats: LayerStats,
    limit: int | None,
):
    """A forward for ``module`` that runs it step by step and keeps each h_t.

    The steps run the layer's own cell equations (``cell_step``, which both the fused
    and the project's kernels compute) on the layer's weights; the input projection
    of all steps is one matrix product, as in the project's kernel. One step of a
    fused kernel costs far more than its arithmetic, so the replay does not call it.
    Only the first ``limit`` steps are replayed (None: all); the rest is the layer's
    own output.
    """

    def replay(x: torch.Tensor, lengths: torch.Tensor | None = None, state=None):
        batch, steps = x.shape[:2]
        n = steps if limit is None else min(steps, limit)
        valid = valid_mask(lengths, steps, batch, x.device)  # (B, T)
        w_ih, w_hh, b_ih, b_hh = module.step_weights(0)  # IndRNN: u bounded, (H,)
        initial = state
        if state is None:
            state = initial_state(module.cell, batch, module.hidden_size, x)
        else:
            state = tuple(s[0] for s in state)  # (1, B, H) -> (B, H)
        gx = F.linear(x[:, :n], w_ih, b_ih).unbind(1)
        # Steps where every sequence is still running need no masking (most steps
        # of most batches): same values and gradients, fewer autograd nodes.
        running = valid[:, :n].all(dim=0).tolist()
        hs: list[torch.Tensor] = []
        h_prev: list[torch.Tensor] = []
        outs = []
        for t in range(n):
            h_prev.append(state[0].detach())
            new = cell_step(
                module.cell,
                module.acts,
                gx[t],
                recurrent_term(module.cell, state[0], w_hh, b_hh),
                state,
            )
            if running[t]:
                state = new
                outs.append(state[0])
            else:
                keep = valid[:, t].unsqueeze(1)
                state = tuple(torch.where(keep, a, b) for a, b in zip(new, state))
                outs.append(state[0] * keep)
            hs.append(state[0])  # (B, H): the very tensor the next step and the output use
        stats.update(x[:, :n].detach().transpose(0, 1), torch.stack(h_prev), valid[:, :n].T)
        replayed[name] = hs
        if n < steps:  # beyond max_probe_steps: the layer's own output
            out, final = type(module).forward(module, x, lengths, initial)
            return torch.cat([torch.stack(outs, 1), out[:, n:]], dim=1), final
        return torch.stack(outs, dim=1), tuple(s.unsqueeze(0) for s in state)

    return replay


class _Capture:
    """What one probe pass records: the stack input's zero perturbation ``z`` (so
    ``∂L/∂z = ∂L/∂x_t``), the lengths, each replayed layer's states and unit stats."""

    def __init__(self) -> None:
        self.probe_input: list[torch.Tensor] = []
        self.lengths: list[torch.Tensor] = []
        self.replayed: dict[str, list[torch.Tensor]] = {}
        self.stats: dict[str, LayerStats] = {}

    def perturb_input(self, module, args, kwargs):
        # x + z with z = 0: ∂L/∂z is ∂L/∂x_t even when x itself needs no gradient.
        x = args[0]
        z = torch.zeros_like(x, requires_grad=True)
        self.probe_input.append(z)
        lengths = args[1] if len(args) > 1 else kwargs.get("lengths")
        if lengths is not None:
            self.lengths.append(lengths)
        return (x + z, *args[1:]), kwargs


def _backward(pl_module, batch, eps: float, limit: int | None):
    """The probe's forward (replayed layers, eval mode, no cuDNN) and one autograd.grad
    for the input perturbation, every replayed state and every replayed layer's weights.
    The model is restored afterwards: same forwards, same train/eval mode, no .grad."""
    capture = _Capture()
    layers = {layer_name(p): m for p, m in named_layers(pl_module)}
    handle = pl_module.net.stack.register_forward_pre_hook(capture.perturb_input, with_kwargs=True)
    replaced: list[RecurrentLayer] = []
    was_training = pl_module.training
    pl_module.eval()  # no dropout: the probe measures the network, not the noise
    try:
        for name, layer in layers.items():
            if not replayable(layer):
                continue
            capture.stats[name] = LayerStats(layer, eps)
            # For this one forward pass the layer runs as its step-by-step replay
            # (an instance attribute shadows the class's forward; removed below).
            layer.forward = make_replay(layer, name, capture.replayed, capture.stats[name], limit)
            replaced.append(layer)
        with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
            loss, _ = pl_module.loss_and_outputs(batch)
            names = list(capture.replayed)
            states = [h for n in names for h in capture.replayed[n]]
            params = {n: list(layers[n].parameters()) for n in names}
            flat_params = [p for n in names for p in params[n]]
            grads = torch.autograd.grad(
                loss, [*capture.probe_input, *states, *flat_params], allow_unused=True
            )
    finally:
        handle.remove()
        for layer in replaced:
            del layer.forward
        pl_module.train(was_training)
    return loss, grads, capture, params


@contextlib.contextmanager
def _precision(pl_module, batch: dict[str, Any], dtype: torch.dtype | None):
    """The module and batch to probe: as they are, or (``dtype``) a copy of the network
    and the task's own float buffers in that dtype, restored afterwards."""
    if dtype is None:
        yield batch
        return
    original = pl_module.net
    buffers = {k: b for k, b in pl_module._buffers.items() if b is not None}
    try:
        pl_module.net = copy.deepcopy(original).to(dtype)
        for key, buf in buffers.items():
            if buf.is_floating_point():
                pl_module._buffers[key] = buf.to(dtype)
        yield {
            k: v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v
            for k, v in batch.items()
        }
    finally:
        pl_module.net = original
        pl_module._buffers.update(buffers)


def measure(
    pl_module: L.LightningModule,
    batch: dict[str, torch.Tensor],
    saturation_eps: float,
    max_probe_steps: int | None = None,
    dtype: torch.dtype | None = None,
) -> dict[str, Any]:
    """One probe record: ``loss``, ``input.dx_norm``, per layer ``dh_norm`` plus
    saturation (see gradient_saturation) and ``weight_grad_norm``, and ``probe`` (the
    batch size and time steps), ``dtype`` (the probe's precision). ``dtype``: run the probe in that precision on a
    copy of the network (None: the model's own)."""
    with _precision(pl_module, batch, dtype) as probe_batch:
        record = _measure(pl_module, probe_batch, saturation_eps, max_probe_steps)
    record["dtype"] = str(dtype or next(pl_module.parameters()).dtype).split(".")[-1]
    return record


def _measure(pl_module, batch, saturation_eps: float, max_probe_steps: int | None) -> dict:
    loss, grads, capture, params = _backward(pl_module, batch, saturation_eps, max_probe_steps)
    z = capture.probe_input[0]
    steps = z.shape[1]
    lengths = capture.lengths[0] if capture.lengths else None
    valid = valid_mask(lengths, steps, z.shape[0], z.device)
    record: dict[str, Any] = {
        "loss": float(loss.detach()),
        "input": {"dx_norm": profile(grads[0], valid)},
        "layers": {},
    }
    offset = len(capture.probe_input)
    for name, states in capture.replayed.items():
        step_grads = grads[offset : offset + len(states)]
        offset += len(states)
        dh = torch.stack(
            [g if g is not None else torch.zeros_like(h) for g, h in zip(step_grads, states)],
            dim=1,
        )  # (B, T, H)
        record["layers"][name] = {
            "dh_norm": profile(dh, valid[:, : len(states)]),
            **capture.stats[name].summary(),
        }
    for name in capture.replayed:
        pgrads = [g for g in grads[offset : offset + len(params[name])] if g is not None]
        offset += len(params[name])
        record["layers"][name]["weight_grad_norm"] = float(
            torch.sqrt(sum(g.pow(2).sum() for g in pgrads)) if pgrads else 0.0
        )
    record["probe"] = {"batch_size": int(valid.shape[0]), "time_steps": int(steps)}
    return record
