"""What every rnnlab DataModule shares: the three loader hooks and the DDP world.

:class:`SplitLoaders` is mixed into a ``LightningDataModule`` that defines
``_loader(split, train)``: ``train_dataloader`` shuffles, ``val_``/``test_dataloader``
do not. :meth:`SplitLoaders.world` is ``(replicas, rank)`` of the attached trainer,
``(1, 0)`` without one or on a single process, so each rank can take a disjoint share.
"""

from __future__ import annotations

from torch.utils.data import DataLoader


class SplitLoaders:
    """Mixin: Lightning's ``{train,val,test}_dataloader`` from one ``_loader``."""

    def _loader(self, split: str, train: bool) -> DataLoader:
        raise NotImplementedError

    def world(self) -> tuple[int, int]:
        """``(num_replicas, rank)`` of the attached trainer; ``(1, 0)`` when not distributed."""
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.world_size > 1:
            return trainer.world_size, trainer.global_rank
        return 1, 0

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)
