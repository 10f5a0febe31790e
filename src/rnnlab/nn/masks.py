"""Valid steps of a padded batch: the one place where lengths become masks.

A batch holds B sequences padded to T steps; ``lengths[b]`` is the number of real steps
of sequence b, so step t of sequence b is valid exactly when ``t < lengths[b]``
(docs/equations.md, "Padding and lengths"). Every module that needs that rule (layers,
kernels, connections, heads, the gradient-flow probe) takes it from here.
"""

from __future__ import annotations

import torch


def full_lengths(x: torch.Tensor) -> torch.Tensor:
    """(B,) lengths of a batch-first ``x`` (B, T, ...) in which nothing is padded."""
    return torch.full((x.shape[0],), x.shape[1], dtype=torch.long)


def is_padded(lengths: torch.Tensor, steps: int) -> bool:
    """True when some sequence is shorter than ``steps`` (so masking is needed at all)."""
    return not bool((lengths >= steps).all())


def valid_steps(
    lengths: torch.Tensor,
    steps: int,
    device: torch.device | str | None = None,
    *,
    time_major: bool = False,
) -> torch.Tensor:
    """Boolean mask, True at valid steps: (B, T), or (T, B) with ``time_major=True``.

    ``device`` defaults to the device of ``lengths``. Add a trailing axis
    (``.unsqueeze(-1)``) to broadcast it over features.
    """
    device = lengths.device if device is None else device
    t = torch.arange(steps, device=device)
    lens = lengths.to(device)
    if time_major:
        return t.unsqueeze(1) < lens.unsqueeze(0)
    return t.unsqueeze(0) < lens.unsqueeze(1)


def step_mask_or_none(
    lengths: torch.Tensor, steps: int, device: torch.device | str | None = None
) -> torch.Tensor | None:
    """Time-major (T, B, 1) valid-step mask for per-step loops; None when nothing is padded.

    None lets a loop skip the masking work (and its ops) on unpadded batches.
    """
    if not is_padded(lengths, steps):
        return None
    return valid_steps(lengths, steps, device, time_major=True).unsqueeze(-1)


def zero_padding(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Zero the padded steps of a batch-first ``x`` (B, T, F); ``x`` itself when none are."""
    if lengths is None or not is_padded(lengths, x.shape[1]):
        return x
    return x * valid_steps(lengths, x.shape[1], x.device).unsqueeze(-1).to(x.dtype)


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of a batch-first tensor within its own length.

    Step t of sequence b moves to ``lengths[b] - 1 - t``; padding stays where it is, so a
    reversed-then-run-forward pass is the backward direction of a bidirectional layer.
    Applying it twice is the identity.
    """
    batch, steps = x.shape[:2]
    t = torch.arange(steps, device=x.device).unsqueeze(0).expand(batch, steps)
    lens = lengths.to(x.device).unsqueeze(1)
    idx = torch.where(valid_steps(lengths, steps, x.device), lens - 1 - t, t)
    idx = idx.view(batch, steps, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, idx)
