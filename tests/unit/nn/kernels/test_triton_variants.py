"""The cell variants on the Triton backend (nn/kernels/triton_variant*.py) against the loop.

Runs here, without a GPU, through Triton's interpreter (TRITON_INTERPRET=1, CPU tensors).
The reference is the per-step autograd loop of nn/variant_cells.py; the shared helper
(nn/kernels/triton_variant_parity.py, also run by make check-gpu) compares outputs, final
states and the gradient of every leaf — x, h0, c0, W_ih, W_hh, both biases, peepholes,
every layer-norm gain and bias, W_hr — with ragged lengths and an initial state, in
training (the same dropout/zoneout masks under a seed) and in eval (zoneout's
expectation). Tiny shapes: T=4, B=3, I=5, H=8 (P=3), plus one with several row
programs, K chunks and column tiles.
"""

import os
import subprocess
import sys

os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

from rnnlab.nn import RecurrentLayer, kernels  # noqa: E402
from rnnlab.nn import recurrent as recurrent_module  # noqa: E402
from rnnlab.nn.cells import CellActivations  # noqa: E402
from rnnlab.nn.kernels.triton_parity import forced_backend, mismatches  # noqa: E402
from rnnlab.nn.kernels.triton_variant_parity import CASES, variant_parity  # noqa: E402
from rnnlab.nn.variants import Variant  # noqa: E402

BASE = {"out", "h0_T", "d_x", "d_h0", "d_w_ih", "d_w_hh", "d_b_ih", "d_b_hh"}


def _expected_names(case):
    cell, opts, proj = CASES[case]
    names = set(BASE) | ({"c0_T", "d_c0"} if cell == "lstm" else set())
    names |= {"d_peephole"} if opts.get("peephole") else set()
    names |= {"d_w_hr"} if proj else set()
    if opts.get("layer_norm"):
        parts = ("x", "h", "c") if cell == "lstm" else ("x", "h")
        names |= {f"d_ln_{p}_{k}" for p in parts for k in ("gain", "bias")}
    return names


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_the_variant_loop(case, training):
    triples = variant_parity(case, training=training)
    assert {n for n, _, _ in triples} == _expected_names(case)
    assert mismatches(triples) == []
    out = dict((n, g) for n, g, _ in triples)["out"]
    assert torch.all(out[1, 2:] == 0) and torch.all(out[2, 3:] == 0), "padded steps: zeros"


@pytest.mark.parametrize("case", ["layer_norm_all_lstm", "dropout_zoneout_gru"])
def test_several_row_programs_k_chunks_and_column_tiles(case):
    """B = 20, H = 40: layer norm + projection run full-row programs (two of 16 rows,
    64-wide masked rows), dropout + zoneout GRU the column tiles (two of 32 columns);
    both a K loop of two 32-wide chunks and two 32-column tiles of dh_{t-1}."""
    assert mismatches(variant_parity(case, batch=20, hidden=40, steps=3)) == []


@pytest.mark.parametrize(
    "case,activation", [("cifg_peephole_zoneout", "gelu"), ("layer_norm_gru", "relu")]
)
def test_other_activations(case, activation):
    assert mismatches(variant_parity(case, activation=activation)) == []


@pytest.mark.parametrize("case", ["layer_norm_all_lstm", "layer_norm_gru"])
def test_bfloat16_inputs_accumulate_in_float32(case):
    bf16 = torch.bfloat16
    triples = variant_parity(case, dtype=bf16, training=False)
    assert mismatches(triples, bf16) == []
    got = dict((n, g) for n, g, _ in triples)
    assert got["out"].dtype == bf16 and got["d_x"].dtype == bf16


def test_mismatch_is_reported():
    name, got, want = variant_parity("layer_norm_rnn")[-1]
    assert mismatches([(name, got + 1e-3, want)]) and mismatches([(name, got, want)]) == []


def test_layer_runs_the_triton_variant_path(monkeypatch):
    """A bidirectional layer under RNNLAB_KERNEL=triton: its repr names the path, the
    Triton Function runs, and the numbers are the loop's (same zoneout masks)."""
    from rnnlab.nn.kernels.triton_variant import TritonVariantRecurrence

    torch.manual_seed(0)
    variant = Variant(lstm_variant="nig", peephole=True, layer_norm=True, zoneout=0.2)
    layer = RecurrentLayer(
        "lstm", 3, 8, bidirectional=True, proj_size=4, variant=variant,
        activations=CellActivations("tanh"),
    ).train()  # fmt: skip
    x = torch.randn(3, 4, 3, requires_grad=True)
    lengths = torch.tensor([4, 1, 3])
    calls = []
    original = TritonVariantRecurrence.apply
    monkeypatch.setattr(
        TritonVariantRecurrence, "apply", lambda *a: calls.append(1) or original(*a)
    )

    def run():
        torch.manual_seed(4)
        out, final = layer(x, lengths)
        loss = (out * out.detach().cos()).sum() + sum(s.sum() for s in final)
        return [out, *final, *torch.autograd.grad(loss, [x, *layer.parameters()])]

    with forced_backend("triton"):
        assert "variant kernel, backend=triton" in repr(layer)
        got = run()
    assert len(calls) == 2, "both directions must run the Triton variant Function"
    monkeypatch.setattr(recurrent_module, "kernel_runs", lambda variant, x: False)
    with forced_backend("python"):
        assert "variant loop" in layer.path()
        want = run()
    assert len(calls) == 2
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=2e-5, rtol=2e-4)
    kernels.reset_backend()


