"""Processed-data format, length buckets and the DataModule that reads them."""

import json
from pathlib import Path

import pytest
import torch

from rnnlab.data.datamodules import ProcessedDataModule
from rnnlab.data.format import Split, write_processed
from rnnlab.data.sampling import BucketBatchSampler
from rnnlab.errors import DataError


def fake_dataset(out_dir, n=(40, 10, 10), feats=3, ctc=False):
    g = torch.Generator().manual_seed(0)
    splits = {}
    for name, count in zip(("train", "val", "test"), n):
        lengths = torch.randint(1, 30, (count,), generator=g).tolist()
        inputs = [torch.randn(t, feats, generator=g) for t in lengths]
        if ctc:
            targets = [
                torch.randint(0, 4, (max(1, t // 4),), generator=g).tolist() for t in lengths
            ]
        else:
            targets = [i % 3 for i in range(count)]
        splits[name] = Split(inputs, targets)
    meta = {
        "task": "ctc" if ctc else "classification",
        "input_kind": "features",
        "input_dim": feats,
        "labels": ["a", "b", "c", "d"] if ctc else ["a", "b", "c"],
    }
    return write_processed(out_dir, splits, meta)


def test_bucket_sampler_covers_everything_once_and_buckets_lengths():
    lengths = torch.randint(1, 200, (1000,), generator=torch.Generator().manual_seed(1)).tolist()
    sampler = BucketBatchSampler(lengths, 16, shuffle=True, seed=3, pool=20)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches)
    random_batches = [list(range(k, min(k + 16, 1000))) for k in range(0, 1000, 16)]
    random_spread = sum(
        max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in random_batches
    )
    assert spread < 0.2 * random_spread


def test_bucket_sampler_is_deterministic_per_seed_and_epoch():
    lengths = list(range(1, 101))
    a = BucketBatchSampler(lengths, 8, shuffle=True, seed=5)
    b = BucketBatchSampler(lengths, 8, shuffle=True, seed=5)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    assert list(BucketBatchSampler(lengths, 8, shuffle=True, seed=6)) != list(b)


def test_bucket_sampler_splits_batches_across_ranks():
    lengths = list(range(1, 102))
    ranks = [
        list(BucketBatchSampler(lengths, 8, shuffle=True, seed=0, num_replicas=2, rank=r))
        for r in (0, 1)
    ]
    assert len(ranks[0]) == len(ranks[1])
    seen = {i for r in ranks for b in r for i in b}
    assert seen == set(range(101))


def test_datamodule_reads_processed_splits(tmp_path):
    meta = fake_dataset(tmp_path)
    assert meta["counts"]["train"]["total"] == 40
    assert sum(meta["counts"]["train"]["per_class"].values()) == 40
    dm = ProcessedDataModule("fake", str(tmp_path), batch_size=8)
    dm.setup()
    assert dm.io.input_dim == 3 and dm.io.output_dim == 3
    batch = next(iter(dm.train_dataloader()))
    assert batch["inputs"].shape[0] == 8 and batch["inputs"].shape[2] == 3
    assert batch["inputs"].shape[1] == int(batch["lengths"].max())
    for x, n in zip(batch["inputs"], batch["lengths"]):
        assert torch.all(x[n:] == 0)


def test_ctc_dataset_batches_carry_target_lengths(tmp_path):
    fake_dataset(tmp_path, ctc=True)
    dm = ProcessedDataModule("fake", str(tmp_path), batch_size=4)
    dm.setup()
    assert dm.io.output_dim == 5 and dm.io.output_per == "step"  # 4 symbols + blank
    batch = next(iter(dm.val_dataloader()))
    assert batch["targets"].shape[0] == 4 and batch["target_lengths"].shape == (4,)


def test_tampered_split_file_is_refused(tmp_path):
    fake_dataset(tmp_path)
    (tmp_path / "train.pt").write_bytes((tmp_path / "val.pt").read_bytes())
    dm = ProcessedDataModule("fake", str(tmp_path))
    with pytest.raises(DataError, match="train.pt: sha256 does not match"):
        dm.setup()


def test_missing_dataset_says_how_to_prepare(tmp_path):
    with pytest.raises(DataError, match="prepare the dataset first"):
        ProcessedDataModule("nothing", str(tmp_path / "nothing"))


def test_meta_is_complete(tmp_path):
    fake_dataset(tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert set(meta["checksums"]) == {"train.pt", "val.pt", "test.pt"}


def test_spec_augment_masks_training_batches_only(tmp_path):
    fake_dataset(tmp_path, n=(16, 8, 8), feats=12)
    plain = ProcessedDataModule("fake", str(tmp_path), batch_size=16)
    masked = ProcessedDataModule(
        "fake",
        str(tmp_path),
        batch_size=16,
        spec_augment={"freq_mask": 4, "time_mask": 5, "num_masks": 2},
    )
    plain.setup()
    masked.setup()
    a, b = next(iter(plain.train_dataloader())), next(iter(masked.train_dataloader()))
    assert torch.equal(a["lengths"], b["lengths"]) and a["inputs"].shape == b["inputs"].shape
    assert not torch.equal(a["inputs"], b["inputs"]), "training features must be masked"
    va, vb = next(iter(plain.val_dataloader())), next(iter(masked.val_dataloader()))
    assert torch.equal(va["inputs"], vb["inputs"]), "validation features are never masked"


def test_split_files_are_memory_mapped_and_identical_for_identical_data(tmp_path):
    """Writing streams into the temp file (no in-memory copy) yet gives the same bytes
    for the same data, whatever the temp file was called; reading maps the file, so DDP
    ranks and loader workers on one machine share one copy of a large split."""
    from rnnlab.data.format import ProcessedSequences
    from rnnlab.io import sha256_file

    a, b = fake_dataset(tmp_path / "a"), fake_dataset(tmp_path / "b")
    assert a["checksums"] == b["checksums"]
    assert sha256_file(tmp_path / "a" / "train.pt") == sha256_file(tmp_path / "b" / "train.pt")
    ds = ProcessedSequences(tmp_path / "a", "train")
    mapped = Path("/proc/self/maps").read_text()
    assert str(tmp_path / "a" / "train.pt") in mapped, "train.pt is not memory-mapped"
    assert len(ds) == 40 and ds[0][0].shape[1] == 3


def test_packing_a_split_releases_each_sequence_as_it_is_copied():
    import weakref

    from rnnlab.data.format import concat_releasing

    g = torch.Generator().manual_seed(0)
    seqs = [torch.randn(n, 3, generator=g) for n in (5, 1, 17, 2)]
    expected = torch.cat(seqs, 0)
    refs = [weakref.ref(x) for x in seqs]
    out = concat_releasing(seqs)
    assert torch.equal(out, expected)
    assert all(r() is None for r in refs), "an original sequence is still alive"
    assert [x.data_ptr() for x in seqs] == [out[o].data_ptr() for o in (0, 5, 6, 23)], (
        "each entry must be a view into the packed tensor"
    )
    tokens = [torch.tensor([3, 1]), torch.tensor([7])]  # 1-D token ids pack the same way
    assert concat_releasing(tokens).tolist() == [3, 1, 7]


@pytest.mark.parametrize(
    "odd", [torch.zeros(4, 1), torch.zeros(4, 3, dtype=torch.float64)], ids=["shape", "dtype"]
)
def test_packing_refuses_a_sequence_unlike_the_others_instead_of_broadcasting_it(odd):
    from rnnlab.data.format import concat_releasing

    seqs = [torch.ones(2, 3), odd]
    with pytest.raises(DataError, match=r"sequence 1 has step shape .* sequence 0 has \(3,\)"):
        concat_releasing(seqs)
    assert torch.equal(seqs[0], torch.ones(2, 3)), "a refused split must be left as it was"
