"""The DVC workflow end to end in a temp copy of the project, with tiny datasets.

`dvc repro` prepares, trains and evaluates both default datasets; a second `dvc repro`
runs nothing; a changed parameter re-runs only what depends on it; `dvc exp run -S`
composes params.yaml from conf/ through Hydra; `dvc exp show` and `dvc metrics diff` work.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dvc.utils.hydra import compose_and_dump

ROOT = Path(__file__).resolve().parents[2]
TINY_PIPELINE = {
    "text_langid": {
        "prepare": "prepare.languages=[english,spanish,italian] prepare.max_per_language=150",
        "train": "trainer.max_epochs=2 model.hidden_size=16 model.embedding_dim=8",
    },
    "speech_commands_synth": {
        "prepare": "prepare.words=[yes,no,stop] prepare.rates=[175] prepare.pitches=[50] "
        "prepare.variants=[m1,f1,m3,f3]",
        "train": "trainer.max_epochs=2 model.hidden_size=16",
    },
}


def sh(*args, cwd, check=True, timeout=900):
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "WANDB_MODE": "offline",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "PYTHONWARNINGS": "ignore",
    }
    proc = subprocess.run(
        list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def ran_stages(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def make_project(
    tmp_path: Path, pipeline_items: dict, recognition_items: dict | None = None
) -> Path:
    """A git + DVC copy of the project whose pipeline runs ``pipeline_items``."""
    work = tmp_path / "project"
    work.mkdir()
    for name in ("conf", "src"):
        shutil.copytree(
            ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
    for name in ("dvc.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(ROOT / name, work / name)
    pipeline = yaml.safe_load((work / "conf" / "pipeline.yaml").read_text())
    pipeline["pipeline"] = pipeline_items
    pipeline["recognition"] = recognition_items or {}  # the CTC stages: none unless asked
    (work / "conf" / "pipeline.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    compose_and_dump(work / "params.yaml", str(work / "conf"), None, "pipeline", "", [])
    sh("git", "init", "-q", cwd=work)
    sh(sys.executable, "-m", "dvc", "init", "-q", cwd=work)
    shutil.copy(ROOT / ".dvc" / "config", work / ".dvc" / "config")
    sh("git", "add", "-A", cwd=work)
    sh("git", "commit", "-qm", "init", cwd=work)
    return work


@pytest.mark.slow
def test_dvc_repro_then_noop_then_partial_rerun_then_experiment(tmp_path):
    work = make_project(tmp_path, TINY_PIPELINE)

    # 1. the whole pipeline
    first = sh(sys.executable, "-m", "dvc", "repro", cwd=work)
    assert ran_stages(first.stdout) == {
        f"{s}@{d}" for s in ("prepare", "train", "evaluate") for d in TINY_PIPELINE
    }
    for dataset in TINY_PIPELINE:
        res = work / "results" / dataset
        metrics = json.loads((res / "eval" / "metrics.json").read_text())
        assert 0.0 <= metrics["test/acc"] <= 1.0 and "test/f1_macro" in metrics
        assert (res / "train" / "checkpoints" / "best.ckpt").is_file()
        assert (res / "train" / "checkpoints" / "last.ckpt").is_file()
        for png in ("confusion_matrix.png", "learning_curves.png"):
            assert (res / "eval" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        per_class = json.loads((res / "eval" / "per_class.json").read_text())
        assert len(per_class["per_class"]) == len(per_class["labels"])
        assert (work / "data" / "processed" / dataset / "meta.json").is_file()

    # 2. nothing changed: nothing runs; this is the baseline of the experiment in 4.
    second = sh(sys.executable, "-m", "dvc", "repro", cwd=work)
    assert ran_stages(second.stdout) == set(), second.stdout
    sh("git", "add", "-A", cwd=work)
    sh("git", "commit", "-qm", "baseline", cwd=work)

    # 3. one dataset's train parameter: only its train and evaluate stages
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["pipeline"]["speech_commands_synth"]["train"] += " model.dropout=0.1"
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    third = sh(sys.executable, "-m", "dvc", "repro", cwd=work)
    assert ran_stages(third.stdout) == {
        "train@speech_commands_synth",
        "evaluate@speech_commands_synth",
    }, third.stdout

    # 4. an experiment through Hydra composition, listed beside the baseline (its params
    # change every train stage, so step 3's outputs are simply retrained, not restored)
    sh("git", "checkout", "params.yaml", "dvc.lock", cwd=work)
    sh(
        sys.executable,
        "-m",
        "dvc",
        "exp",
        "run",
        "-S",
        "model/cell=gru",
        "-S",
        "model/activation=relu",
        cwd=work,
    )
    assert yaml.safe_load((work / "params.yaml").read_text())["model"]["cell"] == "gru"
    ckpt = work / "results" / "text_langid" / "train" / "checkpoints" / "best.ckpt"
    import torch

    stored = torch.load(ckpt, weights_only=True)["hyper_parameters"]["model"]
    assert (stored["cell"], stored["activation"]) == ("gru", "relu")
    shown = json.loads(sh(sys.executable, "-m", "dvc", "exp", "show", "--json", cwd=work).stdout)
    text = json.dumps(shown)
    assert '"gru"' in text and '"lstm"' in text and "test/acc" in text
    diff = sh(sys.executable, "-m", "dvc", "metrics", "diff", cwd=work)
    assert "test/acc" in diff.stdout
