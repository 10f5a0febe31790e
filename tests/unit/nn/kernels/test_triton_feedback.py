"""The gated-feedback stack on the Triton backend (nn/kernels/triton_feedback*.py).

Through Triton's interpreter (TRITON_INTERPRET=1, set at import, CPU tensors): the
stack's outputs, final states and the gradients of the input and every parameter
match its torch-ops path in float64 (nn/kernels/triton_parity.py, shared with
make check-gpu), for 1-3 layers, bidirectional stacks, other gate/cell activations,
dropout masks and bfloat16.
"""

import os

os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

from rnnlab.nn import build_stack  # noqa: E402
from rnnlab.nn.kernels.triton_parity import (  # noqa: E402
    feedback_parity,
    forced_backend,
    mismatches,
)


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_matches_torch_ops_ragged(cell, layers):
    triples = feedback_parity(cell, "relu" if cell == "rnn" else "gelu", layers)
    names = {n for n, _, _ in triples}
    assert {"out", "d_x", "state0"} <= names and len(names) > 6
    assert mismatches(triples) == []


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_other_gate_and_cell_activations_bidirectional(cell):
    triples = feedback_parity(
        cell, "silu", 2, gate_activation="hard_sigmoid", cell_activation="softsign",
        bidirectional=True,
    )  # fmt: skip
    assert mismatches(triples) == []


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_dropout_masks_match(cell):
    assert mismatches(feedback_parity(cell, "tanh", 3, dropout=0.4)) == []


def test_bfloat16():
    triples = feedback_parity("gru", "gelu", 2, dtype=torch.bfloat16)
    assert mismatches(triples, torch.bfloat16) == []
    assert dict((n, g) for n, g, _ in triples)["out"].dtype == torch.bfloat16


def test_stack_repr_names_triton():
    stack = build_stack(3, {"cell": "gru", "hidden_size": 4, "num_layers": 2,
                            "connection": {"name": "gated_feedback"}})  # fmt: skip
    with forced_backend("triton"):
        assert "backend=triton" in repr(stack)
