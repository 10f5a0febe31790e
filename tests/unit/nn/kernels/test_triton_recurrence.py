"""The Triton backend of the recurrent kernel (nn/kernels/triton_recurrence*.py).

Runs here, without a GPU, through Triton's interpreter: TRITON_INTERPRET=1 is set at
import (Triton reads it when the kernels are decorated, i.e. on the first import of
triton_recurrence_kernels) and the tensors are CPU tensors. Parity is against the
torch-ops backend in float64 (nn/kernels/triton_parity.py, shared with make check-gpu):
every cell x {tanh, relu, gelu, silu/softsign with hard_sigmoid gates} x {ragged
lengths with a random initial state, full lengths from zero}: outputs, final states and
every gradient.
"""

import os

os.environ["TRITON_INTERPRET"] = "1"

import ast  # noqa: E402
import logging  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from rnnlab.nn import build_stack, kernels  # noqa: E402
from rnnlab.nn.kernels import backend_for, describe_backend, recurrence  # noqa: E402
from rnnlab.nn.kernels.triton_parity import (  # noqa: E402
    ACTS,
    mismatches,
    recurrence_inputs,
    recurrence_parity,
)

CELLS = ("rnn", "lstm", "gru", "indrnn")


@pytest.fixture
def triton_backend(monkeypatch):
    monkeypatch.setenv("RNNLAB_KERNEL", "triton")
    kernels.reset_backend()
    yield
    kernels.reset_backend()


@pytest.mark.parametrize("ragged", [True, False], ids=["ragged_h0", "full_zero_state"])
@pytest.mark.parametrize("acts", ACTS, ids=lambda a: "-".join(a))
@pytest.mark.parametrize("cell", CELLS)
def test_matches_torch_ops_outputs_states_and_every_gradient(cell, acts, ragged):
    triples = recurrence_parity(cell, acts, ragged=ragged)
    assert {n for n, _, _ in triples} >= {"out", "h_T", "d_gx", "d_w_hh", "d_b_ih", "d_h0"}
    assert mismatches(triples) == []


def test_several_tiles_per_step():
    """B = 70 (two 64-row tiles), H = 40 (two 32-column tiles, K loop of two blocks,
    masked edges): every tile reads the whole h_{t-1} and writes only its own part."""
    triples = recurrence_parity("lstm", ACTS[2], batch=70, steps=3, hidden=40)
    assert mismatches(triples) == []


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bfloat16_inputs_accumulate_in_float32(cell):
    triples = recurrence_parity(cell, ("gelu", "gelu", "sigmoid"), dtype=torch.bfloat16)
    assert mismatches(triples, torch.bfloat16) == []
    got = dict((n, g) for n, g, _ in triples)
    assert got["out"].dtype == torch.bfloat16 and got["d_gx"].dtype == torch.bfloat16
    assert got["h_T"].dtype == torch.bfloat16  # h0 was bf16: the state comes back in it
    assert got["d_w_hh"].dtype == torch.float32  # the parameter's dtype


def test_mismatch_is_reported():
    """The parity check can fail: a perturbed result is named."""
    triples = recurrence_parity("gru", ACTS[1])
    name, got, want = triples[3]
    assert mismatches([(name, got + 1e-3, want)]) and mismatches([(name, got, want)]) == []


def test_padded_steps_output_zeros_and_keep_the_state(triton_backend):
    (gx, w_hh, b_ih, b_hh, h0, c0), lengths, _ = recurrence_inputs("lstm", "cpu")
    gx, w_hh, b_ih, b_hh, h0, c0 = (t.float() for t in (gx, w_hh, b_ih, b_hh, h0, c0))
    gx[1, 2:] = 1e4  # garbage in the padding must not leak
    out, (h, c) = recurrence("lstm", ACTS[1], gx, w_hh, b_hh, h0, c0, lengths, b_ih)
    alone, (h1, c1) = recurrence(
        "lstm", ACTS[1], gx[1:2, :2], w_hh, b_hh, h0[1:2], c0[1:2], lengths[1:2], b_ih
    )
    assert torch.all(out[1, 2:] == 0)
    torch.testing.assert_close(out[1, :2], alone[0])
    torch.testing.assert_close(h[1], h1[0])
    torch.testing.assert_close(c[1], c1[0])


