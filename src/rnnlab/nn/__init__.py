"""Plain-PyTorch building blocks of rnnlab (no Lightning or Hydra imports)."""

from rnnlab.nn.activations import ACTIVATIONS, GATE_ACTIVATIONS, get_activation
from rnnlab.nn.builder import build_stack
from rnnlab.nn.cells import CellActivations, RecurrentCell
from rnnlab.nn.connections import CONNECTIONS
from rnnlab.nn.model import ModelIO, RecurrentModel, build_model
from rnnlab.nn.recurrent import RecurrentLayer

__all__ = [
    "ACTIVATIONS",
    "CONNECTIONS",
    "GATE_ACTIVATIONS",
    "CellActivations",
    "ModelIO",
    "RecurrentCell",
    "RecurrentLayer",
    "RecurrentModel",
    "build_model",
    "build_stack",
    "get_activation",
]
