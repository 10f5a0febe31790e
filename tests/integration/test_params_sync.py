"""params.yaml is what DVC composes from conf/pipeline.yaml: the committed copy must match."""

import os
from pathlib import Path

import yaml
from dvc.utils.hydra import compose_and_dump

ROOT = Path(__file__).resolve().parents[2]


def test_params_yaml_matches_conf(tmp_path):
    out = tmp_path / "params.yaml"
    compose_and_dump(out, str(ROOT / "conf"), None, "pipeline", "", [])
    composed = yaml.safe_load(out.read_text())
    committed = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert committed == composed, (
        "params.yaml is out of sync with conf/pipeline.yaml; regenerate it with `make params`"
    )


def test_dvc_hydra_composition_is_enabled():
    config = (ROOT / ".dvc" / "config").read_text()
    assert "[hydra]" in config and "enabled = true" in config
    assert "config_name = pipeline" in config
    assert os.path.isfile(ROOT / "conf" / "pipeline.yaml")
