"""Config-level composition: every cell x activation x connection instantiates, and every
dataset config's keys are parameters of the callables it names."""

import inspect
import itertools
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_object
from omegaconf import OmegaConf, open_dict

from rnnlab.config import config_dir, register_resolvers
from rnnlab.nn import ACTIVATIONS
from rnnlab.nn.connections import CONNECTIONS
from rnnlab.train import build_datamodule, build_task

CONF = Path(config_dir())
CELLS = sorted(p.stem for p in (CONF / "model" / "cell").glob("*.yaml"))
ACTS = sorted(p.stem for p in (CONF / "model" / "activation").glob("*.yaml"))
CONNS = sorted(p.stem for p in (CONF / "model" / "connection").glob("*.yaml"))
DATASETS = sorted(p.stem for p in (CONF / "data").glob("*.yaml"))


def compose_cfg(overrides, tmp_path):
    """Compose like the CLI does (call inside ``initialize_config_dir``)."""
    register_resolvers()
    cfg = compose("config", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(tmp_path)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra
    return cfg


@pytest.fixture(autouse=True)
def hydra_conf():
    with initialize_config_dir(str(CONF), version_base="1.3"):
        yield


def test_config_groups_cover_the_registries():
    from rnnlab.nn.cells import CELLS as CELL_REGISTRY

    assert CELLS == sorted(CELL_REGISTRY)
    assert set(ACTIVATIONS) <= set(ACTS)
    assert CONNS == sorted(CONNECTIONS)


@pytest.mark.slow
def test_full_product_instantiates(tmp_path):
    count = 0
    # the whole product on token data; feature data through every connection and cell
    # IndRNN has no recurrent matrix for gated feedback to gate: refused (tested below)
    skip = {("indrnn", "gated_feedback")}
    grids = {
        "copy": [g for g in itertools.product(CELLS, ACTS, CONNS) if (g[0], g[2]) not in skip],
        "adding": [
            g for g in itertools.product(CELLS, ["relu"], CONNS) if (g[0], g[2]) not in skip
        ],
    }
    for data, grid in grids.items():
        dm = None
        for cell, act, conn in grid:
            cfg = compose_cfg(
                [
                    f"data={data}",
                    f"model/cell={cell}",
                    f"model/activation={act}",
                    f"model/connection={conn}",
                    "model.hidden_size=4",
                    "model.num_layers=2",
                    "data.num_train=4",
                    "data.num_val=4",
                    "data.num_test=4",
                ],
                tmp_path,
            )
            dm = dm or build_datamodule(cfg.data)
            task = build_task(cfg, dm)
            assert task.hparams.model["cell"] == cell
            assert OmegaConf.to_container(cfg.model)["connection"]["name"] == conn
            count += 1
    assert count == (len(CELLS) * len(CONNS) - len(skip)) * (len(ACTS) + 1)
    cfg = compose_cfg(["model/cell=indrnn", "model/connection=gated_feedback"], tmp_path)
    with pytest.raises(ValueError, match="gated_feedback"):
        build_task(cfg, build_datamodule(cfg.data))


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")))
def test_experiments_compose(tmp_path, experiment):
    cfg = compose_cfg([f"experiment={experiment}"], tmp_path)
    build_task(cfg, build_datamodule(cfg.data))


def _accepted_keys(target) -> set[str]:
    """The keyword arguments ``target`` takes. A builder's signature lists its option
    groups' fields (rnnlab.data.options.takes), so it has no ``**kwargs``; a class whose
    ``__init__`` passes ``**kwargs`` on takes its bases' parameters as well."""
    classes = (
        [c for c in target.__mro__ if "__init__" in vars(c)]
        if isinstance(target, type)
        else [target]
    )
    accepted: set[str] = set()
    for fn in classes:
        params = inspect.signature(fn).parameters
        accepted |= {n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return accepted - {"self"}
    raise AssertionError(f"{target}: takes **kwargs all the way down; its keys cannot be checked")


def _unknown_keys(block: dict, target) -> set[str]:
    """Keys of a config block that ``target`` (a function or a class) does not take."""
    return set(block) - {"_target_"} - _accepted_keys(target)


@pytest.mark.parametrize("name", DATASETS)
def test_data_config_keys_are_parameters_of_its_targets(name):
    """``prepare:`` keys are the builder's parameters, ``data:`` keys the DataModule's
    ``__init__``'s; each target is imported by its dotted path, as Hydra would."""
    path = CONF / "data" / f"{name}.yaml"
    assert path.read_text().startswith("# @package _global_\n"), path
    cfg = yaml.safe_load(path.read_text())
    blocks = [("data", cfg["data"])] + ([("prepare", cfg["prepare"])] if "prepare" in cfg else [])
    for key, block in blocks:
        target = get_object(block["_target_"])
        assert callable(target), f"{path}: {key}._target_={block['_target_']!r}"
        unknown = _unknown_keys(block, target)
        if key == "prepare":  # every key is checked: the builder's signature is complete
            params = inspect.signature(target).parameters.values()
            assert all(p.kind is not inspect.Parameter.VAR_KEYWORD for p in params), path
        assert not unknown, (
            f"{path}: {key} keys {sorted(unknown)} are not parameters of {block['_target_']}"
        )


def test_bring_your_own_audio_defaults_to_the_speech_recipe(tmp_path):
    """data=audio_folder carries the recipe that works on real recordings (2 layers, mean
    pooling, lr 3e-3); the command line still wins, and other datasets keep the defaults."""
    cfg = compose_cfg(["data=audio_folder"], tmp_path)
    assert (cfg.model.num_layers, cfg.model.pooling) == (2, "mean")
    assert cfg.optim.optimizer.lr == pytest.approx(3e-3)
    cfg = compose_cfg(["data=audio_folder", "model.num_layers=1", "model.pooling=max"], tmp_path)
    assert (cfg.model.num_layers, cfg.model.pooling) == (1, "max")
    cfg = compose_cfg(["data=text_langid"], tmp_path)
    assert (cfg.model.num_layers, cfg.model.pooling) == (1, "last")
