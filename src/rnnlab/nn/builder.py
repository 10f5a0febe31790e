"""Build a recurrent stack from a plain mapping (what a Hydra config becomes).

Every key is checked here, at build time, so a typo or an invalid value fails before
training with the key, the value and what is valid.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from rnnlab.nn.activations import get_activation, get_gate_activation
from rnnlab.nn.cells import CELLS, INITS, CellActivations
from rnnlab.nn.connections import CONNECTIONS, LayerSpec, ParallelConnection, RecurrentStack
from rnnlab.nn.connections.gated_feedback import check_feedback_cell
from rnnlab.nn.indrnn import DEFAULT_MAX_WEIGHT, check_max_weight
from rnnlab.nn.variants import check_proj_size, check_variant

STACK_DEFAULTS: dict[str, Any] = {
    "cell": "lstm",
    "activation": "tanh",
    "gate_activation": "sigmoid",
    "cell_activation": None,
    "hidden_size": 128,
    "num_layers": 1,
    "bidirectional": False,
    "dropout": 0.0,
    "init": "default",
    "forget_bias": None,
    "fused": "auto",
    "indrnn_max_weight": DEFAULT_MAX_WEIGHT,
    "proj_size": 0,
    "lstm_variant": "vanilla",
    "peephole": False,
    "layer_norm": False,
    "recurrent_dropout": 0.0,
    "zoneout": 0.0,
    "connection": {"name": "stack"},
}


def _check_keys(cfg: Mapping, valid, where: str) -> None:
    unknown = sorted(set(cfg) - set(valid))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid: {', '.join(sorted(valid))}")


def _positive_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key}={value!r} must be an integer >= 1")
    return value


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{key}={value!r} must be true or false")
    return value


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key}={value!r} must be a number")
    return float(value)


def _probability(value: Any, key: str) -> float:
    p = _number(value, key)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{key}={value!r} must be a number in [0, 1)")
    return p


def _connection(cfg: Mapping[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    conn = cfg.get("connection") or {"name": "stack"}
    if not isinstance(conn, Mapping):
        raise ValueError(
            f"{where}.connection={conn!r} must be a mapping with a name; "
            f"valid names: {', '.join(CONNECTIONS)}"
        )
    conn = dict(conn)
    name = conn.pop("name", "stack")
    if not isinstance(name, str) or name not in CONNECTIONS:
        raise ValueError(
            f"{where}.connection.name={name!r} is not a known connection; "
            f"valid: {', '.join(CONNECTIONS)}"
        )
    return name, conn


def check_stack_config(cfg: Mapping[str, Any], where: str = "model") -> None:
    """Check every stack key's type, range and choice without building anything.

    Cheap enough to run at the very start of a run, before data preparation; what
    needs the data's input width (joining widths) is checked when the stack is built.
    """
    if not isinstance(cfg, Mapping):
        raise ValueError(f"{where}={cfg!r} must be a mapping of model keys")
    _check_keys(cfg, STACK_DEFAULTS, where)
    c = {**STACK_DEFAULTS, **cfg}
    name, conn = _connection(c, where)
    if name == "parallel":
        branches = conn.pop("branches", None)
        _check_keys(conn, (), f"{where}.connection (parallel)")
        if not isinstance(branches, Sequence) or isinstance(branches, str) or not branches:
            raise ValueError(
                f"{where}.connection.branches={branches!r} must be a non-empty list of "
                f"branch configs (mappings of model keys)"
            )
        base = {k: v for k, v in c.items() if k != "connection"}
        for i, branch in enumerate(branches):
            key = f"{where}.connection.branches[{i}]"
            if not isinstance(branch, Mapping):
                raise ValueError(f"{key}={branch!r} must be a mapping of model keys")
            _check_keys(branch, STACK_DEFAULTS, key)
            check_stack_config({**base, "connection": {"name": "stack"}, **branch}, key)
        return
    _positive_int(c["hidden_size"], f"{where}.hidden_size")
    _positive_int(c["num_layers"], f"{where}.num_layers")
    _check_choice(c["cell"], CELLS, f"{where}.cell")
    get_activation(c["activation"], key=f"{where}.activation")
    get_gate_activation(c["gate_activation"], key=f"{where}.gate_activation")
    if c["cell_activation"] is not None:
        get_activation(c["cell_activation"], key=f"{where}.cell_activation")
    _bool(c["bidirectional"], f"{where}.bidirectional")
    _probability(c["dropout"], f"{where}.dropout")
    _check_choice(c["init"], INITS, f"{where}.init")
    if c["init"] == "indrnn" and c["cell"] != "indrnn":
        raise ValueError(
            f"{where}.init='indrnn' (Li et al. 2018) needs {where}.cell=indrnn (got "
            f"{c['cell']!r}); valid inits for {c['cell']}: "
            + ", ".join(i for i in INITS if i != "indrnn")
        )
    if c["forget_bias"] is not None:
        _number(c["forget_bias"], f"{where}.forget_bias")
    if c["fused"] not in ("auto", True, False):
        raise ValueError(f"{where}.fused={c['fused']!r} is not valid; valid: auto, true, false")
    check_max_weight(c["indrnn_max_weight"], f"{where}.indrnn_max_weight")
    check_proj_size(c["proj_size"], c["cell"], c["hidden_size"], where)
    check_variant(c, c["cell"], where)
    if name == "gated_feedback":  # every variant and proj_size compose with it; IndRNN not
        check_feedback_cell(c["cell"], f"{where}.cell")
    # connection options: the keys and types its constructor declares (by default value)
    params = inspect.signature(CONNECTIONS[name].__init__).parameters
    options = {
        k: p.default
        for k, p in params.items()
        if k not in ("self", "input_size", "num_layers", "spec", "dropout")
    }
    _check_keys(conn, options, f"{where}.connection ({name})")
    for key, value in conn.items():
        default, full = options[key], f"{where}.connection.{key}"
        if isinstance(default, bool):
            _bool(value, full)
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{full}={value!r} must be an integer")
        elif isinstance(default, float):
            _number(value, full)
    if name == "residual" and "start_layer" in conn:
        _positive_int(conn["start_layer"], f"{where}.connection.start_layer")


def build_stack(input_size: int, cfg: Mapping[str, Any], *, where: str = "model") -> RecurrentStack:
    """Build the recurrent stack that ``cfg`` describes (see STACK_DEFAULTS for keys)."""
    check_stack_config(cfg, where)
    c = {**STACK_DEFAULTS, **cfg}
    name, conn = _connection(c, where)
    if name == "parallel":
        branches = conn.pop("branches")
        base = {k: v for k, v in c.items() if k != "connection"}
        built = []
        for i, branch in enumerate(branches):
            bcfg = {**base, "connection": {"name": "stack"}, **branch}
            built.append(build_stack(input_size, bcfg, where=f"{where}.connection.branches[{i}]"))
        return ParallelConnection(input_size, built)

    hidden = _positive_int(c["hidden_size"], f"{where}.hidden_size")
    num_layers = _positive_int(c["num_layers"], f"{where}.num_layers")
    _positive_int(input_size, f"{where} input size")
    spec = LayerSpec(
        cell=_check_choice(c["cell"], CELLS, f"{where}.cell"),
        hidden_size=hidden,
        activations=CellActivations(c["activation"], c["gate_activation"], c["cell_activation"]),
        bidirectional=bool(c["bidirectional"]),
        init=_check_choice(c["init"], INITS, f"{where}.init"),
        forget_bias=c["forget_bias"],
        fused=c["fused"],
        max_weight=check_max_weight(c["indrnn_max_weight"]),
        proj_size=c["proj_size"],
        variant=check_variant(c, c["cell"], where),
    )
    cls = CONNECTIONS[name]
    params = inspect.signature(cls.__init__).parameters
    extra = [p for p in params if p not in ("self", "input_size", "num_layers", "spec", "dropout")]
    _check_keys(conn, extra, f"{where}.connection ({name})")
    return cls(input_size, num_layers, spec, float(c["dropout"]), **conn)


def _check_choice(value: Any, valid: tuple[str, ...], key: str) -> str:
    if value not in valid:
        raise ValueError(f"{key}={value!r} is not valid; valid: {', '.join(valid)}")
    return value
