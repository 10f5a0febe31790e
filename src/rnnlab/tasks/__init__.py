"""LightningModules: what is learned (loss, metrics) and how (optimizer, penalties).

:func:`create_task` builds the task ``task.name`` names for a DataModule: it refuses a
task the data was not prepared for (``meta.json`` ``task`` vs ``task.name``) and a
``task.*`` key the task does not take, each naming the key and what is valid, before
any model is built.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from rnnlab.tasks.base import RecurrentTask, TrainingDiverged
from rnnlab.tasks.classification import SequenceClassificationTask
from rnnlab.tasks.ctc import CTCRecognitionTask
from rnnlab.tasks.regression import SequenceRegressionTask

TASKS: dict[str, type[RecurrentTask]] = {
    "classification": SequenceClassificationTask,
    "regression": SequenceRegressionTask,
    "ctc": CTCRecognitionTask,
}
# Where to find data for a task, for the mismatch message.
DATA_FOR_TASK = {
    "ctc": "data=speech_transcripts (your transcribed audio), librispeech or speech_digits_synth",
    "classification": "data=audio_folder, csv, text_folders, speech_commands(_synth), text_*",
    "regression": "data=adding",
}
# Keys the builder passes itself (not task.* settings).
_BUILDER_KEYS = {"model", "io", "optim", "run_config", "class_names", "spelling"}


def task_keys(name: str) -> list[str]:
    """The ``task.*`` settings task ``name`` takes (its and its bases' keyword arguments)."""
    keys: set[str] = set()
    for cls in TASKS[name].__mro__:
        if not (isinstance(cls, type) and issubclass(cls, RecurrentTask)):
            continue
        for p in inspect.signature(cls.__init__).parameters.values():
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
                keys.add(p.name)
    return sorted(keys - _BUILDER_KEYS)


def check_task_data(name: str, datamodule: Any) -> None:
    """``task.name`` must be a known task and the one the data was prepared for."""
    if name not in TASKS:
        raise ValueError(f"task.name={name!r} is not known; valid: {', '.join(TASKS)}")
    data_task = getattr(datamodule, "task_type", None)
    if data_task is None or data_task == name:
        return
    where = getattr(datamodule, "name", type(datamodule).__name__)
    data_dir = getattr(datamodule, "data_dir", None)
    source = f"its meta.json ({data_dir}/meta.json)" if data_dir is not None else "it"
    raise ValueError(
        f"task.name={name!r} does not fit data {where!r}: {source} says task "
        f"{data_task!r}. Train it with task.name={data_task}, or use data prepared for "
        f"{name}: {DATA_FOR_TASK.get(name, 'a dataset whose meta.json task is ' + name)}"
    )


def create_task(
    name: str,
    datamodule: Any,
    *,
    model: Mapping[str, Any],
    optim: Mapping[str, Any] | None = None,
    run_config: Mapping[str, Any] | None = None,
    **task_cfg: Any,
) -> RecurrentTask:
    """The task ``name`` with the model ``datamodule.io`` needs; ``task_cfg`` are the
    other ``task.*`` keys (``class_weights: auto`` takes the data's class weights)."""
    check_task_data(name, datamodule)
    valid = task_keys(name)
    unknown = sorted(set(task_cfg) - set(valid))
    if unknown:
        raise ValueError(
            f"task.{unknown[0]} is not a setting of task.name={name}"
            + (f" (nor {', '.join(unknown[1:])})" if unknown[1:] else "")
            + f"; valid: {', '.join(valid)}"
        )
    if task_cfg.get("class_weights") == "auto":
        task_cfg["class_weights"] = getattr(datamodule, "class_weights", None)
    if name == "ctc":  # how labels become text: the data's meta.json decode record
        meta = getattr(datamodule, "meta", None) or {}
        task_cfg["spelling"] = meta.get("decode")
    return TASKS[name](
        model=dict(model),
        io=datamodule.io,
        class_names=getattr(datamodule, "class_names", None),
        optim=dict(optim) if optim is not None else None,
        run_config=dict(run_config or {}),
        **task_cfg,
    )


__all__ = [
    "TrainingDiverged",
    "TASKS",
    "CTCRecognitionTask",
    "RecurrentTask",
    "SequenceClassificationTask",
    "SequenceRegressionTask",
    "check_task_data",
    "create_task",
    "task_keys",
]
