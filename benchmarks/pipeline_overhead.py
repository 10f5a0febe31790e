"""Per-epoch cost of ``python -m rnnlab.train`` against a minimal hand-written loop.

    python -m benchmarks.pipeline_overhead          # part of make bench

Same model (rnnlab's default: 1-layer LSTM, hidden 128, last-step head), same data (the
adding problem, seq_len 100, batch 64, 4096 train / 512 val sequences: 64 optimizer
steps and 8 validation batches per epoch), same optimiser (Adam 1e-3, grad-norm clipping
1.0), one validation pass per epoch in both, the same number of torch threads (the
default: one per core) in both.

Why 4096 sequences: an epoch must be long enough that what happens once per epoch
(checkpoint writes, the gradient-flow probe: one validation batch replayed step by step,
forward and backward, about three training steps' time) weighs what it weighs in a real
run. With 1024 sequences (16 steps, under a second per epoch) the probe alone is ~18 %
of the epoch, while ``data=adding`` itself defaults to 10000 sequences (157 steps).
4096 is between the two and keeps the whole benchmark near three minutes. The
per-epoch fixed costs and the per-step overhead are reported separately, so a shorter
or longer epoch can be worked out from the JSON.

rnnlab.train is run as a user runs it, in a subprocess, for 5 epochs, plus Lightning's
Timer callback and with every epoch's checkpoint kept: each checkpoint holds the Timer's
state when it was written, so consecutive differences are whole epochs, and rnnlab's
time per epoch is the median of the 4 epochs after the first (keeping every epoch's
checkpoint writes one file more in an epoch that does not improve ``val/loss``: a bias
against rnnlab). That excludes process
start-up, Hydra composition, data generation, the sanity check and the first (warm-up)
epoch, and a burst of load on a shared machine spoils one epoch, not the estimate; it
keeps everything that happens every epoch: Lightning's loop, logging (CSV logger),
checkpointing (atomic, fsynced) and the default callbacks (including the gradient-flow
diagnostics). A second run with ``callbacks=none`` (one ModelCheckpoint kept to carry
the Timer) separates the callbacks' share from Lightning's own. A third run (2 epochs,
default callbacks) under Lightning's SimpleProfiler splits the cost: the fixed
per-epoch costs (the gradient-flow probe, the checkpoint hooks with their writes) and
the time of one training batch; the rest of the overhead is reported per training step.
The hand-written loop runs in this process (median of 3 epochs after a warm-up epoch)
before, between and after the two rnnlab runs; each rnnlab run is compared with the
mean of the hand-written medians just before and after it, to follow machine drift.
Writes ``benchmarks/results/pipeline_overhead.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from rnnlab.data.probes import AddingDataModule
from rnnlab.nn import build_model

RESULTS = Path(__file__).parent / "results"
NUM_TRAIN, NUM_VAL, SEQ_LEN, BATCH = 4096, 512, 100, 64
TRAIN_STEPS = -(-NUM_TRAIN // BATCH)
MODEL = {"cell": "lstm", "hidden_size": 128, "num_layers": 1}
EPOCHS = 5  # per rnnlab.train run: the median of the 4 epochs after the first


def hand_written_epochs(epochs: int, seed: int = 42) -> list[tuple[float, float]]:
    """(seconds per epoch, seconds of its training part) of the plainest correct loop."""
    torch.manual_seed(seed)
    dm = AddingDataModule(
        seq_len=SEQ_LEN, num_train=NUM_TRAIN, num_val=NUM_VAL, num_test=64, batch_size=BATCH
    )
    dm.setup()
    model = build_model(MODEL, dm.io)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    # Plain TensorDatasets and the default collate: what a user writes by hand.
    train = DataLoader(TensorDataset(*dm.splits["train"].tensors), batch_size=BATCH, shuffle=True)
    val = DataLoader(TensorDataset(*dm.splits["val"].tensors), batch_size=BATCH)
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
        trained = time.perf_counter()
        model.eval()
        with torch.no_grad():
            total = 0.0
            for inputs, lengths, targets in val:
                preds = model(inputs, lengths)
                total += F.mse_loss(preds, targets.to(preds.dtype).reshape(preds.shape)).item()
        end = time.perf_counter()
        times.append((end - start, trained - start))
    return times


def rnnlab_command(epochs: int, out_dir: Path, callbacks: str) -> list[str]:
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
    return cmd


def rnnlab_epoch_seconds(epochs: int, out_dir: Path, callbacks: str) -> list[float]:
    """Seconds each epoch after the first took in ``rnnlab.train`` (Lightning's Timer).

    Every epoch's checkpoint is kept (``save_top_k=-1``); each holds the Timer's state at
    the moment it was written, once per epoch at the same point of the loop, so
    consecutive differences are whole epochs: no process start-up, no test, no warm-up.
    """
    cmd = rnnlab_command(epochs, out_dir, callbacks)
    if callbacks == "none":  # the Timer is read from the checkpoints: keep one writer
        cmd += [
            "+callbacks.ckpt._target_=lightning.pytorch.callbacks.ModelCheckpoint",
            f"+callbacks.ckpt.dirpath={out_dir}/checkpoints",
            "+callbacks.ckpt.save_top_k=-1",
            "+callbacks.ckpt.save_last=true",
        ]
    else:
        cmd += ["callbacks.model_checkpoint.save_top_k=-1"]
    subprocess.run(cmd, check=True, capture_output=True, env=_env())
    elapsed = {}
    for path in (out_dir / "checkpoints").glob("*.ckpt"):
        if path.name != "last.ckpt":
            ckpt = torch.load(path, weights_only=False)
            (timer,) = [v for k, v in ckpt["callbacks"].items() if k.startswith("Timer")]
            elapsed[ckpt["epoch"]] = float(timer["time_elapsed"]["train"])
    times = [elapsed[e] for e in sorted(elapsed)]
    assert len(times) == epochs, f"{out_dir}: {len(times)} epoch checkpoints, not {epochs}"
    return [b - a for a, b in zip(times, times[1:])]


def profiled_breakdown(out_dir: Path) -> dict[str, dict[str, float]]:
    """{action: {"mean_s", "calls"}} from a 2-epoch run under Lightning's SimpleProfiler."""
    cmd = rnnlab_command(2, out_dir, "default") + [
        "+trainer.profiler._target_=lightning.pytorch.profilers.SimpleProfiler",
        f"+trainer.profiler.dirpath={out_dir}",
        "+trainer.profiler.filename=profile",
    ]
    subprocess.run(cmd, check=True, capture_output=True, env=_env())
    actions = {}
    for line in (out_dir / "fit-profile.txt").read_text().splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) >= 6 and cells[2] not in ("-", "Mean duration (s)"):
            try:
                actions[cells[1]] = {"mean_s": float(cells[2]), "calls": int(cells[3])}
            except ValueError:
                continue
    return actions


