"""Synthetic probes' DataModules: whole-batch fetching gives the per-item batches."""

import pytest
import torch
from torch.utils.data import DataLoader

from rnnlab.data.probes import AddingDataModule, CopyDataModule, _to_batch


@pytest.mark.parametrize("cls", [AddingDataModule, CopyDataModule])
@pytest.mark.parametrize("split", ["train", "val"])
def test_batches_equal_item_by_item_collation(cls, split):
    dm = cls(seq_len=20, num_train=150, num_val=70, num_test=16, batch_size=32, seed=3)
    dm.setup()
    loader = dm.train_dataloader() if split == "train" else dm.val_dataloader()
    loader.sampler.set_epoch(2)
    batches = list(loader)
    loader.sampler.set_epoch(2)
    order = list(loader.sampler)
    ds = dm.splits[split]
    expected = [_to_batch([ds[i] for i in order[k : k + 32]]) for k in range(0, len(order), 32)]
    assert len(batches) == len(expected)
    for got, want in zip(batches, expected):
        assert got.keys() == want.keys()
        for key in got:
            assert got[key].dtype == want[key].dtype and torch.equal(got[key], want[key])


def test_splits_stay_plain_datasets_for_plain_loaders():
    dm = AddingDataModule(seq_len=10, num_train=8, num_val=8, num_test=8, batch_size=4)
    dm.setup()
    ds = dm.splits["train"]
    inputs, lengths, targets = ds[3]
    assert inputs.shape == (10, 2) and int(lengths) == 10 and targets.shape == (1,)
    # A plain DataLoader (default collate) still gets per-item tuples.
    inputs, lengths, targets = next(iter(DataLoader(ds, batch_size=4, collate_fn=None)))
    assert inputs.shape == (4, 10, 2)
