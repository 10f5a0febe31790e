"""The recurrent-dropout and zoneout masks (nn/variant_masks.py): their distribution,
shapes, reproducibility, and that eval draws nothing."""

import pytest
import torch

from rnnlab.nn.variant_masks import ZONEOUT_BITS, draw_masks, keep_masks, zoneout_threshold
from rnnlab.nn.variants import Variant


@pytest.mark.parametrize("z", [0.05, 0.3, 0.9])
def test_keep_masks_are_bernoulli_z_and_neighbours_independent(z):
    keep = keep_masks(z, 400_000, "cpu")
    assert keep.dtype == torch.bool
    keep = keep.double()
    std = (z * (1 - z) / keep.numel()) ** 0.5
    assert abs(keep.mean().item() - z) < 5 * std
    # the four 16-bit lanes of one 64-bit draw, and neighbouring draws: no correlation
    for lag in (1, 2, 3, 4):
        both = (keep[:-lag] * keep[lag:]).mean().item()
        assert abs(both - z * z) < 5 * (z * z * (1 - z * z) / keep.numel()) ** 0.5, lag


def test_threshold_resolution_and_bounds():
    levels = 1 << ZONEOUT_BITS
    assert zoneout_threshold(0.0) == -levels // 2  # no int16 is below it: never keep
    assert zoneout_threshold(0.5) == 0
    assert zoneout_threshold(1 - 1e-9) == levels // 2 - 1  # stays inside int16
    assert not keep_masks(0.0, 10_000, "cpu").any()


@pytest.mark.parametrize("cell,hidden,width", [("lstm", 5, 3), ("gru", 5, 5), ("rnn", 4, 4)])
def test_draw_masks_shapes_reproducible_and_nothing_in_eval(cell, hidden, width):
    variant = Variant(recurrent_dropout=0.25, zoneout=0.3)
    h0 = torch.zeros(6, width, dtype=torch.float64)
    torch.manual_seed(3)
    drop, kh, kc = draw_masks(cell, variant, h0, hidden, 7, training=True)
    assert drop.shape == (6, width) and set(drop.unique().tolist()) <= {0.0, 1 / 0.75}
    assert kh.shape == (7, 6, width) and kh.is_contiguous() and kh.dtype == torch.bool
    assert kc.shape == ((7, 6, hidden) if cell == "lstm" else (0,))
    torch.manual_seed(3)
    again = draw_masks(cell, variant, h0, hidden, 7, training=True)
    assert all(torch.equal(a, b) for a, b in zip((drop, kh, kc), again))
    state = torch.get_rng_state()
    assert all(m.numel() == 0 for m in draw_masks(cell, variant, h0, hidden, 7, False))
    assert torch.equal(state, torch.get_rng_state()), "eval draws nothing"


def test_options_off_draw_nothing():
    h0 = torch.zeros(2, 3)
    state = torch.get_rng_state()
    assert all(m.numel() == 0 for m in draw_masks("lstm", Variant(), h0, 3, 4, True))
    assert torch.equal(state, torch.get_rng_state())
