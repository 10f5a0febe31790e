"""Cross-layer connections: how L recurrent layers are wired (notes/connections.md)."""

from rnnlab.nn.connections.base import LayerSpec, RecurrentStack
from rnnlab.nn.connections.dense import DenseConnection
from rnnlab.nn.connections.gated_feedback import GatedFeedbackConnection
from rnnlab.nn.connections.highway import HighwayConnection
from rnnlab.nn.connections.parallel import ParallelConnection
from rnnlab.nn.connections.residual import ResidualConnection
from rnnlab.nn.connections.stack import StackConnection

CONNECTIONS: dict[str, type[RecurrentStack]] = {
    "stack": StackConnection,
    "residual": ResidualConnection,
    "highway": HighwayConnection,
    "dense": DenseConnection,
    "gated_feedback": GatedFeedbackConnection,
    "parallel": ParallelConnection,
}

__all__ = [
    "CONNECTIONS",
    "DenseConnection",
    "GatedFeedbackConnection",
    "HighwayConnection",
    "LayerSpec",
    "ParallelConnection",
    "RecurrentStack",
    "ResidualConnection",
    "StackConnection",
]
