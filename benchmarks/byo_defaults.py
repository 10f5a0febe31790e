"""The bring-your-own defaults, measured on the embedded data through the bring-your-own path.

    .venv/bin/python -m benchmarks.byo_defaults [--work-dir DIR] [--keep]

The embedded synthetic speech is exported as a user would hand it over, then trained with
exactly the README's documented bring-your-own commands and their defaults (no model,
optimiser or trainer key on the command line):

* ``speech_commands_synth`` (10 words, 80 espeak-ng speakers) as WAV files
  ``<word>/<speaker>_<n>.wav`` and a manifest ``path,label,speaker,split``:
  ``python -m rnnlab.train data=audio_folder prepare.manifest=<csv>``;
* ``speech_digits_synth`` (connected digits) as WAV files and a manifest
  ``path,transcript,speaker,split`` with the digits as words (``three one four``):
  ``python -m rnnlab.train data=speech_transcripts prepare.manifest=<csv>``, then
  ``python -m rnnlab.evaluate ckpt_path=<run>/checkpoints/best.ckpt`` (greedy and beam).

The clips are the embedded datasets' own, rendered by the project's renderer with the
embedded configs' settings and seed (:func:`export`, the steps of
:mod:`rnnlab.data.speech.synthetic` up to the features), and the manifests carry the
embedded voice-disjoint split, so the results compare with the DVC pipeline's. Only
``paths.data_dir``/``hydra.run.dir`` (into the work directory), ``logger=csv`` and the
progress bar (off) are set: none changes training. These are synthesized voices, not
real recordings. Writes ``benchmarks/results/byo_defaults.{json,md}``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
ORDER = ("speech_commands_synth", "speech_digits_synth")
NOT_TRAINING = ["logger=csv", "callbacks.progress_bar.refresh_rate=0", "print_config=false"]


def embedded_settings(name: str) -> dict[str, Any]:
    """The ``prepare`` block of ``conf/data/<name>.yaml`` (seed: the default 42)."""
    cfg = OmegaConf.load(ROOT / "conf" / "data" / f"{name}.yaml")
    prepare = OmegaConf.to_container(cfg.prepare, resolve=False)
    prepare["seed"] = 42
    return prepare


def export(name: str, out: Path) -> tuple[Path, int]:
    """Render the embedded dataset ``name`` to 16-bit WAVs under ``out`` with a manifest
    (see the module docstring); returns the manifest and the number of clips."""
    from rnnlab.data.options import Fractions
    from rnnlab.data.speech.espeak import SAMPLE_RATE as SYNTH_RATE
    from rnnlab.data.speech.espeak import synthesize_per_voice, trim_silence
    from rnnlab.data.speech.features import FeatureParams, resample
    from rnnlab.data.speech.labels import DIGITS
    from rnnlab.data.speech.render import render
    from rnnlab.data.speech.synthetic import DigitStrings, SynthVoices, WordClips

    p = embedded_settings(name)
    voice = SynthVoices(
        **{k: p[k] for k in ("voices", "variants", "rates", "pitches", "snr_db", "gain_db")}
    )
    if name == "speech_commands_synth":
        keys = ("words", "repeats", "rate_jitter", "pitch_jitter", "clip_seconds")
        kind: Any = WordClips(**{k: p[k] for k in keys})
    else:
        keys = ("utterances_per_speaker", "min_digits", "max_digits", "pad_seconds")
        kind = DigitStrings(**{k: p[k] for k in keys})
    fp = FeatureParams(**p["features"])
    how = kind.render(fp, voice)
    speakers = voice.speakers()
    assignment = voice.assign(speakers, Fractions(p["val_fraction"], p["test_fraction"]), p["seed"])
    split_of = {s: k for k, ss in assignment.items() for s in ss}
    plans = kind.plan(speakers, voice, p["seed"])
    jobs = [[clip.job for clip in plan] for plan in plans]
    column = "label" if name == "speech_commands_synth" else "transcript"
    rows = [("path", column, "speaker", "split")]
    for spk, plan, audios in zip(speakers, plans, synthesize_per_voice(speakers, jobs, None)):
        who = spk.spec.replace("+", "_")
        for n, (clip, raw) in enumerate(zip(plan, audios)):
            audio = trim_silence(raw)
            if audio.size == 0:
                continue  # the embedded builder skips it too (empty_synthesis)
            speech = resample(
                torch.from_numpy(audio.astype(np.float32) / 32768.0), SYNTH_RATE, fp.sample_rate
            ).numpy()
            wave = np.clip(render(clip.rng, speech, how, fp.sample_rate), -1.0, 1.0)
            if name == "speech_commands_synth":
                text = kind.words[clip.target]
                rel = f"{text}/{who}_{n:04d}.wav"
            else:
                text = " ".join(DIGITS[d] for d in clip.target)
                rel = f"clips/{who}_{n:04d}.wav"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            sf.write(out / rel, wave, fp.sample_rate, subtype="PCM_16")
            rows.append((rel, text, spk.spec, split_of[spk.spec]))
    manifest = out / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return manifest, len(rows) - 1


def run(args: list[str], log: Path) -> float:
    """Run ``python -m <args>`` from the repository root; wall seconds. Output to ``log``."""
    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "1"}
    start = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(
            [sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT
        )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}); see {log}")
    return wall


def exported(name: str, out: Path) -> tuple[Path, int, float | None]:
    """:func:`export`, or the manifest a previous run of this benchmark left in ``out``
    (the export is deterministic); the manifest, its clips and the export seconds."""
    manifest = out / "manifest.csv"
    if manifest.is_file():
        with open(manifest, newline="") as f:
            return manifest, sum(1 for _ in f) - 1, None
    start = time.perf_counter()
    manifest, clips = export(name, out)
    return manifest, clips, round(time.perf_counter() - start, 1)


def measure(name: str, data: str, work: Path) -> dict[str, Any]:
    """Export ``name``, train it with the README's command (and evaluate a CTC run)."""
    manifest, clips, export_s = exported(name, work / name)
    load_before = os.getloadavg()[0]
    run_dir = work / "runs" / name
    command = ["rnnlab.train", f"data={data}", f"prepare.manifest={manifest}"]
    plumbing = [f"paths.data_dir={work / 'data'}", f"hydra.run.dir={run_dir}", *NOT_TRAINING]
    train_s = run([*command, *plumbing], work / f"{name}.train.log")
    record = json.loads((run_dir / "metrics.json").read_text())
    (meta_path,) = (work / "data" / "processed").glob(f"{data}-*/meta.json")
    meta = json.loads(meta_path.read_text())
    result: dict[str, Any] = {
        "embedded": name,
        "command": "python -m " + " ".join(command).replace(str(manifest), "<manifest.csv>"),
        "clips": clips,
        "counts": {k: v["total"] for k, v in meta["counts"].items()},
        "skipped": meta.get("skipped", {}),
        "export_s": export_s,
        "train_wall_s": round(train_s, 1),
        "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "epochs": record["epoch"],
        "best_checkpoint": Path(record["best_checkpoint"] or "").name,
        "metrics": {k: v for k, v in record["metrics"].items() if k.startswith("test/")},
    }
    if data == "speech_transcripts":
        ckpt = run_dir / "checkpoints" / "best.ckpt"
        eval_dir = work / "runs" / f"{name}_eval"
        cmd = ["rnnlab.evaluate", f"ckpt_path={ckpt}", f"hydra.run.dir={eval_dir}"]
        result["evaluate_command"] = (
            "python -m rnnlab.evaluate ckpt_path=<run>/checkpoints/best.ckpt"
        )
        result["evaluate_wall_s"] = round(run(cmd, work / f"{name}.eval.log"), 1)
        result["metrics"] = json.loads((eval_dir / "metrics.json").read_text())
        result["metrics"].pop("ckpt_path", None)
    return result


