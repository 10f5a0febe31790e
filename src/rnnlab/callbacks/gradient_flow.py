"""Gradient-flow diagnostics: do gradients vanish or explode, and where?

Three views, each answering a question the seed articles raise:

* **per-layer gradient norms** during training (``grad_norm/<layer>``, before
  clipping): which layer's gradients explode, and does clipping fire?
* **‖∂L/∂h_t‖ over time** for a fixed probe batch (the first validation batch), per
  layer: how far back in time does the loss reach? A tanh Elman RNN's profile decays
  geometrically toward early steps; an LSTM's stays flat.
* **saturated and dead units** per layer on the probe batch: tanh/sigmoid outputs within
  ``saturation_eps`` of their bounds pass almost no gradient; relu units that never fire
  pass none.

∂L/∂h_t is the *total* derivative (through the output and through the recurrence).
PyTorch's fused kernels do not expose h_t inside the recurrence, so for the probe every
unidirectional recurrent layer is replayed one step at a time (same weights, same
values) and the gradient is taken at each step's state. Bidirectional layers and the
gated-feedback stack (whose layers step inside one loop) are not replayed; for them the
record holds the profile at the stack input, ‖∂L/∂x_t‖ (``input``), which every model
has.

Records go to ``<dirpath>/gradient_flow.json`` (schema in the README) with a plot
``gradient_flow.png``, to every logger as scalars, and to W&B as images.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn
from torch.nn import functional as F

from rnnlab.nn.activations import get_activation, get_gate_activation
from rnnlab.nn.cells import cell_step, initial_state
from rnnlab.nn.recurrent import RecurrentLayer

log = logging.getLogger(__name__)

BOUNDED = {"tanh": (-1.0, 1.0), "softsign": (-1.0, 1.0), "hardtanh": (-1.0, 1.0)}
BOUNDED01 = {"sigmoid"}


def _layer_name(path: str) -> str:
    """``layers.0`` -> ``layer_0``; nested ``branches.1.layers.0`` -> ``branches/1/layer_0``."""
    return path.replace("layers.", "layer_").replace(".", "/") or "layer"


class _LayerStats:
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
        w_ih, w_hh, b_ih, b_hh = self.layer.weights(0)
        size = self.layer.hidden_size
        block = max(1, self.BLOCK_ELEMENTS // max(1, x.shape[1] * w_ih.shape[0]))
        saturated = gate_saturated = torch.zeros((), dtype=torch.long)
        alive = torch.zeros(size, dtype=torch.bool, device=x.device)
        cell = self.layer.cell
        n_gates = {"rnn": 0, "lstm": 3}.get(cell, 2)
        padded = not bool(valid.all())

        def count(hit: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return (hit & mask).sum() if padded else hit.sum()

        for start in range(0, x.shape[0], block):
            xs, hs = x[start : start + block], h_prev[start : start + block]
            mask = valid[start : start + block].unsqueeze(-1)  # (t, B, 1)
            gx = torch.matmul(xs, w_ih.T) + b_ih
            gh = torch.matmul(hs, w_hh.T) + b_hh
            gates: list[torch.Tensor] = []
            if cell == "rnn":
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


class GradientFlow(Callback):
    """Log per-layer gradient norms; probe ‖∂L/∂h_t‖ and unit saturation each epoch.

    Args:
        dirpath: where ``gradient_flow.json`` and ``gradient_flow.png`` go (rank 0 only).
        every_n_epochs: probe after every n-th training epoch (and once before training).
        log_every_n_steps: per-layer gradient norms every n optimizer steps (None: the
            trainer's ``log_every_n_steps``).
        explode_threshold: warn when the total gradient norm (before clipping) exceeds it.
        vanish_threshold: warn when ‖∂L/∂h_0‖ / max_t ‖∂L/∂h_t‖ of a layer falls below it.
        saturation_eps: a tanh/sigmoid value within eps of its bound counts as saturated.
        max_probe_steps: probe only the first this many time steps of long sequences
            (None: all). Keeps the probe cheap on long speech inputs.
        plot_every_s: re-render ``gradient_flow.png`` (and log it as an image) after a
            probe only when the last rendering is at least this many seconds old; it is
            always rendered after the first probe and when training ends or fails, from
            every record. The JSON is written after every probe. Rendering costs about half
            a second, a real share of short epochs; 0 renders after every probe.
    """

    def __init__(
        self,
        dirpath: str | os.PathLike,
        every_n_epochs: int = 1,
        log_every_n_steps: int | None = None,
        explode_threshold: float = 1e3,
        vanish_threshold: float = 1e-6,
        saturation_eps: float = 0.01,
        max_probe_steps: int | None = None,
        plot_every_s: float = 30.0,
    ) -> None:
        super().__init__()
        for key, value in (
            ("every_n_epochs", every_n_epochs),
            ("max_probe_steps", max_probe_steps),
        ):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"callbacks.gradient_flow.{key}={value!r} must be an integer >= 1")
        if not 0 < saturation_eps < 0.5:
            raise ValueError(
                f"callbacks.gradient_flow.saturation_eps={saturation_eps!r}; valid: 0 < eps < 0.5"
            )
        if not float(plot_every_s) >= 0:
            raise ValueError(
                f"callbacks.gradient_flow.plot_every_s={plot_every_s!r} must be a number >= 0"
            )
        self.dirpath = Path(dirpath)
        self.every_n_epochs = every_n_epochs
        self.log_every_n_steps = log_every_n_steps
        self.explode_threshold = float(explode_threshold)
        self.vanish_threshold = float(vanish_threshold)
        self.saturation_eps = float(saturation_eps)
        self.max_probe_steps = max_probe_steps
        self.plot_every_s = float(plot_every_s)
        self._plotted_at: float | None = None  # time.monotonic() of the last rendering
        self._plotted_records = 0  # how many records that rendering showed
        self.records: list[dict[str, Any]] = []
        self._probe_batch: dict[str, torch.Tensor] | None = None
        self._warned_explode_epoch = -1

    # --- training-time gradient norms ------------------------------------------------
    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        # The total norm is checked every step (one foreach reduction, as clipping does);
        # the per-layer norms are logged every n steps.
        grads = [p.grad.detach() for p in pl_module.parameters() if p.grad is not None]
        if not grads:
            return
        total = float(torch.nn.utils.get_total_norm(grads))
        exploded = not math.isfinite(total) or total > self.explode_threshold
        if exploded and self._warned_explode_epoch != trainer.current_epoch:
            self._warned_explode_epoch = trainer.current_epoch
            rank_zero_warn_log(
                f"exploding gradients: total gradient norm {total:.3g} > "
                f"{self.explode_threshold:g} at global step {trainer.global_step} "
                f"(epoch {trainer.current_epoch}); clip gradients "
                "(trainer.gradient_clip_val) or lower optim.optimizer.lr"
            )
        every = self.log_every_n_steps or trainer.log_every_n_steps
        if trainer.global_step % max(every, 1) or not trainer.is_global_zero:
            return
        norms = {"grad_norm/total": total}
        for path, layer in self._named_layers(pl_module):
            layer_grads = [p.grad.detach().norm() for p in layer.parameters() if p.grad is not None]
            if layer_grads:
                norms[f"grad_norm/{_layer_name(path)}"] = float(
                    torch.linalg.vector_norm(torch.stack(layer_grads))
                )
        for logger in trainer.loggers:  # straight to the loggers: not a metric to monitor
            logger.log_metrics(norms, step=trainer.global_step)

    # --- the probe -----------------------------------------------------------------
    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            self._load_records(trainer.global_step)
        if trainer.global_step == 0:
            self._probe(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._probe(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self._plot_if_stale(trainer)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        try:  # a diverged or interrupted run keeps a plot of every record it made
            self._plot_if_stale(trainer)
        except Exception as err:  # never hide the exception that stopped training
            log.warning("could not plot the gradient-flow records: %s", err)

    def _probe(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or getattr(trainer, "sanity_checking", False):
            return
        batch = self._get_probe_batch(trainer, pl_module)
        if batch is None:
            return
        record = self.measure(pl_module, batch)
        record.update(epoch=trainer.current_epoch, global_step=trainer.global_step)
        self.records.append(record)
        self._warn_vanishing(record)
        self._write(trainer)
        self._log(trainer, record)

    def measure(self, pl_module: L.LightningModule, batch: dict[str, torch.Tensor]) -> dict:
        """One probe: per-layer ‖∂L/∂h_t‖ profiles, saturation, weight-gradient norms."""
        stack = pl_module.net.stack
        replayed: dict[str, list[torch.Tensor]] = {}
        stats: dict[str, _LayerStats] = {}
        lengths_seen: list[torch.Tensor] = []
        probe_input: list[torch.Tensor] = []
        handles = []

        def perturb_input(module, args, kwargs):
            # x + z with z = 0: ∂L/∂z is ∂L/∂x_t even when x itself needs no gradient.
            x = args[0]
            z = torch.zeros_like(x, requires_grad=True)
            probe_input.append(z)
            lengths = args[1] if len(args) > 1 else kwargs.get("lengths")
            if lengths is not None:
                lengths_seen.append(lengths)
            return (x + z, *args[1:]), kwargs

        handles.append(stack.register_forward_pre_hook(perturb_input, with_kwargs=True))
        replaced: list[RecurrentLayer] = []
        was_training = pl_module.training
        pl_module.eval()  # no dropout: the probe measures the network, not the noise
        try:
            for path, layer in self._named_layers(pl_module):
                if layer.bidirectional:
                    continue
                name = _layer_name(path)
                stats[name] = _LayerStats(layer, self.saturation_eps)
                # For this one forward pass the layer runs as its step-by-step replay
                # (an instance attribute shadows the class's forward; removed below).
                layer.forward = self._make_replay(layer, name, replayed, stats[name])
                replaced.append(layer)
            with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
                loss, _ = pl_module.loss_and_outputs(batch)
                names = list(replayed)
                states = [h for n in names for h in replayed[n]]
                layer_params = {
                    n: [p for p in self._layer_by_name(pl_module, n).parameters()] for n in names
                }
                params = [p for n in names for p in layer_params[n]]
                grads = torch.autograd.grad(
                    loss, [*probe_input, *states, *params], allow_unused=True
                )
        finally:
            for handle in handles:
                handle.remove()
            for layer in replaced:
                del layer.forward
            pl_module.train(was_training)

        steps = probe_input[0].shape[1]
        lengths = lengths_seen[0] if lengths_seen else None
        valid = _valid_mask(lengths, steps, probe_input[0].shape[0], probe_input[0].device)
        record: dict[str, Any] = {
            "loss": float(loss.detach()),
            "input": {"dx_norm": _profile(grads[0], valid)},
            "layers": {},
        }
        offset = len(probe_input)
        for name in names:
            n_steps = len(replayed[name])
            step_grads = grads[offset : offset + n_steps]
            offset += n_steps
            dh = torch.stack(
                [
                    g if g is not None else torch.zeros_like(h)
                    for g, h in zip(step_grads, replayed[name])
                ],
                dim=1,
            )  # (B, T, H)
            record["layers"][name] = {
                "dh_norm": _profile(dh, valid[:, :n_steps]),
                **stats[name].summary(),
            }
        for name in names:
            n_params = len(layer_params[name])
            pgrads = [g for g in grads[offset : offset + n_params] if g is not None]
            offset += n_params
            record["layers"][name]["weight_grad_norm"] = float(
                torch.sqrt(sum(g.pow(2).sum() for g in pgrads)) if pgrads else 0.0
            )
        record["probe"] = {"batch_size": int(valid.shape[0]), "time_steps": int(steps)}
        return record

    def _make_replay(self, module: RecurrentLayer, name: str, replayed: dict, stats: _LayerStats):
        """A forward for ``module`` that runs it step by step and keeps each h_t.

        The steps run the layer's own cell equations (``cell_step``, which both the fused
        and the project's kernels compute) on the layer's weights; the input projection
        of all steps is one matrix product, as in the project's kernel. One step of a
        fused kernel costs far more than its arithmetic, so the replay does not call it.
        """
        limit = self.max_probe_steps

        def replay(x: torch.Tensor, lengths: torch.Tensor | None = None, state=None):
            batch, steps = x.shape[:2]
            n = steps if limit is None else min(steps, limit)
            valid = _valid_mask(lengths, steps, batch, x.device)  # (B, T)
            w_ih, w_hh, b_ih, b_hh = module.weights(0)
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
                    module.cell, module.acts, gx[t], F.linear(state[0], w_hh, b_hh), state
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

    # --- helpers -------------------------------------------------------------------
    @staticmethod
    def _named_layers(pl_module) -> list[tuple[str, RecurrentLayer]]:
        stack = pl_module.net.stack
        return [(p, m) for p, m in stack.named_modules() if isinstance(m, RecurrentLayer)]

    def _layer_by_name(self, pl_module, name: str) -> RecurrentLayer:
        for path, layer in self._named_layers(pl_module):
            if _layer_name(path) == name:
                return layer
        raise KeyError(name)

    def _get_probe_batch(self, trainer, pl_module) -> dict[str, torch.Tensor] | None:
        if self._probe_batch is None:
            loaders = trainer.val_dataloaders or trainer.train_dataloader
            if isinstance(loaders, Sequence) and not isinstance(
                loaders, torch.utils.data.DataLoader
            ):
                loaders = loaders[0] if loaders else None
            if loaders is None:
                rank_zero_warn("gradient flow: no dataloader to take a probe batch from; skipped")
                return None
            batch = next(iter(loaders))
            self._probe_batch = {
                k: v.to(pl_module.device) if isinstance(v, torch.Tensor) else v
                for k, v in batch.items()
            }
        return self._probe_batch

    def _warn_vanishing(self, record: dict) -> None:
        for name, layer in record["layers"].items():
            profile = [v for v in layer["dh_norm"] if v is not None]
            peak = max(profile, default=0.0)
            if peak > 0 and profile[0] / peak < self.vanish_threshold:
                rank_zero_warn_log(
                    f"vanishing gradients in {name} (epoch {record['epoch']}): "
                    f"‖∂L/∂h_0‖ is {profile[0] / peak:.1e} of the largest ‖∂L/∂h_t‖ "
                    f"(threshold {self.vanish_threshold:g}); gated cells (lstm, gru), "
                    "residual/highway connections or orthogonal init help"
                )

    def _load_records(self, global_step: int) -> None:
        path = self.dirpath / "gradient_flow.json"
        if path.is_file() and global_step > 0:  # resumed: keep the earlier records
            try:
                old = json.loads(path.read_text()).get("records", [])
            except (OSError, ValueError):
                old = []
            self.records = [r for r in old if r.get("global_step", 0) <= global_step]

    def _write(self, trainer) -> None:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        latest = self.records[-1]
        doc = {"probe": latest["probe"], "records": self.records}
        path = self.dirpath / "gradient_flow.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        tmp.replace(path)
        if self._plotted_at is None or time.monotonic() - self._plotted_at >= self.plot_every_s:
            self._plot(trainer)

    def _plot_if_stale(self, trainer) -> None:
        if trainer.is_global_zero and self.records and self._plotted_records != len(self.records):
            self._plot(trainer)

    def _plot(self, trainer) -> None:
        """Render every record so far to ``gradient_flow.png``; log it to image loggers."""
        from rnnlab.plots import plot_gradient_flow

        png = plot_gradient_flow(self.records, self.dirpath / "gradient_flow.png")
        self._plotted_at, self._plotted_records = time.monotonic(), len(self.records)
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):
                try:
                    logger.log_image(
                        key="gradient_flow/profile", images=[str(png)], step=trainer.global_step
                    )
                except Exception as err:  # an image upload must never stop training
                    log.warning("could not log the gradient-flow image to %s: %s", logger, err)

    def _log(self, trainer, record: dict) -> None:
        scalars: dict[str, float] = {}
        for name, layer in record["layers"].items():
            profile = layer["dh_norm"]
            peak = max(profile) if profile else 0.0
            if peak > 0:
                scalars[f"gradflow/{name}/first_to_peak"] = profile[0] / peak
            for key in ("saturated_frac", "gate_saturated_frac", "dead_frac"):
                if layer.get(key) is not None:
                    scalars[f"gradflow/{name}/{key}"] = layer[key]
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=trainer.global_step)


@rank_zero_only
def rank_zero_warn_log(message: str) -> None:
    """A diagnostic warning in the job's log (train.log, console), once, from rank 0."""
    log.warning(message)


def _valid_mask(
    lengths: torch.Tensor | None, steps: int, batch: int, device: torch.device
) -> torch.Tensor:
    """(B, T) bool: step t is a real (unpadded) step of sequence b."""
    if lengths is None:
        return torch.ones(batch, steps, dtype=torch.bool, device=device)
    return torch.arange(steps, device=device)[None, :] < lengths.to(device)[:, None]


def _profile(grad: torch.Tensor | None, valid: torch.Tensor) -> list[float]:
    """Mean over the sequences still running at step t of ‖∂L/∂·_t‖ (per-sample L2)."""
    if grad is None:
        return [0.0] * valid.shape[1]
    norms = grad.detach().float().norm(dim=-1) * valid  # (B, T)
    counts = valid.sum(dim=0).clamp(min=1)
    return [float(v) for v in (norms.sum(dim=0) / counts)]
