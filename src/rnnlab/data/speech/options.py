"""The options every speech builder shares: the front end and the seed.

One option group (:func:`rnnlab.data.options.takes`) for the ``prepare:`` keys
``features`` (the :class:`~rnnlab.data.speech.features.FeatureParams` settings, checked
before any audio is read), ``normalize`` (standardise every feature with the train
split's mean and standard deviation, :func:`~rnnlab.data.speech.features.normalize_splits`)
and ``seed`` (speaker splits, drawn extra classes, synthesis plans).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rnnlab.data.speech.features import FeatureParams


@dataclass(frozen=True)
class SpeechOptions:
    """``seed``, ``features`` (a FeatureParams mapping; None: its defaults), ``normalize``."""

    seed: int = 0
    features: dict[str, Any] | None = None
    normalize: bool = True

    def validate(self, where: str) -> None:
        self.params  # noqa: B018 - FeatureParams raises a DataError naming the bad key

    @property
    def params(self) -> FeatureParams:
        """The front end these options describe."""
        return FeatureParams(**(self.features or {}))