def _env() -> dict[str, str]:
    """The subprocess's environment: this process's torch thread count (OMP_NUM_THREADS)."""
    return {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}


def _action(actions: dict, prefix: str, suffix: str = "") -> dict[str, float]:
    (name,) = [a for a in actions if a.startswith(prefix) and a.endswith(suffix)]
    return actions[name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads in both loops (default: torch's, one per core); 1 is far less "
        "sensitive to other processes on a shared machine",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    # The hand-written loop runs before, between and after the two rnnlab runs; each rnnlab
    # run is compared with the mean of the hand-written medians just before and after it.
    hands = [hand_written_epochs(4)[1:]]
    epochs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for callbacks in ("default", "none"):
            epochs[callbacks] = rnnlab_epoch_seconds(EPOCHS, Path(tmp) / callbacks, callbacks)
            hands.append(hand_written_epochs(4)[1:])
        actions = profiled_breakdown(Path(tmp) / "profiled")
    medians = [statistics.median(t for t, _ in h) for h in hands]
    hand_default, hand_none = (medians[0] + medians[1]) / 2, (medians[1] + medians[2]) / 2
    hand = statistics.mean(medians)
    hand_step = statistics.median(train for h in hands for _, train in h) / TRAIN_STEPS
    per_epoch = statistics.median(epochs["default"])
    bare = statistics.median(epochs["none"])

    probe = _action(actions, "[Callback]GradientFlow.on_train_epoch_end")["mean_s"]
    # ModelCheckpoint saves in on_train_epoch_end or on_validation_end (Lightning decides).
    checkpoint = sum(
        _action(actions, "[Callback]ModelCheckpoint", hook)["mean_s"]
        for hook in (".on_train_epoch_end", ".on_validation_end")
    )
    saves = _action(actions, "save_checkpoint")
    fixed = {"gradient_flow_probe": probe, "checkpoint_hook": checkpoint}
    rest_per_step = (per_epoch - hand_default - sum(fixed.values())) / TRAIN_STEPS
    result = {
        "hand_written_s_per_epoch": round(hand, 3),
        "hand_written_before_between_after": [round(m, 3) for m in medians],
        "rnnlab_train_s_per_epoch": round(per_epoch, 3),
        "rnnlab_train_no_callbacks_s_per_epoch": round(bare, 3),
        "rnnlab_train_epochs_s": {k: [round(v, 3) for v in vs] for k, vs in epochs.items()},
        "overhead_pct": round(100 * (per_epoch / hand_default - 1), 1),
        "overhead_no_callbacks_pct": round(100 * (bare / hand_none - 1), 1),
        "breakdown": {
            "note": (
                "from a 2-epoch default-callbacks run under SimpleProfiler; fixed costs "
                "are per epoch, rest_of_overhead is (rnnlab - hand-written - fixed) per "
                "training step"
            ),
            "fixed_per_epoch_s": {k: round(v, 4) for k, v in fixed.items()},
            "fixed_per_epoch_pct_of_hand_written": round(100 * sum(fixed.values()) / hand, 1),
            "checkpoint_save_s": round(saves["mean_s"], 4),
            "checkpoint_saves": saves["calls"],
            "train_steps_per_epoch": TRAIN_STEPS,
            "hand_written_s_per_train_step": round(hand_step, 4),
            "rnnlab_s_per_training_batch": round(
                _action(actions, "run_training_batch")["mean_s"], 4
            ),
            "rnnlab_s_per_train_dataloader_next": round(
                _action(actions, "[_TrainingEpochLoop].train_dataloader_next")["mean_s"], 5
            ),
            "rest_of_overhead_s_per_train_step": round(rest_per_step, 5),
            "rest_of_overhead_pct_per_train_step": round(100 * rest_per_step / hand_step, 1),
        },
        "setup": {
            "model": MODEL,
            "data": {"name": "adding", "seq_len": SEQ_LEN, "train": NUM_TRAIN, "val": NUM_VAL},
            "batch_size": BATCH,
            "torch_threads": torch.get_num_threads(),
            "rnnlab_train": "logger=csv, test=false, callbacks=default and callbacks=none",
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pipeline_overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"hand-written loop {hand:.2f} s/epoch; rnnlab.train {per_epoch:.2f} s/epoch "
        f"({result['overhead_pct']:+.1f}%), with callbacks=none {bare:.2f} s/epoch "
        f"({result['overhead_no_callbacks_pct']:+.1f}%); fixed per epoch: gradient-flow "
        f"probe {probe:.3f} s, checkpoint hook {checkpoint:.3f} s; rest "
        f"{1000 * rest_per_step:+.2f} ms per training step of {1000 * hand_step:.1f} ms"
    )


if __name__ == "__main__":
    main()
