"""Build a recurrent stack from a plain mapping (what a Hydra config becomes).

Every key is checked here, at build time, so a typo or an invalid value fails before
training with the key, the value and what is valid.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from rnnlab.nn.cells import CellActivations
from rnnlab.nn.connections import CONNECTIONS, LayerSpec, ParallelConnection, RecurrentStack

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


def build_stack(input_size: int, cfg: Mapping[str, Any], *, where: str = "model") -> RecurrentStack:
    """Build the recurrent stack that ``cfg`` describes (see STACK_DEFAULTS for keys)."""
    _check_keys(cfg, STACK_DEFAULTS, where)
    c = {**STACK_DEFAULTS, **cfg}
    conn = dict(c["connection"] or {"name": "stack"})
    name = conn.pop("name", "stack")
    if name not in CONNECTIONS:
        raise ValueError(
            f"{where}.connection.name={name!r} is not a known connection; "
            f"valid: {', '.join(CONNECTIONS)}"
        )
    if name == "parallel":
        branches = conn.pop("branches", None) or []
        _check_keys(conn, (), f"{where}.connection (parallel)")
        base = {k: v for k, v in c.items() if k != "connection"}
        built = []
        for i, branch in enumerate(branches):
            _check_keys(branch, STACK_DEFAULTS, f"{where}.connection.branches[{i}]")
            bcfg = {**base, "connection": {"name": "stack"}, **branch}
            built.append(build_stack(input_size, bcfg, where=f"{where}.connection.branches[{i}]"))
        return ParallelConnection(input_size, built)

    hidden = _positive_int(c["hidden_size"], f"{where}.hidden_size")
    num_layers = _positive_int(c["num_layers"], f"{where}.num_layers")
    _positive_int(input_size, f"{where} input size")
    spec = LayerSpec(
        cell=_check_choice(c["cell"], ("rnn", "lstm", "gru"), f"{where}.cell"),
        hidden_size=hidden,
        activations=CellActivations(c["activation"], c["gate_activation"], c["cell_activation"]),
        bidirectional=bool(c["bidirectional"]),
        init=_check_choice(c["init"], ("default", "orthogonal", "identity"), f"{where}.init"),
        forget_bias=c["forget_bias"],
        fused=c["fused"],
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
