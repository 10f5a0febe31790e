"""make bench-gpu / make check-gpu on a machine without CUDA: one line, exit status 2;
they import torch and Triton only (no Hydra, Lightning, DVC or W&B)."""

import subprocess
import sys

import torch

from benchmarks import check_gpu, gpu
from tests.helpers import ROOT


def test_bench_gpu_without_cuda_says_so_in_one_line_and_exits_2(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src"), "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", "--out", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout.strip() == gpu.NO_CUDA and proc.stderr == ""
    assert not list(tmp_path.iterdir())  # nothing written


def test_check_gpu_without_cuda_exits_2(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert check_gpu.main() == 2
    assert capsys.readouterr().out.strip() == check_gpu.NO_CUDA


def test_gpu_scripts_import_no_pipeline_framework():
    code = (
        "import sys, benchmarks.gpu, benchmarks.check_gpu, rnnlab.nn.kernels.triton_parity\n"
        "bad = {m.split('.')[0] for m in sys.modules} & "
        "{'hydra', 'omegaconf', 'lightning', 'pytorch_lightning', 'dvc', 'wandb'}\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def test_results_table_has_one_row_per_record():
    meta = {"device": "X", "torch": "t", "triton": "3", "cuda": "12", "repeats": 20}
    rec = {"cell": "lstm", "impl": "triton", "activation": "relu", "dtype": "bfloat16",
           "shape": [100, 64, 128, 256], "connection": "none", "fwd_ms": 1.0,
           "fwdbwd_ms": 3.0, "peak_mb": 10.0, "speed_vs_cudnn_fwd": 0.9,
           "speed_vs_torch_ops_fwdbwd": 7.5}  # fmt: skip
    text = gpu.markdown(meta, [rec, {**rec, "impl": "torch_ops"}])
    rows = [line for line in text.splitlines() if line.startswith("| lstm")]
    assert len(rows) == 2 and "0.90x" in rows[0] and "7.50x" in rows[0] and "| - |" in rows[0]
