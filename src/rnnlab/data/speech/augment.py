"""SpecAugment (Park et al. 2019): time and frequency masking of TRAIN features.

Applied per utterance at batch time by the DataModule (``data.spec_augment``), never to
the processed files. For features ``X`` of shape (frames, F), each of ``num_masks``
rounds sets a band of up to ``freq_mask`` consecutive feature bins, ``X[:, f0 : f0 + f]``,
and a band of up to ``time_mask`` consecutive frames, ``X[t0 : t0 + t, :]``, to ``v``
(widths and starts uniform at random: torchaudio's ``FrequencyMasking`` and
``TimeMasking``). ``v`` is ``mask_value`` or, by default, the utterance's mean, which
is neutral whether or not features were normalised.
"""

from __future__ import annotations

import torch
import torchaudio

from rnnlab.errors import DataError


def spec_augment(
    features: torch.Tensor,
    freq_mask: int = 8,
    time_mask: int = 10,
    num_masks: int = 2,
    mask_value: float | None = None,
) -> torch.Tensor:
    """Masked copy of ``features``: (frames, F) or (B, frames, F), same shape.

    Each item of a batch gets its own masks. The input is not modified. Uses torch's
    global RNG, which the DataModule seeds.
    """
    for key, value in (
        ("freq_mask", freq_mask),
        ("time_mask", time_mask),
        ("num_masks", num_masks),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise DataError(f"data.spec_augment.{key}={value!r} must be an integer >= 0")
    if features.dim() not in (2, 3):
        raise DataError(
            f"spec_augment: features of shape {tuple(features.shape)}; "
            "valid: (frames, F) or (batch, frames, F)"
        )
    if features.dim() == 3:
        return torch.stack(
            [spec_augment(x, freq_mask, time_mask, num_masks, mask_value) for x in features]
        )
    out = features.t().clone()  # torchaudio masks expect (..., freq, time)
    value = float(out.mean()) if mask_value is None else float(mask_value)
    fmask = torchaudio.transforms.FrequencyMasking(min(freq_mask, out.shape[0]))
    tmask = torchaudio.transforms.TimeMasking(min(time_mask, out.shape[1]))
    for _ in range(num_masks):
        if freq_mask > 0:
            out = fmask(out, value)
        if time_mask > 0:
            out = tmask(out, value)
    return out.t().contiguous()
