"""Heads: what the recurrent stack's outputs become.

``SequenceHead`` pools over valid steps (last, mean or max) and maps to classes or a
regression target; ``StepHead`` maps every step (per-frame logits for tagging or CTC).
Per-step targets mark the steps no loss or metric scores with ``IGNORE_INDEX``.
The pooling formulas are in docs/equations.md.
"""

from __future__ import annotations

import torch
from torch import nn

from rnnlab.nn.masks import valid_steps

POOLINGS = ("last", "mean", "max")
# A per-step target that is not scored (torch's cross_entropy default ignore_index):
# the data (probes' copy task) writes it and the classification task ignores it.
IGNORE_INDEX = -100


def pool_last(output: torch.Tensor, lengths: torch.Tensor, segments) -> torch.Tensor:
    """Each direction's final position: step len-1 forward, step 0 backward."""
    last_idx = (lengths.to(output.device) - 1).clamp(min=0)
    at_last = output[torch.arange(output.shape[0], device=output.device), last_idx]
    at_first = output[:, 0]
    parts, start = [], 0
    for width, bidirectional in segments:
        if bidirectional:
            half = width // 2
            parts += [at_last[:, start : start + half], at_first[:, start + half : start + width]]
        else:
            parts.append(at_last[:, start : start + width])
        start += width
    return torch.cat(parts, dim=-1)


def pool(output: torch.Tensor, lengths: torch.Tensor, method: str, segments) -> torch.Tensor:
    if method == "last":
        return pool_last(output, lengths, segments)
    mask = valid_steps(lengths, output.shape[1], output.device).unsqueeze(-1)  # (B, T, 1)
    if method == "mean":
        return (output * mask).sum(1) / lengths.to(output.device).clamp(min=1).unsqueeze(1)
    if method == "max":
        return output.masked_fill(~mask, float("-inf")).max(dim=1).values
    raise ValueError(f"pooling={method!r} is not valid; valid: {', '.join(POOLINGS)}")


class SequenceHead(nn.Module):
    def __init__(
        self, in_dim: int, out_dim: int, pooling: str = "last", dropout: float = 0.0, segments=None
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(
                f"model.pooling={pooling!r} is not valid; valid: {', '.join(POOLINGS)}"
            )
        self.pooling = pooling
        self.segments = segments or [(in_dim, False)]
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(in_dim, out_dim)

    def forward(self, output: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.proj(self.dropout(pool(output, lengths, self.pooling, self.segments)))


class StepHead(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(in_dim, out_dim)

    def forward(self, output: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.proj(self.dropout(output))
