"""SpecAugment: masks whole bands, keeps the shape, never modifies its input."""

from __future__ import annotations

import pytest
import torch

from rnnlab.data.speech.augment import spec_augment
from rnnlab.errors import DataError


def test_spec_augment_masks_and_keeps_shape():
    torch.manual_seed(0)
    x = torch.randn(100, 40) + 5.0
    before = x.clone()
    y = spec_augment(x, freq_mask=8, time_mask=10, num_masks=2)
    assert y.shape == x.shape and not torch.equal(x, y)
    assert torch.equal(x, before)  # the input is not modified in place
    changed = y != x
    # masked cells form whole feature columns and/or whole frame rows
    full_cols = changed.all(0).sum().item()
    full_rows = changed.all(1).sum().item()
    assert full_cols + full_rows >= 1 and full_cols <= 2 * 8 and full_rows <= 2 * 10
    assert torch.allclose(y[changed], torch.full_like(y[changed], x.mean().item()))
    batch = torch.randn(3, 50, 20)
    assert spec_augment(batch, 4, 5, 1).shape == batch.shape
    assert torch.equal(spec_augment(x, 0, 0, 2), x)
    with pytest.raises(DataError, match="freq_mask=-1"):
        spec_augment(x, freq_mask=-1)
    with pytest.raises(DataError, match="valid: \\(frames, F\\)"):
        spec_augment(torch.zeros(4))
