"""Shared helpers for the reliability tests: an in-process, tiny training config."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from rnnlab.config import config_dir, register_resolvers

TINY = [
    "print_config=false",
    "data.num_train=64",
    "data.num_val=32",
    "data.num_test=32",
    "data.batch_size=16",
    "data.seq_len=8",
    "model.hidden_size=8",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
    "logger=csv",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


@pytest.fixture
def compose_cfg():
    """Compose conf/config.yaml like the CLI does, with the output dir set explicitly."""
    register_resolvers()

    def _compose(output_dir: Path, *overrides: str) -> DictConfig:
        tiny = TINY
        if any(o.startswith("data=") for o in overrides):  # sizes are synthetic-data keys
            tiny = [o for o in TINY if not o.startswith("data.")]
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            return compose(
                "config", overrides=[*tiny, f"paths.output_dir={output_dir}", *overrides]
            )

    return _compose
