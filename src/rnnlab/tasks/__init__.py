"""LightningModules: what is learned (loss, metrics) and how (optimizer, penalties)."""

from rnnlab.tasks.base import RecurrentTask, TrainingDiverged
from rnnlab.tasks.classification import SequenceClassificationTask
from rnnlab.tasks.ctc import CTCRecognitionTask
from rnnlab.tasks.regression import SequenceRegressionTask

TASKS: dict[str, type[RecurrentTask]] = {
    "classification": SequenceClassificationTask,
    "regression": SequenceRegressionTask,
    "ctc": CTCRecognitionTask,
}

__all__ = [
    "TrainingDiverged",
    "TASKS",
    "CTCRecognitionTask",
    "RecurrentTask",
    "SequenceClassificationTask",
    "SequenceRegressionTask",
]