# Compiles the gate kernels for sm_90 (Hopper: the H100/H200 this lab's GPU runs use)
# without a GPU — the frontend, the LLVM/PTX lowering and ptxas, which the interpreter
# skips — and prints each kernel's shared memory. A fresh process: under
# TRITON_INTERPRET=1 the kernels are interpreted objects, not compilable ones.
COMPILE = """
import triton, triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from rnnlab.nn.activations import KERNEL_CODES as C
from rnnlab.nn.kernels import triton_variant_backward as KB, triton_variant_kernels as K
from rnnlab.nn.kernels import triton_feedback_variants_kernels as KF
from rnnlab.nn.kernels.triton_variant import tiles
base = dict(ACT=C["tanh"], ACT_C=C["softsign"], GATE=C["sigmoid"], PREC="ieee", OPER=tl.float32)
full = dict(G=4, CELL=1, VAR=1, PEEP=True, LN=True, ZONE=1, PROJ=True, BK=16)
tile, _ = tiles(32, 256, 128, True)
opts = {k: tile.pop(k) for k in ("num_warps", "num_stages")}
kernels = [(K.fwd_step, dict(base, **full, **tile, DROP=True, SAVE=True, GH_IN=False)),
           (K.fwd_step, dict(base, **full, **tile, DROP=False, SAVE=True, GH_IN=True)),
           (KB.bwd_gates, dict(base, **full, **tile)),
           (KF.gfv_fwd_in, dict(L=3, G=4, KC=2, LN=True, SAVE=True, BB=16, BH=tile["BH"])),
           (KF.gfv_bwd_x, dict(G=4, LN=True, BB=16, BH=tile["BH"])),
           (KB.bwd_dh, dict(G=4, CELL=1, DROP=True, BB=32, BJ=32, BK=32, PREC="ieee",
                            OPER=tl.float32))]
for fn, consts in kernels:
    sig = {n: "constexpr" if n in consts else "fp32" if n == "z" else "*i64"
           if n == "len_ptr" else "i32" if n in ("t", "j", "B", "T", "H", "HH", "N", "A_STRIDE",
                                                 "DD_STRIDE") else "*fp32"
           for n in fn.arg_names}
    src = ASTSource(fn, sig, {(fn.arg_names.index(k),): v for k, v in consts.items()})
    k = triton.compile(src, target=GPUTarget("cuda", 90, 32), options=opts)
    print(fn.fn.__name__ + ("_gh_in" if consts.get("GH_IN") else ""), k.metadata.shared)
"""


def test_kernels_compile_for_sm90_within_shared_memory():
    """LSTM with every option (full rows, H = 256, P = 128), the dh product and the
    gated-feedback variant prologue / LN(W u) backward (3 layers) compile for sm_90, each
    within the H100/H200's 227 KB of shared memory per block."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run(
        [sys.executable, "-c", COMPILE], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    shared = dict(line.split() for line in proc.stdout.strip().splitlines())
    assert set(shared) == {
        "fwd_step",
        "fwd_step_gh_in",
        "bwd_gates",
        "bwd_dh",
        "gfv_fwd_in",
        "gfv_bwd_x",
    }
    assert all(int(v) <= 227 * 1024 for v in shared.values()), shared


@pytest.mark.parametrize("case", ["layer_norm_all_lstm", "layer_norm_gru", "cifg_peephole_zoneout"])
def test_inference_saves_nothing_and_matches_the_loop(case):
    """Under no_grad the kernels run without saving (SAVE=False): same outputs."""
    from rnnlab.nn.kernels.triton_variant_parity import variant_layer

    layer = variant_layer(case).eval()
    x = torch.randn(3, 4, 5, dtype=torch.float64)
    lengths = torch.tensor([4, 2, 3])
    results = []
    for backend in ("triton", "python"):
        with forced_backend(backend), torch.no_grad():
            assert layer.path().startswith("variant kernel" if backend == "triton" else "variant")
            out, final = layer(x.float(), lengths)
        results.append([out, *final])
    for g, w in zip(*results, strict=True):
        torch.testing.assert_close(g, w, atol=2e-5, rtol=2e-4)
