"""The one valid-step rule (rnnlab.nn.masks): step t of sequence b is valid iff t < lengths[b]."""

import torch

from rnnlab.nn.masks import (
    full_lengths,
    is_padded,
    reverse_padded,
    step_mask_or_none,
    valid_steps,
    zero_padding,
)


def test_valid_steps_batch_and_time_major():
    lengths = torch.tensor([3, 1, 0])
    want = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(valid_steps(lengths, 4), want)
    assert torch.equal(valid_steps(lengths, 4, time_major=True), want.t())
    assert valid_steps(lengths, 4).dtype == torch.bool


def test_is_padded_and_step_mask_or_none():
    assert not is_padded(torch.tensor([4, 4]), 4)
    assert is_padded(torch.tensor([4, 2]), 4)
    assert step_mask_or_none(torch.tensor([4, 4]), 4) is None
    mask = step_mask_or_none(torch.tensor([4, 2]), 4)
    assert mask.shape == (4, 2, 1) and mask[:, 1, 0].tolist() == [True, True, False, False]


def test_full_lengths_zero_padding_and_reverse_padded():
    x = torch.arange(1.0, 13.0).view(2, 3, 2)
    assert full_lengths(x).tolist() == [3, 3]
    assert zero_padding(x, None) is x and zero_padding(x, full_lengths(x)) is x
    lengths = torch.tensor([3, 2])
    z = zero_padding(x, lengths)
    assert torch.equal(z[1, 2], torch.zeros(2)) and torch.equal(z[:, :2], x[:, :2])
    r = reverse_padded(x, lengths)
    assert torch.equal(r[1, :2], x[1, [1, 0]]) and torch.equal(r[1, 2], x[1, 2])
    assert torch.equal(r[0], x[0].flip(0))
    assert torch.equal(reverse_padded(r, lengths), x)
