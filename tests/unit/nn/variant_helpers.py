"""Shared checks of the cell variants: padding invariance and overfitting a fixed batch."""

from __future__ import annotations

import torch

from rnnlab.nn import ModelIO, build_model, build_stack
from rnnlab.nn.kernels.triton_variant_parity import scaled_error

# Every connection the variants compose with (gated_feedback where the variant allows it).
CONNECTIONS = {
    "stack": {"name": "stack"},
    "residual": {"name": "residual", "start_layer": 1},
    "highway": {"name": "highway"},
    "dense": {"name": "dense", "concat_output": True},
    "gated_feedback": {"name": "gated_feedback"},
    "parallel": {"name": "parallel", "branches": [{}, {"connection": {"name": "residual"}}]},
}


def flat(states):
    if isinstance(states, torch.Tensor):
        return [states]
    return [t for s in states for t in flat(s)]


def check_padding_invariance(cfg: dict, input_size: int = 3) -> None:
    """A padded batch gives each sequence's outputs and final states as if run alone."""
    torch.manual_seed(0)
    stack = build_stack(input_size, {"hidden_size": 4, "num_layers": 2, **cfg}).eval()
    lengths = torch.tensor([6, 3, 1, 5])
    x = torch.randn(4, 6, input_size)
    for b, n in enumerate(lengths.tolist()):
        x[b, n:] = 100.0  # garbage in the padding must not leak anywhere
    out, states = stack(x, lengths)
    for b, n in enumerate(lengths.tolist()):
        alone, alone_states = stack(x[b : b + 1, :n], torch.tensor([n]))
        torch.testing.assert_close(out[b, :n], alone[0], atol=1e-5, rtol=1e-5)
        assert torch.all(out[b, n:] == 0), "outputs at padded steps must be zero"
        for sb, sa in zip(flat(states), flat(alone_states)):
            torch.testing.assert_close(sb[:, b], sa[:, 0], atol=1e-5, rtol=1e-5)


def check_overfits(cfg: dict, steps: int = 80) -> None:
    """The model trains: 80 Adam steps cut the loss on a fixed batch to a quarter."""
    torch.manual_seed(0)
    model = build_model(
        {"hidden_size": 16, "num_layers": 2, **cfg}, ModelIO("features", 3, 2, "sequence")
    )
    x = torch.randn(8, 6, 3)
    lengths = torch.tensor([6, 5, 4, 3, 6, 2, 6, 1])
    y = torch.tensor([0, 1, 0, 1, 1, 0, 1, 0])
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.eval()
    start = loss_fn(model(x, lengths), y).item()
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model(x, lengths), y).backward()
        opt.step()
    model.eval()
    final = loss_fn(model(x, lengths), y).item()
    assert final < 0.25 * start, f"loss {start:.3f} -> {final:.3f}"


def _distance(run, ref):
    """The largest difference from ``ref`` over (out, states, grads), relative to each
    tensor's scale (``scaled_error``, the rule the Triton parity checks use)."""
    parts = zip([run[0], *run[1], *run[2]], [ref[0], *ref[1], *ref[2]], strict=True)
    return scaled_error([("", a, b) for a, b in parts])


def assert_no_further_from(ref, kernel, loop):
    """float32 rounding differs between a kernel and the loop (layer norm amplifies it,
    ~1e-5 to 1e-4 relative for either path; which one is closer varies by case and CPU
    type): the kernel is within float32 accuracy of a float64 run, ``ref``: at most 4x
    the loop's own distance, or 1e-4. Runs are (out, states, grads) triples."""
    far, loop_far = _distance(kernel, ref), _distance(loop, ref)
    assert far < 1e-3 and far <= max(4 * loop_far, 1e-4), (far, loop_far)
