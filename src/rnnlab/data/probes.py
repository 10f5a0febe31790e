"""Long-dependency probes generated on the fly (docs/equations.md, "Long-dependency probes").

* adding problem: input T x 2; channel 0 uniform in [0, 1], channel 1 marks exactly two
  positions (one in each half) with 1; target = sum of the two marked values. Always
  predicting 1 gives MSE ~ 0.167, the baseline a model must beat.
* copy task: ``copy_length`` symbols from an alphabet of ``num_symbols``, then T blanks,
  then a delimiter, then ``copy_length`` blanks during which the model must emit the
  symbols. Targets are -100 (ignored) everywhere but the last ``copy_length`` steps.

Each split is drawn from its own seeded generator, so data are identical across runs
and machines for a given seed, and train/val/test never share a generator stream.
"""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, TensorDataset

from rnnlab.data.loaders import SplitLoaders
from rnnlab.data.sampling import EpochShuffleSampler
from rnnlab.nn.heads import IGNORE_INDEX
from rnnlab.nn.model import ModelIO

_SPLIT_OFFSET = {"train": 0, "val": 1, "test": 2}


def adding_problem(n: int, seq_len: int, generator: torch.Generator):
    """Return inputs (n, T, 2) and targets (n, 1)."""
    if seq_len < 2:
        raise ValueError(f"data.seq_len={seq_len} must be >= 2 for the adding problem")
    values = torch.rand(n, seq_len, generator=generator)
    half = seq_len // 2
    first = torch.randint(0, half, (n,), generator=generator)
    second = torch.randint(half, seq_len, (n,), generator=generator)
    marks = torch.zeros(n, seq_len)
    rows = torch.arange(n)
    marks[rows, first] = 1.0
    marks[rows, second] = 1.0
    targets = (values * marks).sum(1, keepdim=True)
    return torch.stack([values, marks], dim=-1), targets


def copy_task(
    n: int, seq_len: int, generator: torch.Generator, num_symbols: int = 8, copy_length: int = 10
):
    """Return token ids (n, copy_length + T + 1 + copy_length) and per-step targets.

    Token ids: 0 padding (unused), 1..num_symbols symbols, num_symbols+1 blank,
    num_symbols+2 delimiter. Targets are symbol classes 0..num_symbols-1 or -100.
    """
    if seq_len < 0 or num_symbols < 1 or copy_length < 1:
        raise ValueError(
            f"copy task needs seq_len >= 0, num_symbols >= 1, copy_length >= 1; got "
            f"seq_len={seq_len}, num_symbols={num_symbols}, copy_length={copy_length}"
        )
    blank, delim = num_symbols + 1, num_symbols + 2
    symbols = torch.randint(1, num_symbols + 1, (n, copy_length), generator=generator)
    total = 2 * copy_length + seq_len + 1
    inputs = torch.full((n, total), blank, dtype=torch.long)
    inputs[:, :copy_length] = symbols
    inputs[:, copy_length + seq_len] = delim
    targets = torch.full((n, total), IGNORE_INDEX, dtype=torch.long)
    targets[:, -copy_length:] = symbols - 1
    return inputs, targets


class SyntheticDataModule(SplitLoaders, L.LightningDataModule):
    """Base for generated datasets: fixed-size, seeded splits; batches are dicts."""

    task_type = "classification"

    def __init__(
        self,
        seq_len: int = 100,
        num_train: int = 10000,
        num_val: int = 1000,
        num_test: int = 1000,
        batch_size: int = 64,
        seed: int = 0,
        num_workers: int = 0,
    ):
        super().__init__()
        for key, value in {
            "seq_len": seq_len,
            "num_train": num_train,
            "num_val": num_val,
            "num_test": num_test,
            "batch_size": batch_size,
        }.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"data.{key}={value!r} must be an integer >= 1")
        self.seq_len, self.batch_size, self.seed = seq_len, batch_size, seed
        self.sizes = {"train": num_train, "val": num_val, "test": num_test}
        self.num_workers = num_workers
        self.splits: dict[str, TensorDataset] = {}

    def generate(self, n: int, generator: torch.Generator):
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        for split, n in self.sizes.items():
            g = torch.Generator().manual_seed(self.seed * 3 + _SPLIT_OFFSET[split])
            inputs, targets = self.generate(n, g)
            lengths = torch.full((n,), inputs.shape[1], dtype=torch.long)
            self.splits[split] = TensorDataset(inputs, lengths, targets)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        ds = self.splits[split]
        replicas, rank = self.world()
        if replicas > 1:
            sampler: Sampler[int] = DistributedSampler(
                ds, replicas, rank, shuffle=shuffle, seed=self.seed
            )
        else:
            sampler = EpochShuffleSampler(len(ds), self.seed, shuffle)
        return DataLoader(
            _BatchFetch(ds),
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=_to_batch,  # the dataset already returns whole batches
            persistent_workers=self.num_workers > 0,
        )


class _BatchFetch(Dataset):
    """A split's ``TensorDataset(inputs, lengths, targets)`` that fetches whole batches.

    A DataLoader calls ``__getitems__`` with a batch's indices: three index operations
    instead of indexing and stacking ``batch_size`` items one by one (same batch, same
    order). The split itself stays a plain TensorDataset for any other use.
    """

    def __init__(self, data: TensorDataset) -> None:
        self.tensors = data.tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        inputs, lengths, targets = (t[index] for t in self.tensors)
        return {"inputs": inputs, "lengths": lengths, "targets": targets}


def _to_batch(items) -> dict[str, torch.Tensor]:
    if isinstance(items, dict):  # _BatchFetch.__getitems__: already a batch
        return items
    inputs, lengths, targets = zip(*items)
    return {
        "inputs": torch.stack(inputs),
        "lengths": torch.stack(lengths),
        "targets": torch.stack(targets),
    }


class AddingDataModule(SyntheticDataModule):
    task_type = "regression"

    @property
    def io(self) -> ModelIO:
        return ModelIO("features", 2, 1, "sequence")

    def generate(self, n, generator):
        return adding_problem(n, self.seq_len, generator)


class CopyDataModule(SyntheticDataModule):
    task_type = "classification"

    def __init__(self, num_symbols: int = 8, copy_length: int = 10, **kwargs):
        super().__init__(**kwargs)
        self.num_symbols, self.copy_length = num_symbols, copy_length

    @property
    def io(self) -> ModelIO:
        return ModelIO("tokens", self.num_symbols + 3, self.num_symbols, "step")

    @property
    def class_names(self) -> list[str]:
        return [f"symbol_{i + 1}" for i in range(self.num_symbols)]

    def generate(self, n, generator):
        return copy_task(n, self.seq_len, generator, self.num_symbols, self.copy_length)
