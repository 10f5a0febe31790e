"""Gated feedback with the cell variants on the Triton backend
(nn/kernels/triton_feedback_variants*.py) against the variant loop.

Through Triton's interpreter (TRITON_INTERPRET=1, set at import, CPU tensors): a
bidirectional two-layer gated-feedback stack with dropout between the layers, for every
Greff variant, peepholes, layer norm, recurrent dropout, zoneout and the projection (and
all at once, on LSTM, GRU and Elman), gives the loop's outputs, final states and the
gradients of x and of every parameter (nn/kernels/triton_variant_parity.py, shared with
make check-gpu), in training (the same masks under a seed) and eval; three layers, one
layer, one step, other activations, several row programs and column tiles, bfloat16.
"""

import os

os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

from rnnlab.nn import build_stack  # noqa: E402
from rnnlab.nn.kernels import triton_feedback_variants as TFV  # noqa: E402
from rnnlab.nn.kernels import triton_graphs  # noqa: E402
from rnnlab.nn.kernels.triton_parity import forced_backend, mismatches  # noqa: E402
from rnnlab.nn.kernels.triton_variant_parity import (  # noqa: E402
    FEEDBACK_CASES,
    feedback_variant_parity,
    scaled_error,
)


def _names(triples):
    return {n for n, _, _ in triples}


def _assert_close(triples, case):
    """float32 tolerances; with layer norm, which amplifies the rounding of long float32
    reductions in near-zero entries, relative to each tensor's scale."""
    if FEEDBACK_CASES[case].get("layer_norm"):
        assert scaled_error(triples) < 1e-4
    else:
        assert mismatches(triples) == []


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("case", list(FEEDBACK_CASES))
def test_matches_the_variant_loop(case, training, monkeypatch):
    calls = []
    original = TFV.TritonGatedFeedbackVariants.apply
    monkeypatch.setattr(
        TFV.TritonGatedFeedbackVariants, "apply", lambda *a: calls.append(1) or original(*a)
    )
    triples = feedback_variant_parity(case, training=training)
    assert len(calls) == 2, "both directions ran the Triton kernel"
    names = _names(triples)
    assert {"out", "d_x", "state0"} <= names and any("gate_h" in n for n in names)
    if FEEDBACK_CASES[case].get("layer_norm"):
        assert any("ln_x_gain" in n for n in names)
    _assert_close(triples, case)
    out = dict((n, g) for n, g, _ in triples)["out"]
    assert torch.all(out[1, 2:] == 0), "outputs at padded steps must be zero"


@pytest.mark.parametrize("case", ["all_lstm", "all_gru"])
def test_several_row_programs_and_column_tiles(case):
    """B = 20, H = 40: layer norm (+ projection) runs full-row programs (two of 16
    rows, 64-wide masked rows); the column-tile path is the non-LN cases above."""
    _assert_close(feedback_variant_parity(case, batch=20, hidden=40, steps=3), case)


def test_column_tiles_of_a_wide_layer():
    """H = 40 without layer norm or projection: two 32-column tiles per row block."""
    triples = feedback_variant_parity("nig_zoneout", batch=20, hidden=40, steps=3)
    assert mismatches(triples) == []


@pytest.mark.parametrize(
    "case,activation,layers",
    [("all_rnn", "relu", 3), ("cifg_peephole", "gelu", 3), ("all_lstm", "tanh", 1)],
)
def test_other_activations_and_depths(case, activation, layers):
    _assert_close(feedback_variant_parity(case, activation=activation, layers=layers), case)


def test_one_step():
    _assert_close(feedback_variant_parity("all_gru", steps=1), "all_gru")


@pytest.mark.parametrize("case", ["all_gru", "projection", "cifg_peephole"])
def test_bfloat16_inputs_accumulate_in_float32(case):
    """bf16 in and out, float32 state: as close to the float64 loop as the loop run in
    bf16 itself (within 2x, or 0.02 of each tensor's scale)."""
    bf16 = torch.bfloat16
    triples = feedback_variant_parity(case, dtype=bf16, training=False)
    got = dict((n, g) for n, g, _ in triples)
    assert got["out"].dtype == bf16 and got["d_x"].dtype == bf16
    loop = feedback_variant_parity(case, dtype=bf16, training=False, backend="python")
    assert scaled_error(triples) <= max(2 * scaled_error(loop), 0.02)


@pytest.fixture
def nan_graphs(monkeypatch):
    """Graph mode on CPU: run_steps keeps static buffers per shape as on CUDA, and each
    "replay" (the launches re-run on them) starts from NaN outputs: a capture's
    empty_like buffers hold garbage, so any output entry a launch does not write shows."""

    def capture(launch, inputs, outputs):
        static = {k: v.clone() for k, v in inputs.items()}
        static.update({k: torch.full_like(v, float("nan")) for k, v in outputs.items()})

        def replay():
            for k in outputs:
                static[k].fill_(float("nan"))
            launch(static)

        return replay, static

    monkeypatch.setattr(triton_graphs, "graphs_enabled", lambda device: True)
    monkeypatch.setattr(triton_graphs, "_capture", capture)
    triton_graphs._graphs.clear()
    yield
    triton_graphs._graphs.clear()


@pytest.mark.parametrize("case", ["all_lstm", "all_gru", "cifg_peephole"])
def test_static_graph_buffers_are_fully_written(case, nan_graphs):
    """Both directions replay one graph per shape (forward, backward) with their own
    inputs copied in; every output starts as NaN and the results still match."""
    triples = feedback_variant_parity(case)
    assert len(triton_graphs._graphs) == 2
    _assert_close(triples, case)


def test_inference_saves_nothing_and_matches_the_autograd_run(monkeypatch):
    """Under no_grad the kernel runs with save=False (no backward buffers): the same
    outputs as with autograd (up to float32 rounding: torch folds x @ W differently
    when W requires grad)."""
    saves = []
    original = TFV.forward
    monkeypatch.setattr(TFV, "forward", lambda *a: saves.append(a[-1]) or original(*a))
    torch.manual_seed(0)
    cfg = {**FEEDBACK_CASES["all_lstm"], "hidden_size": 8, "num_layers": 2}
    stack = build_stack(3, {**cfg, "connection": {"name": "gated_feedback"}}).eval()
    x, lengths = torch.randn(3, 5, 3), torch.tensor([5, 3, 1])
    with forced_backend("triton"):
        out, _ = stack(x, lengths)
        with torch.no_grad():
            out_ng, _ = stack(x, lengths)
    assert saves == [True, False] and not out_ng.requires_grad
    torch.testing.assert_close(out_ng, out.detach())


def test_repr_names_the_triton_variant_kernel():
    stack = build_stack(3, {"cell": "gru", "hidden_size": 4, "num_layers": 2, "zoneout": 0.1,
                            "connection": {"name": "gated_feedback"}})  # fmt: skip
    with forced_backend("triton"):
        assert "variant kernel, backend=triton" in repr(stack)
