"""Run a call's T step launches, captured once per shape in a CUDA graph on CUDA.

``run_steps(key, launch, inputs, outputs, results)``: ``launch(ts)`` issues every step
kernel of one call reading and writing only the tensors in ``ts`` (and may add result
entries to it). On CPU (Triton's interpreter), or with ``RNNLAB_CUDA_GRAPHS=0``, or
inside someone else's capture, it simply runs. On CUDA the first call of a ``key``
(cell, activations, shape, dtypes) warms the kernels up (compiles them), captures the
launches into a ``torch.cuda.CUDAGraph`` over static copies of ``inputs`` / ``outputs``
and keeps it; every call copies its inputs in, replays, and returns clones of the
outputs (the static buffers are reused by the next call). At most ``MAX_GRAPHS`` shapes
are kept (least recently used dropped): length-bucketed batches vary T.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable

import torch

MAX_GRAPHS = 16
_graphs: OrderedDict[tuple, tuple] = OrderedDict()  # key -> (replay, static buffers)


def graphs_enabled(device: torch.device) -> bool:
    if device.type != "cuda" or os.environ.get("RNNLAB_CUDA_GRAPHS", "1") == "0":
        return False
    return not torch.cuda.is_current_stream_capturing()


def _warmup(fn: Callable[[], None]) -> None:
    """Run ``fn`` once on a side stream (compiles every kernel variant before capture)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)


def _record(fn: Callable[[], None]) -> Callable[[], None]:
    """Capture ``fn``'s launches into a CUDA graph; returns its replay."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def _capture(launch, inputs, outputs):
    static = {k: v.clone() for k, v in inputs.items()}
    static.update({k: torch.empty_like(v) for k, v in outputs.items()})
    _warmup(lambda: launch(dict(static)))
    return _record(lambda: launch(static)), static


def run_steps(
    key: tuple,
    launch: Callable[[dict[str, torch.Tensor]], None],
    inputs: dict[str, torch.Tensor],
    outputs: dict[str, torch.Tensor],
    results: tuple[str, ...],
) -> dict[str, torch.Tensor]:
    """-> outputs and ``results`` after the launches (see the module doc)."""
    device = next(iter(inputs.values())).device
    if not graphs_enabled(device):
        ts = {**inputs, **outputs}
        launch(ts)
        return ts
    full_key = (*key, device.index, tuple(v.shape for v in inputs.values()))
    if full_key not in _graphs:
        _graphs[full_key] = _capture(launch, inputs, outputs)
        while len(_graphs) > MAX_GRAPHS:
            _graphs.popitem(last=False)
    _graphs.move_to_end(full_key)
    replay, static = _graphs[full_key]
    for k, v in inputs.items():
        static[k].copy_(v)
    replay()
    return {k: static[k].clone() for k in (*outputs, *results)}
