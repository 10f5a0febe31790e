"""Cross-layer connections: how L recurrent layers are wired (docs/equations.md)."""

from rnnlab.nn.connections.base import LayerSpec, RecurrentStack
from rnnlab.nn.connections.dense import DenseConnection
from rnnlab.nn.connections.gated_feedback import GatedFeedbackConnection
from rnnlab.nn.connections.highway import HighwayConnection
from rnnlab.nn.connections.parallel import ParallelConnection
from rnnlab.nn.connections.residual import ResidualConnection
from rnnlab.nn.connections.stack import StackConnection

# connection.name -> class, keyed by each class's own ``name`` (the config's value).
CONNECTIONS: dict[str, type[RecurrentStack]] = {
    cls.name: cls
    for cls in (
        StackConnection,
        ResidualConnection,
        HighwayConnection,
        DenseConnection,
        GatedFeedbackConnection,
        ParallelConnection,
    )
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
