"""conf/data/<speech set>.yaml names a real builder and only its parameters."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml
from hydra.utils import get_method

from rnnlab.data.speech.features import FeatureParams

CONF = Path(__file__).resolve().parents[3] / "conf" / "data"


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("speech_commands_synth", "synthetic"),
        ("speech_digits_synth", "synthetic"),
        ("audio_folder", "folder"),
        ("speech_commands", "speech_commands"),
        ("speech_transcripts", "transcripts"),
        ("librispeech", "librispeech"),
    ],
)
def test_data_configs_match_builders(name, module):
    path = CONF / f"{name}.yaml"
    assert path.read_text().startswith("# @package _global_\n")
    cfg = yaml.safe_load(path.read_text())
    # bring-your-own sets are named after their source (rnnlab.data.naming)
    if name in ("audio_folder", "speech_transcripts"):
        assert cfg["data"]["name"].startswith(f"${{rnnlab_data_name:{name},${{prepare.")
    else:
        assert cfg["data"]["name"] == name
    assert cfg["data"]["data_dir"] == "${paths.data_dir}/processed/${data.name}" or name not in (
        "audio_folder",
        "speech_transcripts",
        "librispeech",
    )
    target = cfg["prepare"]["_target_"]
    assert target.startswith(f"rnnlab.data.speech.{module}.build_")
    params = inspect.signature(get_method(target)).parameters
    unknown = set(cfg["prepare"]) - {"_target_"} - set(params)
    assert not unknown, f"{path}: prepare keys {unknown} are not builder parameters"
    assert all(isinstance(w, str) for w in cfg["prepare"].get("words", []))
    FeatureParams(**cfg["prepare"]["features"])
    ctc = ("speech_digits_synth", "speech_transcripts", "librispeech")
    assert cfg["task"]["name"] == ("ctc" if name in ctc else "classification")


def test_package_re_exports_no_builders():
    """Old ``rnnlab.data.speech.build_*`` targets resolve only through rnnlab.compat."""
    import rnnlab.data.speech as speech
    from rnnlab.compat import TARGET_ALIASES

    assert not [n for n in vars(speech) if n.startswith("build_")]
    builders = ("speech_commands_synth", "speech_digits_synth", "audio_folder", "speech_commands")
    for old in (f"build_{b}" for b in builders):
        assert get_method(TARGET_ALIASES[f"rnnlab.data.speech.{old}"]).__name__ == old
