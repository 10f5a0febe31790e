"""``make check-gpu``: the Triton backend on a real CUDA device, in under 5 minutes.

    PYTHONPATH=src python -m benchmarks.check_gpu

The parity checks of tests/unit/nn/kernels/test_triton_*.py (the same helpers,
rnnlab/nn/kernels/triton_parity.py) on CUDA tensors instead of the interpreter, so
the compiled kernels and the CUDA-graph replay are what is checked: every cell x
{tanh, relu, gelu, silu/softsign with hard_sigmoid gates} x {ragged + initial state,
full + zero state}, a bfloat16 check, the gated-feedback stack (1-3 layers, dropout
masks), the cell variants' Triton kernel against the variant loop (every option at once
on an LSTMP, and a GRU with dropout and zoneout; training masks; several programs),
gated feedback with variants against the variant loop (every option on LSTM, GRU), a replay of a second batch through a captured graph, and two short
``python -m rnnlab.train trainer=gpu`` runs on the Triton backend (a relu LSTM with
``trainer.precision=bf16-mixed``, a 2-layer gated-feedback GRU; the training CLI needs
the project installed: Hydra, Lightning). One line per check, then ``N passed, N
failed``; exit status 1 if any failed. Without CUDA: one line, exit status 2.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
NO_CUDA = (
    "benchmarks.check_gpu: no CUDA device (torch.cuda.is_available() is False); nothing checked"
)
TRAIN = [
    "trainer=gpu", "print_config=false", "logger=csv", "data.num_train=256", "data.num_val=64",
    "data.num_test=64", "data.batch_size=32", "data.seq_len=50", "model.hidden_size=64",
    "callbacks.progress_bar.refresh_rate=0", "trainer.max_epochs=1",
    "trainer.limit_train_batches=4", "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
]  # fmt: skip
RUNS = {
    "train relu LSTM bf16-mixed": ["model/cell=lstm", "model/activation=relu",
                                   "trainer.precision=bf16-mixed"],
    "train gated-feedback GRU": ["model/cell=gru", "model/activation=gelu",
                                 "model/connection=gated_feedback", "model.num_layers=2"],
}  # fmt: skip


def parity_checks() -> dict[str, Callable[[], list[str]]]:
    """name -> a function returning the mismatching tensors ([] = pass)."""
    from rnnlab.nn.kernels.triton_parity import (
        ACTS,
        feedback_parity,
        mismatches,
        recurrence_parity,
    )

    checks = {}
    for cell in ("rnn", "lstm", "gru", "indrnn"):
        for acts in ACTS:
            for ragged in (True, False):
                name = f"parity {cell} {'/'.join(acts)} {'ragged+h0' if ragged else 'full'}"
                checks[name] = lambda c=cell, a=acts, r=ragged: mismatches(
                    recurrence_parity(c, a, "cuda", ragged=r)
                )
    bf16 = torch.bfloat16
    checks["bf16 lstm gelu"] = lambda: mismatches(
        recurrence_parity("lstm", ACTS[2], "cuda", bf16, batch=4, steps=40, hidden=64), bf16
    )
    checks["graph replay, second batch"] = lambda: mismatches(
        recurrence_parity("gru", ACTS[1], "cuda", seed=7)
    )
    for cell in ("rnn", "lstm", "gru"):
        for layers in (1, 2, 3):
            checks[f"gated feedback {cell} {layers} layers"] = lambda c=cell, n=layers: mismatches(
                feedback_parity(c, "gelu", n, "cuda")
            )
    checks["gated feedback gru dropout"] = lambda: mismatches(
        feedback_parity("gru", "tanh", 3, "cuda", dropout=0.4)
    )
    from rnnlab.nn.kernels.triton_variant_parity import variant_parity

    # 6 steps: both sides run float32 (the masks are drawn in it); at 8+ steps the loop's
    # own float32 rounding of the layer-norm LSTMP's gradients passes 2e-5 (the C++
    # variant kernel differs from it as much)
    for case in ("layer_norm_all_lstm", "dropout_zoneout_gru"):
        checks[f"variant {case} (train)"] = lambda c=case: mismatches(
            variant_parity(c, "cuda", batch=20, steps=6, hidden=40)
        )
    from rnnlab.nn.kernels.triton_variant_parity import feedback_variant_parity, scaled_error

    # gated feedback with variants: the loop runs in float32 on CUDA when training draws
    # masks, so the layer-norm cases compare relative to each tensor's scale
    for case in ("all_lstm", "all_gru", "cifg_peephole"):
        checks[f"gated feedback variants {case} (train)"] = lambda c=case: (
            [f"scaled error {e:.2e} > 1e-4"]
            if (e := scaled_error(feedback_variant_parity(c, "cuda", batch=20, hidden=40))) > 1e-4
            else []
        )

    def feedback_variants_bf16() -> list[str]:
        """bf16 products (rounded S and a_j, unlike the interpreter's float32 ones) no
        further from the float64 loop than 2x the loop run in bf16 itself, or 0.02."""
        bf16, bad = torch.bfloat16, []
        for case in ("all_lstm", "all_gru"):
            got = scaled_error(feedback_variant_parity(case, "cuda", bf16, training=False))
            loop = feedback_variant_parity(case, "cuda", bf16, training=False, backend="python")
            if got > max(2 * scaled_error(loop), 0.02):
                bad.append(
                    f"{case}: scaled error {got:.3f}, the bf16 loop's {scaled_error(loop):.3f}"
                )
        return bad

    checks["gated feedback variants bf16"] = feedback_variants_bf16
    return checks


def train_check(overrides: list[str]) -> list[str]:
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "RNNLAB_KERNEL": "triton", "WANDB_MODE": "offline"}
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")])
        )
        cmd = [sys.executable, "-m", "rnnlab.train", *TRAIN, *overrides, f"hydra.run.dir={out}"]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
        if proc.returncode:
            return [f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"]
        log = Path(out, "train.log").read_text() if Path(out, "train.log").exists() else ""
        if "backend=triton for cuda" not in log:
            return ["train.log does not show the Triton backend on CUDA"]
        return []


def main() -> int:
    if not torch.cuda.is_available():
        print(NO_CUDA)
        return 2
    os.environ.pop("TRITON_INTERPRET", None)
    checks = parity_checks()
    checks.update({name: (lambda o=o: train_check(o)) for name, o in RUNS.items()})
    passed = failed = 0
    for name, check in checks.items():
        start = time.perf_counter()
        try:
            bad = check()
        except Exception as err:  # a crash is a failed check, the others still run
            bad = [f"{type(err).__name__}: {err}".splitlines()[0]]
            traceback.print_exc(file=sys.stderr)
        took = time.perf_counter() - start
        status = "PASS" if not bad else "FAIL"
        passed, failed = passed + (not bad), failed + bool(bad)
        print(f"{status} {name} ({took:.1f} s){'' if not bad else ': ' + '; '.join(bad)}")
        sys.stdout.flush()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
