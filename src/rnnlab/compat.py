"""Configs written by older rnnlab versions: the documented table of renamed ``_target_``s.

Checkpoints store the whole composed run config, ``_target_``s included. When a module
moves, old checkpoints must still evaluate and resume, so every moved target is listed
here — old dotted path → new dotted path — and :func:`upgrade_targets` rewrites a config
read back from a checkpoint before it is instantiated (logging each rewrite). There are
no import shims: an old path that is not in this table fails as any unknown target does.

| since | old ``_target_`` | new ``_target_`` |
| --- | --- | --- |
| 0.4 (data package by concept) | see :data:`TARGET_ALIASES` | |
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

# 0.4: rnnlab.data reorganised by concept (one module per dataset source).
TARGET_ALIASES: dict[str, str] = {
    "rnnlab.data.datamodule.ProcessedDataModule": "rnnlab.data.datamodules.ProcessedDataModule",
    "rnnlab.data.synthetic.AddingDataModule": "rnnlab.data.probes.AddingDataModule",
    "rnnlab.data.synthetic.CopyDataModule": "rnnlab.data.probes.CopyDataModule",
    "rnnlab.data.text.build_text_langid": "rnnlab.data.text.chatterbot.build_text_langid",
    "rnnlab.data.text.build_text_topics": "rnnlab.data.text.chatterbot.build_text_topics",
    "rnnlab.data.text.build_csv": "rnnlab.data.text.tables.build_csv",
    "rnnlab.data.text.build_ag_news": "rnnlab.data.text.ag_news.build_ag_news",
    "rnnlab.data.text.build_imdb": "rnnlab.data.text.imdb.build_imdb",
    "rnnlab.data.speech.build_speech_commands_synth": "rnnlab.data.speech.synthetic.build_speech_commands_synth",
    "rnnlab.data.speech.build_speech_digits_synth": "rnnlab.data.speech.synthetic.build_speech_digits_synth",
    "rnnlab.data.speech.build_audio_folder": "rnnlab.data.speech.folder.build_audio_folder",
    "rnnlab.data.speech.build_speech_commands": "rnnlab.data.speech.speech_commands.build_speech_commands",
}


def upgrade_targets(cfg: Any, where: str = "config") -> Any:
    """A copy of ``cfg`` (plain dicts/lists) with every aliased ``_target_`` renamed."""
    if isinstance(cfg, Mapping):
        out = {}
        for key, value in cfg.items():
            if key == "_target_" and value in TARGET_ALIASES:
                new = TARGET_ALIASES[value]
                log.info("%s._target_: %s was renamed %s (rnnlab.compat)", where, value, new)
                out[key] = new
            else:
                out[key] = upgrade_targets(value, f"{where}.{key}")
        return out
    if isinstance(cfg, list | tuple):
        return [upgrade_targets(v, f"{where}[{i}]") for i, v in enumerate(cfg)]
    return cfg
