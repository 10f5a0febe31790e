"""The whole network: front end -> (frame stacking) -> recurrent stack -> head.

``ModelIO`` is what the data tells the model: token ids (vocabulary size) or feature
frames (feature width) in; one output per sequence or one per step out.

``model.time_reduction = k`` (default 1: off) stacks ``k`` consecutive front-end frames
into one before the recurrent stack (Deep Speech 2 / pyramidal-RNN style frame
stacking): the stack runs ``k`` times fewer steps, each ``k`` times wider::

    x: (B, T, F) -> (B, ceil(T / k), k F),   x'_t = [x_{kt}; x_{kt+1}; ...; x_{kt+k-1}]
    lengths n -> ceil(n / k)

(the last group of a sequence is completed with the padding frames, zeros). Per-step
outputs then come one per ``k`` input frames: :meth:`RecurrentModel.output_lengths`
says how many, e.g. for the CTC loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rnnlab.nn.builder import STACK_DEFAULTS, build_stack, check_stack_config
from rnnlab.nn.heads import POOLINGS, SequenceHead, StepHead


@dataclass(frozen=True)
class ModelIO:
    input_kind: str  # "tokens" or "features"
    input_dim: int  # vocabulary size for tokens, feature width for features
    output_dim: int  # classes, or regression targets
    output_per: str = "sequence"  # "sequence" or "step"


MODEL_KEYS = {"embedding_dim": 64, "pooling": "last", "head_dropout": 0.0, "time_reduction": 1}


class FrameStack(nn.Module):
    """Time reduction by ``k``: ``(B, T, F) -> (B, ceil(T/k), k*F)``, lengths ``ceil(n/k)``.

    Frame ``t`` of the output is input frames ``kt .. kt+k-1`` concatenated (feature
    blocks in time order); a ``T`` that is not a multiple of ``k`` is padded with zeros.
    No parameters, so a model's state_dict does not depend on ``k``.
    """

    def __init__(self, k: int):
        super().__init__()
        self.k = int(k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps, width = x.shape
        pad = (-steps) % self.k
        if pad:
            x = F.pad(x, (0, 0, 0, pad))
        return x.reshape(batch, (steps + pad) // self.k, self.k * width)

    def reduce_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return torch.div(lengths + self.k - 1, self.k, rounding_mode="floor")

    def extra_repr(self) -> str:
        return f"k={self.k}"


class RecurrentModel(nn.Module):
    """forward(inputs, lengths) -> logits: (B, out) per sequence, or (B, T', out) per step
    with ``T' = ceil(T / time_reduction)`` (:meth:`output_lengths` per sequence)."""

    def __init__(
        self, frontend: nn.Module, stack: nn.Module, head: nn.Module, time_reduction: int = 1
    ):
        super().__init__()
        self.frontend, self.stack, self.head = frontend, stack, head
        self.reduction = FrameStack(time_reduction) if time_reduction > 1 else None

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid output steps per sequence: ``ceil(lengths / time_reduction)``."""
        return lengths if self.reduction is None else self.reduction.reduce_lengths(lengths)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.frontend(inputs)
        if self.reduction is not None:
            x, lengths = self.reduction(x), self.reduction.reduce_lengths(lengths)
        output, _ = self.stack(x, lengths)
        return self.head(output, lengths)


def check_model_config(cfg: Mapping[str, Any]) -> None:
    """Check every model key (types, ranges, choices) without building anything, so a
    run can refuse a bad config before it prepares data or trains."""
    if not isinstance(cfg, Mapping):
        raise ValueError(f"model={cfg!r} must be a mapping of model keys")
    cfg = dict(cfg)
    model_cfg = {k: cfg.pop(k, v) for k, v in MODEL_KEYS.items()}
    unknown = sorted(set(cfg) - set(STACK_DEFAULTS))
    if unknown:
        valid = sorted({*STACK_DEFAULTS, *MODEL_KEYS})
        raise ValueError(f"model: unknown key(s) {unknown}; valid: {', '.join(valid)}")
    dim = model_cfg["embedding_dim"]
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"model.embedding_dim={dim!r} must be an integer >= 1")
    if model_cfg["pooling"] not in POOLINGS:
        raise ValueError(
            f"model.pooling={model_cfg['pooling']!r} is not valid; valid: {', '.join(POOLINGS)}"
        )
    hd = model_cfg["head_dropout"]
    if isinstance(hd, bool) or not isinstance(hd, (int, float)) or not 0 <= hd < 1:
        raise ValueError(f"model.head_dropout={hd!r} must be a number in [0, 1)")
    k = model_cfg["time_reduction"]
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(
            f"model.time_reduction={k!r} must be an integer >= 1 (frames stacked into one; 1 = off)"
        )
    check_stack_config(cfg)


def build_model(cfg: Mapping[str, Any], io: ModelIO) -> RecurrentModel:
    """Build a model from a plain mapping of model keys (STACK_DEFAULTS + MODEL_KEYS)."""
    check_model_config(cfg)
    cfg = dict(cfg)
    model_cfg = {k: cfg.pop(k, v) for k, v in MODEL_KEYS.items()}
    if io.input_kind == "tokens":
        dim = model_cfg["embedding_dim"]
        frontend: nn.Module = nn.Embedding(io.input_dim, dim, padding_idx=0)
    elif io.input_kind == "features":
        frontend, dim = nn.Identity(), io.input_dim
    else:
        raise ValueError(f"input_kind={io.input_kind!r}; valid: tokens, features")
    stack = build_stack(dim * model_cfg["time_reduction"], cfg)
    if io.output_per == "sequence":
        head: nn.Module = SequenceHead(
            stack.output_size,
            io.output_dim,
            model_cfg["pooling"],
            model_cfg["head_dropout"],
            stack.segments,
        )
    elif io.output_per == "step":
        head = StepHead(stack.output_size, io.output_dim, model_cfg["head_dropout"])
    else:
        raise ValueError(f"output_per={io.output_per!r}; valid: sequence, step")
    return RecurrentModel(frontend, stack, head, model_cfg["time_reduction"])