def markdown(record: dict[str, Any]) -> str:
    """The results table of ``byo_defaults.md``."""
    lines = [
        "# Bring-your-own defaults on the embedded data",
        "",
        "`python -m benchmarks.byo_defaults`: the embedded synthetic speech exported as WAV",
        "files plus a manifest (with the embedded voice-disjoint split), trained with the",
        "README's bring-your-own command and its defaults (no tuning). **Synthesized voices",
        "(espeak-ng), not real recordings.**",
        f"Machine: {record['machine']}, {record['torch_threads']} torch threads; {record['date']}.",
        "Wall times are on a shared machine: the 1-minute load average before and after each",
        "training is in the table (on 2 cores a load of 8 makes a run about 4x slower).",
        "",
        "| embedded data | command | clips (train/val/test) | epochs | wall (train) | load | test result |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in record["results"]:
        m, c = r["metrics"], r["counts"]
        if "test/acc" in m:
            res = f"accuracy {m['test/acc']:.3f}"
        else:
            res = (
                f"CER {100 * m['test/cer']:.2f} % / WER {100 * m['test/wer']:.2f} % greedy; "
                f"CER {100 * m['test/cer_beam']:.2f} % / WER {100 * m['test/wer_beam']:.2f} % beam"
            )
        lines.append(
            f"| `{r['embedded']}` | `{r['command']}` | {r['clips']} "
            f"({c['train']}/{c['val']}/{c['test']}) | {r['epochs']} | "
            f"{r['train_wall_s'] / 60:.1f} min | {r['load_average'][0]}-{r['load_average'][1]} "
            f"| {res} |"
        )
    done = {r["embedded"] for r in record["results"]}
    lines += [f"| `{n}` | not measured in this run | | | | | |" for n in ORDER if n not in done]
    lines += ["", *(f"- {note}" for note in record.get("notes", []))] if record.get("notes") else []
    return "\n".join(lines) + "\n"


def write_results(result: dict[str, Any]) -> None:
    """Merge one dataset's result into ``byo_defaults.json`` (replacing an older one of
    the same embedded data) and write both files again."""
    path = RESULTS / "byo_defaults.json"
    old = json.loads(path.read_text())["results"] if path.is_file() else []
    results = [r for r in old if r["embedded"] != result["embedded"]] + [result]
    record = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "torch_threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "note": "synthesized voices (espeak-ng), not real recordings",
        "results": sorted(results, key=lambda r: ORDER.index(r["embedded"])),
    }
    if path.is_file() and json.loads(path.read_text()).get("notes"):
        record["notes"] = json.loads(path.read_text())["notes"]  # kept until rewritten by hand
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    (RESULTS / "byo_defaults.md").write_text(markdown(record))
    print(markdown(record))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=None, help="default: a temp dir")
    parser.add_argument("--keep", action="store_true", help="keep a temp work dir")
    parser.add_argument(
        "--only", choices=["audio_folder", "speech_transcripts"], default=None, help="one data"
    )
    parser.add_argument("--markdown-only", action="store_true", help="rewrite the .md only")
    args = parser.parse_args()
    if args.markdown_only:
        record = json.loads((RESULTS / "byo_defaults.json").read_text())
        (RESULTS / "byo_defaults.md").write_text(markdown(record))
        return
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="rnnlab_byo_"))
    work.mkdir(parents=True, exist_ok=True)
    todo = [
        ("speech_commands_synth", "audio_folder"),
        ("speech_digits_synth", "speech_transcripts"),
    ]
    for name, data in todo:
        if args.only in (None, data):
            write_results(measure(name, data, work))
    if not args.keep and args.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
