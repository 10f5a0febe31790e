"""Per-epoch cost of ``python -m rnnlab.train`` against a minimal hand-written loop.

    python -m benchmarks.pipeline_overhead          # part of make bench

Same model (rnnlab's default: 1-layer LSTM, hidden 128, last-step head), same data (the
adding problem, seq_len 100, batch 64, 2048 train / 256 val sequences), same optimiser
(Adam 1e-3, grad-norm clipping 1.0), one validation pass per epoch in both.

rnnlab.train is run as a user runs it, in a subprocess, with ``max_epochs`` 1 and 4,
plus Lightning's Timer callback; its time per epoch is the difference of the two runs'
fit times (read from the Timer state in ``last.ckpt``) divided by 3. That excludes
process start-up, Hydra composition, data generation, the sanity check and the first
(warm-up) epoch, but keeps everything that happens every epoch: Lightning's loop, logging (CSV logger), checkpointing and the
default callbacks (including the gradient-flow diagnostics); a second pair of runs with
``callbacks=none`` separates the callbacks' share from Lightning's own. The hand-written loop
runs in this process, median of 3 epochs after a warm-up epoch, measured before and
after the rnnlab runs (the mean of both medians) to average out machine drift.
Writes ``benchmarks/results/pipeline_overhead.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader

from rnnlab.data.synthetic import AddingDataModule
from rnnlab.nn import build_model

RESULTS = Path(__file__).parent / "results"
NUM_TRAIN, NUM_VAL, SEQ_LEN, BATCH = 1024, 256, 100, 64
MODEL = {"cell": "lstm", "hidden_size": 128, "num_layers": 1}


def hand_written_epochs(epochs: int, seed: int = 42) -> list[float]:
    """Seconds per epoch (train + validation) of the plainest correct PyTorch loop."""
    torch.manual_seed(seed)
    dm = AddingDataModule(
        seq_len=SEQ_LEN, num_train=NUM_TRAIN, num_val=NUM_VAL, num_test=64, batch_size=BATCH
    )
    dm.setup()
    model = build_model(MODEL, dm.io)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    train = DataLoader(dm.splits["train"], batch_size=BATCH, shuffle=True)
    val = DataLoader(dm.splits["val"], batch_size=BATCH)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        for inputs, lengths, targets in train:
            preds = model(inputs, lengths)
            loss = F.mse_loss(preds, targets.to(preds.dtype).reshape(preds.shape))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        model.eval()
        with torch.no_grad():
            total = 0.0
            for inputs, lengths, targets in val:
                preds = model(inputs, lengths)
                total += F.mse_loss(preds, targets.to(preds.dtype).reshape(preds.shape)).item()
        times.append(time.perf_counter() - start)
    return times


def rnnlab_train_seconds(epochs: int, out_dir: Path, callbacks: str) -> float:
    """Seconds rnnlab.train spent in ``fit`` up to its last checkpoint (Lightning's Timer).

    The Timer's state is saved in ``last.ckpt``; reading it there excludes process
    start-up and testing, which the per-epoch difference would cancel only noisily.
    """
    cmd = [
        sys.executable,
        "-m",
        "rnnlab.train",
        "data=adding",
        f"data.num_train={NUM_TRAIN}",
        f"data.num_val={NUM_VAL}",
        "data.num_test=64",
        f"data.seq_len={SEQ_LEN}",
        f"data.batch_size={BATCH}",
        f"model.hidden_size={MODEL['hidden_size']}",
        "model/cell=lstm",
        f"trainer.max_epochs={epochs}",
        "logger=csv",
        "test=false",
        "print_config=false",
        f"callbacks={callbacks}",
        "+callbacks.timer._target_=lightning.pytorch.callbacks.Timer",
        f"hydra.run.dir={out_dir}",
    ]
    if callbacks == "none":  # the Timer is read from the last checkpoint: keep one writer
        cmd += [
            "+callbacks.ckpt._target_=lightning.pytorch.callbacks.ModelCheckpoint",
            f"+callbacks.ckpt.dirpath={out_dir}/checkpoints",
            "+callbacks.ckpt.save_last=true",
        ]
    subprocess.run(cmd, check=True, capture_output=True)
    ckpt = torch.load(out_dir / "checkpoints" / "last.ckpt", weights_only=False)
    (timer,) = [v for k, v in ckpt["callbacks"].items() if k.startswith("Timer")]
    return float(timer["time_elapsed"]["train"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    before = statistics.median(hand_written_epochs(4)[1:])
    walls = {}
    with tempfile.TemporaryDirectory() as tmp:
        for callbacks in ("default", "none"):
            for epochs in (1, 4):
                out = Path(tmp) / f"{callbacks}_{epochs}"
                walls[f"{callbacks}_{epochs}"] = rnnlab_train_seconds(epochs, out, callbacks)
    after = statistics.median(hand_written_epochs(4)[1:])
    hand = (before + after) / 2
    per_epoch = (walls["default_4"] - walls["default_1"]) / 3
    bare = (walls["none_4"] - walls["none_1"]) / 3
    result = {
        "hand_written_s_per_epoch": round(hand, 3),
        "hand_written_before_after": [round(before, 3), round(after, 3)],
        "rnnlab_train_s_per_epoch": round(per_epoch, 3),
        "rnnlab_train_no_callbacks_s_per_epoch": round(bare, 3),
        "rnnlab_train_fit_s": {k: round(v, 2) for k, v in walls.items()},
        "overhead_pct": round(100 * (per_epoch / hand - 1), 1),
        "overhead_no_callbacks_pct": round(100 * (bare / hand - 1), 1),
        "setup": {
            "model": MODEL,
            "data": {"name": "adding", "seq_len": SEQ_LEN, "train": NUM_TRAIN, "val": NUM_VAL},
            "batch_size": BATCH,
            "rnnlab_train": "logger=csv, test=false, callbacks=default and callbacks=none",
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pipeline_overhead.json").write_text(json.dumps(result, indent=2))
    print(
        f"hand-written loop {hand:.2f} s/epoch; rnnlab.train {per_epoch:.2f} s/epoch "
        f"({result['overhead_pct']:+.1f}%), with callbacks=none {bare:.2f} s/epoch "
        f"({result['overhead_no_callbacks_pct']:+.1f}%)"
    )


if __name__ == "__main__":
    main()
