"""Peak memory of preparing a transcribed-speech corpus, against the size of what it writes.

    .venv/bin/python -m benchmarks.prepare_memory [--hours 8] [--src DIR ...] [--work-dir DIR]

Writes ``--hours`` of 16 kHz FLAC clips (4-16 s each, tones plus noise; the content does
not matter for memory) and a manifest ``path,transcript,speaker``, then runs the README's
``python -m rnnlab.data.prepare data=speech_transcripts prepare.manifest=<csv>`` with its
defaults in a fresh process and records that process's peak resident set size
(``wait4``'s ``ru_maxrss``) and the size of ``data/processed/<name>``. Each ``--src`` is a
``src/`` folder to run (default: this checkout's); give an older checkout's too to compare
side by side, e.g. ``git worktree add /tmp/old <commit>`` and ``--src /tmp/old/src --src
src``. The runs alternate (``--repeats`` rounds). Writes
``benchmarks/results/prepare_memory.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
WORDS = "the quick brown fox jumps over a lazy dog and then runs away into the forest".split()


def write_corpus(folder: Path, hours: float, seed: int = 0) -> tuple[Path, int, float]:
    """Clips and manifest.csv under ``folder``; returns (manifest, clips, seconds)."""
    rng, pick = np.random.default_rng(seed), random.Random(seed)
    (folder / "clips").mkdir(parents=True, exist_ok=True)
    rows, total, i = ["path,transcript,speaker"], 0.0, 0
    while total < hours * 3600:
        seconds = float(rng.uniform(4, 16))
        t = np.arange(int(seconds * 16000)) / 16000
        wave = 0.1 * np.sin(2 * np.pi * (200 + 50 * np.sin(3 * t)) * t)
        wave = (wave + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
        sf.write(folder / "clips" / f"u{i}.flac", wave, 16000)
        words = " ".join(pick.choice(WORDS) for _ in range(int(seconds * 2.5)))
        rows.append(f"clips/u{i}.flac,{words},spk{i % 40}")
        total, i = total + seconds, i + 1
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest, i, total


def prepare_once(src: Path, manifest: Path, work: Path) -> dict:
    """One prepare in a fresh interpreter; its peak RSS and the bytes it wrote."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, "-m", "rnnlab.data.prepare", "data=speech_transcripts",
           f"prepare.manifest={manifest}", f"paths.data_dir={work / 'data'}",
           f"hydra.run.dir={work / 'hydra'}"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"prepare failed with {src}:\n{stderr[-3000:]}")
    written = sum(p.stat().st_size for p in (work / "data" / "processed").rglob("*.pt"))
    return {
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "written_mb": round(written / 2**20, 1),
    }


def source_label(src: Path) -> str:
    """The commit (``+changes`` when the tree is dirty) of the checkout ``src`` is in."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(src), *args], capture_output=True, text=True)
        return out.stdout.strip() if out.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return str(src)
    return commit + ("+changes" if git("status", "--porcelain", "--", ".") else "")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--src", action="append", type=Path, help="src/ folders (default: ours)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--work-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    srcs = [p.resolve() for p in (args.src or [ROOT / "src"])]
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="rnnlab-prepmem-"))
    manifest, clips, seconds = write_corpus(work / "corpus", args.hours)
    small, _, _ = write_corpus(work / "small", 0.1, seed=1)  # imports + a few MB of data
    runs: dict[str, list[dict]] = {str(s): [] for s in srcs}
    base: dict[str, list[dict]] = {str(s): [] for s in srcs}
    for _ in range(args.repeats):
        for src in srcs:
            base[str(src)].append(prepare_once(src, small, work / "run"))
            runs[str(src)].append(prepare_once(src, manifest, work / "run"))
    rows = []
    for src, rs in runs.items():
        peak = min(r["peak_rss_mb"] for r in rs)
        floor = min(r["peak_rss_mb"] for r in base[src])
        written = rs[0]["written_mb"]
        rows.append({"src": src, "commit": source_label(Path(src)), "peak_rss_mb": peak,
                     "small_corpus_peak_mb": floor, "written_mb": written,
                     "growth_per_written": round((peak - floor) / written, 2),
                     "runs": rs})  # fmt: skip
    record = {
        "command": "python -m benchmarks.prepare_memory " + " ".join(argv or sys.argv[1:]),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
        },  # fmt: skip
        "corpus": {"clips": clips, "hours": round(seconds / 3600, 2)},
        "results": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "prepare_memory.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        "# Peak memory of `rnnlab.data.prepare data=speech_transcripts`",
        "",
        f"`{record['command']}`: {clips} FLAC clips, {record['corpus']['hours']} h, "
        "16 kHz, defaults (40 log-mel features, normalised).",
        "",
        "| src | peak RSS (MB) | same, 0.1 h corpus (MB) | split files written (MB) | "
        "(peak - 0.1 h peak) / written |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| `{r['src']}` ({r['commit']}) | {r['peak_rss_mb']} | {r['small_corpus_peak_mb']} | "
            f"{r['written_mb']} | {r['growth_per_written']} |"
            for r in rows
        ),
        "",
    ]
    (RESULTS / "prepare_memory.md").write_text("\n".join(lines))
    print("\n".join(lines))
    if args.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