def test_no_grad_forward_matches_and_builds_no_graph(triton_backend):
    (gx, w_hh, b_ih, b_hh, h0, c0), lengths, _ = recurrence_inputs("gru", "cpu")
    args = [t.float().requires_grad_() for t in (gx, w_hh, b_hh, h0)]
    out, _ = recurrence("gru", ACTS[2], *args, c0.float(), lengths, b_ih.float())
    with torch.no_grad():
        out_ng, _ = recurrence("gru", ACTS[2], *args, c0.float(), lengths, b_ih.float())
    assert out.grad_fn is not None and out_ng.grad_fn is None
    torch.testing.assert_close(out_ng, out.detach())


def test_stack_runs_triton_and_matches_the_cpp_kernel(monkeypatch, triton_backend):
    """A relu LSTM stack (2 layers, bidirectional, ragged) end to end: repr and numbers."""
    torch.manual_seed(0)
    spec = {"cell": "lstm", "activation": "relu", "hidden_size": 8, "num_layers": 2}
    stack = build_stack(5, {**spec, "bidirectional": True})
    x = torch.randn(3, 6, 5)
    lengths = torch.tensor([6, 3, 1])
    assert "backend=triton" in repr(stack)
    out, _ = stack(x, lengths)
    grads = torch.autograd.grad(out.sum(), list(stack.parameters()))
    monkeypatch.setenv("RNNLAB_KERNEL", "cpp")
    kernels.reset_backend()
    assert "backend=cpp" in repr(stack)
    ref, _ = stack(x, lengths)
    ref_grads = torch.autograd.grad(ref.sum(), list(stack.parameters()))
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=2e-4)
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=2e-4)


def test_backend_choice(monkeypatch, triton_backend, caplog):
    x = torch.zeros(2)
    with caplog.at_level(logging.INFO, logger="rnnlab.nn.kernels"):
        assert backend_for(x) == "triton" and backend_for(x) == "triton"
    assert [r.getMessage() for r in caplog.records].count(
        "rnnlab recurrent kernel: backend=triton for cpu float32 tensors (RNNLAB_KERNEL=triton)"
    ) == 1  # logged once
    assert backend_for(x.double()) == "python"  # float64 is not a Triton dtype
    assert describe_backend(x) == "triton"
    monkeypatch.setenv("RNNLAB_KERNEL", "auto")
    kernels.reset_backend()
    assert backend_for(x) == "cpp"  # auto keeps CPU tensors on the C++ kernel
    monkeypatch.setenv("RNNLAB_KERNEL", "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    kernels.reset_backend()
    with pytest.raises(
        RuntimeError, match="RNNLAB_KERNEL=triton on a cpu tensor.*TRITON_INTERPRET=1"
    ):
        backend_for(x)
    assert describe_backend(x).startswith("triton unavailable")


def test_kernel_modules_import_no_name_from_the_package_itself():
    """No import cycle (issue 11): the modules kernels/__init__ imports read
    ``rnnlab.nn.kernels`` only for its submodules, never a name __init__ defines."""
    pkg = Path(kernels.__file__).parent
    submodules = {p.stem for p in pkg.glob("*.py")}
    imported_by_init = ("backend", "torch_ops", "gated_feedback", "gated_feedback_torch_ops")
    for path in (pkg / f"{m}.py" for m in imported_by_init):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "rnnlab.nn.kernels":
                names = {a.name for a in node.names}
                assert names <= submodules, f"{path.name} imports {names - submodules}"
    init = (pkg / "__init__.py").read_text()
    assert "noqa: E402" not in init  # every import at the top
