"""conf/data/<text dataset>.yaml point at the text package's builders and their parameters;
the old flat ``rnnlab.data.text.build_*`` targets resolve only through rnnlab.compat."""

from __future__ import annotations

import importlib
import inspect

import pytest
import yaml

from rnnlab.compat import TARGET_ALIASES
from tests.helpers import ROOT

TEXT_DATASETS = {
    "text_langid": "chatterbot",
    "text_topics": "chatterbot",
    "csv": "tables",
    "ag_news": "ag_news",
    "imdb": "imdb",
}


def _resolve(target: str):
    module, name = target.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize(("name", "module"), sorted(TEXT_DATASETS.items()))
def test_text_data_configs_match_builders(name: str, module: str) -> None:
    path = ROOT / "conf" / "data" / f"{name}.yaml"
    cfg = yaml.safe_load(path.read_text())
    # bring-your-own sources name their processed dir after the source (rnnlab.data.naming)
    given = cfg["data"]["name"]
    assert given == name or given.startswith(f"${{rnnlab_data_name:{name},")
    target = cfg["prepare"]["_target_"]
    assert target == f"rnnlab.data.text.{module}.build_{name}"
    params = inspect.signature(_resolve(target)).parameters
    unknown = set(cfg["prepare"]) - {"_target_"} - set(params)
    assert not unknown, f"{path}: prepare keys {unknown} are not builder parameters"
    assert cfg["task"]["name"] == "classification"


def test_old_text_targets_are_aliased_not_reexported() -> None:
    import rnnlab.data.text as package

    old = {k: v for k, v in TARGET_ALIASES.items() if k.startswith("rnnlab.data.text.build_")}
    assert len(old) == len(TEXT_DATASETS)
    for old_target, new_target in old.items():
        assert not hasattr(package, old_target.rsplit(".", 1)[1]), old_target
        assert callable(_resolve(new_target))
