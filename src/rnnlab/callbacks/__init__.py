"""rnnlab's own Lightning callbacks (``conf/callbacks/``).

* :class:`GradientFlow` (``rnnlab.callbacks.GradientFlow``, the ``_target_`` of
  ``callbacks.gradient_flow``): vanishing/exploding-gradient diagnostics — per-layer
  gradient norms, the ‖∂L/∂h_t‖ profile of a probe batch, saturated and dead units.
  Its parts: ``gradient_flow`` (the callback), ``gradient_probe`` (the step-by-step
  replay that measures ∂L/∂h_t), ``gradient_saturation`` (unit counts) and
  ``gradient_plot`` (``gradient_flow.png``).
* :class:`EpochLog` (``callbacks.epoch_log``): one log line per epoch when no progress
  bar is drawn (the DVC stages), so a long ``dvc repro`` shows its progress.

The W&B test report (confusion matrix, per-class table) is not a callback: it is logged
after testing through :func:`rnnlab.loggers.log_classification_report`.
"""

from rnnlab.callbacks.epoch_log import EpochLog
from rnnlab.callbacks.gradient_flow import GradientFlow

__all__ = ["EpochLog", "GradientFlow"]
