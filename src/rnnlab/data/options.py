"""Builder options: the settings several dataset builders share, each group written once.

A ``prepare:`` block (``conf/data/<name>.yaml``) is flat: Hydra passes every key to the
builder as a keyword argument. The settings that several builders share (split
fractions, the bad-input policy, text encoding, speech features, CTC targets) are frozen
dataclasses with defaults, and :func:`takes` hands a builder each group as ONE value::

    @takes("text_langid", encode=EncodeOptions(tokenizer="char"), split=Fractions())
    def build_text_langid(out_dir, raw_dir=None, languages=..., *, encode, split): ...

    build_text_langid(out_dir, tokenizer="word", val_fraction=0.2, languages=[...])
    # body gets encode=EncodeOptions(tokenizer="word"), split=Fractions(val_fraction=0.2)

What :func:`takes` guarantees, before the body runs:

* every keyword goes to the body's own parameter of that name, or to the group that has
  a field of that name (the group instance given to :func:`takes` holds the builder's
  defaults, :func:`dataclasses.replace` the given values);
* a keyword that is neither is a :class:`~rnnlab.errors.DataError` naming the key, its
  value and the valid keys (not a bare ``TypeError``);
* each group is validated once: its ``validate(where)`` method, when it has one, raises
  a DataError naming ``where``, the key and the bad value;
* ``inspect.signature(builder)`` lists every key the builder accepts (its own
  parameters, then each group's fields with this builder's defaults), so ``help()`` and
  the config-signature test see the whole list.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from rnnlab.data.splits import check_fractions
from rnnlab.errors import DataError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Fractions:
    """``val_fraction``/``test_fraction``: each in [0, 1), their sum < 1
    (:func:`~rnnlab.data.splits.check_fractions`, the one rule for every source)."""

    val_fraction: float = 0.1
    test_fraction: float = 0.1

    def validate(self, where: str) -> None:
        check_fractions(self.val_fraction, self.test_fraction, where)


def option_fields(group: Any) -> list[str]:
    """The keys a group (a dataclass instance or class) takes, in field order."""
    return [f.name for f in dataclasses.fields(group)]


def _route(
    where: str, kwargs: dict[str, Any], own: set[str], field_group: dict[str, str]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Split ``kwargs`` into the body's own keywords and each group's fields."""
    passed: dict[str, Any] = {}
    values: dict[str, dict[str, Any]] = {g: {} for g in set(field_group.values())}
    unknown = {}
    for key, value in kwargs.items():
        if key in own:
            passed[key] = value
        elif key in field_group:
            values[field_group[key]][key] = value
        else:
            unknown[key] = value
    if unknown:
        given = ", ".join(f"{k}={v!r}" for k, v in unknown.items())
        valid = ", ".join([*own, *field_group])
        raise DataError(f"{where}: unknown key(s) {given}; valid: {valid}")
    return passed, values


def takes(where: str, **groups: Any) -> Callable[[F], F]:
    """Decorate a builder whose keyword-only parameters ``groups`` are option groups.

    ``groups``: parameter name -> a dataclass instance holding this builder's defaults.
    See the module docstring for what the decorated builder guarantees; ``where`` (the
    dataset name) starts every error message.
    """

    def decorate(fn: F) -> F:
        sig = inspect.signature(fn)
        missing = set(groups) - set(sig.parameters)
        if missing:
            raise TypeError(f"{fn.__qualname__} has no parameter(s) {sorted(missing)}")
        own = [p for name, p in sig.parameters.items() if name not in groups]
        field_group: dict[str, str] = {}
        for name, default in groups.items():
            for key in option_fields(default):
                if key in field_group or key in sig.parameters:
                    raise TypeError(f"{fn.__qualname__}: option {key!r} is given twice")
                field_group[key] = name

        @functools.wraps(fn)
        def builder(*args: Any, **kwargs: Any) -> Any:
            passed, values = _route(where, kwargs, {p.name for p in own}, field_group)
            for name, default in groups.items():
                options = dataclasses.replace(default, **values.get(name, {}))
                if hasattr(options, "validate"):
                    options.validate(where)
                passed[name] = options
            return fn(*args, **passed)

        fields = [
            inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=getattr(d, f.name))
            for d in groups.values()
            for f in dataclasses.fields(d)
        ]
        builder.__signature__ = sig.replace(parameters=[*own, *fields])  # type: ignore[attr-defined]
        builder.option_groups = dict(groups)  # type: ignore[attr-defined]
        return builder  # type: ignore[return-value]

    return decorate


def dataset_builder(name: str, core: Callable[..., Any], doc: str, **groups: Any) -> Any:
    """``build_<name>``: the shared builder ``core`` with this dataset's option groups.

    Where datasets differ only in a group (which classes, which utterances), ``core``
    is written once, and each dataset is ``core`` under :func:`takes` with its own
    group defaults (``groups``) and docstring ``doc``, named ``build_<name>`` so its
    ``_target_`` reads as before.
    """

    @functools.wraps(core)
    def named(*args: Any, **kwargs: Any) -> Any:
        return core(*args, **kwargs)

    named.__name__ = named.__qualname__ = f"build_{name}"
    named.__doc__ = doc
    return takes(name, **groups)(named)
