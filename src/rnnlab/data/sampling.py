"""Batch order as a pure function of (seed, epoch), for every DataModule.

Lightning calls ``set_epoch`` before every epoch, so a run resumed at epoch N sees the
same order as an uninterrupted run did, and training epochs reseed the global
generators from (seed, epoch) so dropout and augmentation replay too.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

from rnnlab.errors import DataError


class BucketBatchSampler(Sampler[list[int]]):
    """Shuffle, cut into pools of ``pool`` batches, sort each pool by length, batch it.

    Batches are then shuffled (training) so lengths vary across steps but not inside
    a batch. ``num_replicas``/``rank`` split the batches across DDP ranks.
    """

    def __init__(
        self,
        lengths: list[int],
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        pool: int = 50,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = False,
    ):
        if batch_size < 1:
            raise DataError(f"data.batch_size={batch_size} must be >= 1")
        if isinstance(pool, bool) or not isinstance(pool, int) or pool < 1:
            raise DataError(f"data.pool={pool!r} must be an integer >= 1")
        self.lengths, self.batch_size, self.shuffle = lengths, batch_size, shuffle
        self.seed, self.pool, self.epoch = seed, pool, 0
        self.num_replicas, self.rank, self.drop_last = num_replicas, rank, drop_last

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        rng = random.Random(self.seed * 100003 + self.epoch)
        idx = list(range(len(self.lengths)))
        if self.shuffle:
            rng.shuffle(idx)
        size = self.batch_size * self.pool
        batches = []
        for start in range(0, len(idx), size):
            chunk = sorted(idx[start : start + size], key=lambda i: self.lengths[i])
            batches += [
                chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)
            ]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        if self.shuffle:
            rng.shuffle(batches)
        if self.num_replicas > 1:  # equal share per rank: pad by repeating the first batches
            per_rank = math.ceil(len(batches) / self.num_replicas)
            batches += batches[: per_rank * self.num_replicas - len(batches)]
            batches = batches[self.rank :: self.num_replicas]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        if self.shuffle:  # training: the epoch's randomness follows (seed, epoch)
            seed_epoch(self.seed, self.epoch)
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())


def seed_epoch(seed: int, epoch: int) -> None:
    """Seed the global generators (torch, random, numpy) from (seed, epoch).

    Called when a training epoch's batches are first requested, so everything random
    during the epoch (dropout, SpecAugment) is a pure function of (seed, epoch): a run
    resumed at epoch N from last.ckpt draws exactly what the uninterrupted run drew,
    whatever callbacks consumed from the generators between epochs (e.g. a gradient
    probe after the checkpoint was written) and without storing generator states.
    """
    s = (int(seed) * 1_000_003 + int(epoch)) % (2**63)
    torch.manual_seed(s)
    random.seed(s)
    np.random.seed(s % (2**32))


class EpochShuffleSampler(Sampler[int]):
    """A permutation that is a pure function of (seed, epoch).

    Lightning calls ``set_epoch`` before every epoch, so a run resumed at epoch N sees
    the same order as an uninterrupted run did (a DataLoader ``generator`` would restart
    from the seed and replay epoch 0's order). Shuffling (training) also reseeds the
    global generators for the epoch (see ``seed_epoch``).
    """

    def __init__(self, n: int, seed: int, shuffle: bool) -> None:
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.n))
        seed_epoch(self.seed, self.epoch)  # training: dropout etc. follow (seed, epoch)
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n
