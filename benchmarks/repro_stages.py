"""Wall time of `make repro`'s train stages on PyTorch's fused nn.* and on rnnlab's kernel.

    python -m benchmarks.repro_stages   # writes benchmarks/results/repro_stages.{json,md}

Runs the command of every train stage of dvc.yaml (``train@<ds>`` for params.yaml's
``pipeline``, ``train_ctc@<ds>`` for ``recognition``) with its own ``pipeline.<ds>.train``
overrides, twice, back to back so both see the same machine: ``model.fused=true`` (the
default LSTM on ``nn.LSTM``, the default path before ``fused=auto`` chose by speed) and
``model.fused=auto`` (the default now: the C++ kernel on CPU). Each run writes to a
temporary directory (``results/`` is not touched; W&B disabled) and is timed from
process start to exit, so start-up, the test pass and the gradient-flow probe count too.
Needs the prepared data (``make repro`` or ``dvc repro prepare prepare_ctc`` first).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
MODES = ("true", "auto")


def stages(params: dict) -> list[tuple[str, str]]:
    """(dataset, its train overrides) for every train stage of dvc.yaml."""
    out = []
    for group in ("pipeline", "recognition"):
        for key, item in (params.get(group) or {}).items():
            out.append((key, item.get("train", "") or ""))
    return out


def run_stage(key: str, overrides: str, fused: str, workdir: Path) -> dict:
    cmd = [
        sys.executable, "-m", "rnnlab.train", f"data={key}", "params_file=params.yaml",
        "ckpt_path=null", "auto_prepare=false", f"hydra.run.dir={workdir}",
        "callbacks.progress_bar.refresh_rate=0", "print_config=false",
        *shlex.split(overrides), f"model.fused={fused}",
    ]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "disabled"}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"train@{key} model.fused={fused} failed:\n{proc.stderr[-3000:]}")
    metrics = json.loads((workdir / "metrics.json").read_text())["metrics"]
    test = {k: round(v, 4) for k, v in metrics.items() if k.startswith("test/")}
    return {"dataset": key, "fused": fused, "seconds": round(seconds, 1), "test": test}


def markdown(records: list[dict]) -> str:
    lines = [
        "`python -m benchmarks.repro_stages` — each train stage of `make repro` (its own "
        "overrides from params.yaml) run with `model.fused=true` (nn.*) and "
        f"`model.fused=auto` (the C++ kernel on CPU), back to back; load average at the end "
        f"{os.getloadavg()[0]:.1f}.",
        "",
        "| stage | fused=true s | fused=auto s | speed-up |",
        "| --- | ---: | ---: | ---: |",
    ]
    by = {(r["dataset"], r["fused"]): r for r in records}
    total = dict.fromkeys(MODES, 0.0)
    for key in dict.fromkeys(r["dataset"] for r in records):
        old, new = by[(key, "true")]["seconds"], by[(key, "auto")]["seconds"]
        total["true"] += old
        total["auto"] += new
        lines.append(f"| train@{key} | {old} | {new} | {old / new:.2f}x |")
    lines.append(
        f"| all train stages | {total['true']:.1f} | {total['auto']:.1f} "
        f"| {total['true'] / total['auto']:.2f}x |"
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for key, overrides in stages(params):
            for fused in MODES:
                rec = run_stage(key, overrides, fused, Path(tmp) / f"{key}_{fused}")
                records.append(rec)
                print(json.dumps(rec), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "repro_stages.json").write_text(json.dumps(records, indent=1) + "\n")
    (RESULTS / "repro_stages.md").write_text(markdown(records))


if __name__ == "__main__":
    main()
