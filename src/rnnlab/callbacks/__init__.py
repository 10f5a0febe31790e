"""Lightning callbacks: gradient-flow diagnostics and the W&B test report."""

from rnnlab.callbacks.gradient_flow import GradientFlow

__all__ = ["GradientFlow"]
