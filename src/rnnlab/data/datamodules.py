"""DataModule over a prepared dataset (``data/processed/<name>``), with length buckets.

Batches group sequences of similar length so little compute goes into padding; the
order is a pure function of (seed, epoch), so runs are reproducible, and under DDP each
rank takes a disjoint share of the batches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from torch.utils.data import DataLoader

from rnnlab.data.format import ProcessedSequences, collate, read_meta
from rnnlab.data.loaders import SplitLoaders
from rnnlab.data.sampling import BucketBatchSampler
from rnnlab.errors import DataError
from rnnlab.nn.model import ModelIO


class ProcessedDataModule(SplitLoaders, L.LightningDataModule):
    """Reads train/val/test written by ``rnnlab.data.prepare``; exposes ``io`` for the model.

    Checkpoints record the split files' checksums, so ``ckpt_path=auto`` can tell a run
    trained on other data (re-prepared) from an interrupted run of this one.
    """

    def state_dict(self) -> dict[str, Any]:
        return {"checksums": dict(self.meta.get("checksums", {}))}

    def __init__(
        self,
        name: str,
        data_dir: str,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        bucket: bool = True,
        pool: int = 50,
        spec_augment: dict[str, Any] | None = None,
        verify_checksums: bool = True,
    ):
        super().__init__()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise DataError(f"data.batch_size={batch_size!r} must be an integer >= 1")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise DataError(f"data.num_workers={num_workers!r} must be an integer >= 0")
        self.name, self.data_dir = name, Path(data_dir)
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.bucket, self.pool, self.spec_augment = bucket, pool, spec_augment
        self.verify = verify_checksums
        self.meta = read_meta(self.data_dir)
        self.task_type = self.meta["task"]
        self.splits: dict[str, ProcessedSequences] = {}

    @property
    def io(self) -> ModelIO:
        labels = len(self.meta["labels"])
        if self.task_type == "ctc":  # one extra class: the CTC blank (index 0)
            return ModelIO(self.meta["input_kind"], self.meta["input_dim"], labels + 1, "step")
        return ModelIO(self.meta["input_kind"], self.meta["input_dim"], labels, "sequence")

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["labels"])

    @property
    def class_weights(self) -> list[float] | None:
        return self.meta.get("class_weights")

    def setup(self, stage: str | None = None) -> None:
        for split in ("train", "val", "test"):
            if split not in self.splits:
                self.splits[split] = ProcessedSequences(self.data_dir, split, verify=self.verify)

    def _loader(self, split: str, train: bool) -> DataLoader:
        ds = self.splits[split]
        replicas, rank = self.world()
        sampler = BucketBatchSampler(
            ds.lengths,
            self.batch_size,
            shuffle=train,
            seed=self.seed,
            pool=self.pool if self.bucket else 1,  # pool=1: plain shuffled batches
            num_replicas=replicas,
            rank=rank,
        )
        collate_fn = collate
        if train and self.spec_augment:
            collate_fn = _SpecAugmentCollate(dict(self.spec_augment))
        return DataLoader(
            ds,
            batch_sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate_fn,
            persistent_workers=self.num_workers > 0,
        )


class _SpecAugmentCollate:
    """Time/frequency masking of each training utterance before padding."""

    def __init__(self, params: dict[str, Any]):
        self.params = params

    def __call__(self, items):
        from rnnlab.data.speech.augment import spec_augment

        items = [(spec_augment(x, **self.params), y) for x, y in items]
        return collate(items)


def dataset_size(data_dir: str | Path) -> dict[str, int]:
    meta = read_meta(data_dir)
    return {k: v["total"] for k, v in meta.get("counts", {}).items()}


__all__ = ["ProcessedDataModule", "dataset_size"]
