"""The processed-data format every prepare stage writes and every DataModule reads.

``data/processed/<name>/`` holds ``train.pt``, ``val.pt``, ``test.pt`` and ``meta.json``.
A split file is a dict of tensors only (loads with ``weights_only=True``):

* ``inputs``: all sequences concatenated on dim 0 — token ids (N_total,) int64, or
  feature frames (N_total, F) float32;
* ``offsets``: (N + 1,) int64, sequence i is ``inputs[offsets[i]:offsets[i+1]]``;
* ``targets``: (N,) int64 class ids, or for CTC the concatenated label ids with
  ``target_offsets`` (N + 1,) like ``offsets``.

``meta.json`` records what a model and a reader need (task, input kind and width,
labels, vocabulary/tokenizer file, feature parameters) and what a reviewer needs
(counts per split and class, skipped items by reason, sha256 of each split file).
Files are written atomically (temp file + rename) so no reader sees a torn file.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rnnlab.data.memory import release_freed_memory
from rnnlab.data.splits import SPLITS
from rnnlab.errors import DataError
from rnnlab.io import atomic_torch_save, atomic_write_bytes, sha256_file


@dataclass
class Split:
    """One split in memory: variable-length sequences and their targets."""

    inputs: list[torch.Tensor]
    targets: list[Any]  # int class ids, or lists of label ids (CTC)

    def __len__(self) -> int:
        return len(self.inputs)


def pack_split(split: Split) -> dict[str, torch.Tensor]:
    """The split-file dict of the module docstring. ``split.inputs`` ends up holding views
    into the packed ``inputs`` (:func:`concat_releasing`)."""
    if len(split) == 0:
        raise DataError("cannot write an empty split")
    lengths = torch.tensor([len(x) for x in split.inputs], dtype=torch.long)
    if bool((lengths < 1).any()):
        raise DataError("sequences must have at least one step")
    packed = {
        "inputs": concat_releasing(split.inputs),
        "offsets": torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)]),
    }
    if split.targets and isinstance(split.targets[0], (list, tuple, torch.Tensor)):
        t_lengths = torch.tensor([len(t) for t in split.targets], dtype=torch.long)
        packed["targets"] = torch.tensor(
            [int(v) for t in split.targets for v in t], dtype=torch.long
        )
        packed["target_offsets"] = torch.cat(
            [torch.zeros(1, dtype=torch.long), t_lengths.cumsum(0)]
        )
    else:
        packed["targets"] = torch.tensor([int(t) for t in split.targets], dtype=torch.long)
    return packed


TRIM_EVERY_BYTES = 64 << 20


def concat_releasing(seqs: list[torch.Tensor]) -> torch.Tensor:
    """``torch.cat(seqs, 0)``, replacing each list entry by its view into the result as it
    is copied, so each original tensor is freed at once when nothing else holds it, and
    handing the freed heap back every 64 MB (:mod:`rnnlab.data.memory`): packing a split
    costs about 64 MB, not a second copy of the split."""
    first = seqs[0]
    for i, x in enumerate(seqs):  # torch.cat would refuse these; a copy would broadcast/cast
        if x.shape[1:] != first.shape[1:] or x.dtype != first.dtype:
            raise DataError(
                f"sequence {i} has step shape {tuple(x.shape[1:])} and dtype {x.dtype}; "
                f"sequence 0 has {tuple(first.shape[1:])} and {first.dtype}: every sequence "
                "of a split must have the same step shape and dtype"
            )
    out = torch.empty((sum(len(x) for x in seqs), *first.shape[1:]), dtype=first.dtype)
    start = copied = 0
    for i in range(len(seqs)):
        n = len(seqs[i])
        out[start : start + n] = seqs[i]
        copied += seqs[i].nbytes
        seqs[i] = out[start : start + n]
        start += n
        if copied >= TRIM_EVERY_BYTES:  # the freed originals back to the OS
            release_freed_memory()
            copied = 0
    return out


def write_processed(out_dir: str | Path, splits: dict[str, Split], meta: dict[str, Any]) -> dict:
    """Write the three splits and ``meta.json``; returns the final meta.

    ``meta`` must hold at least ``task`` ("classification" or "ctc"), ``input_kind``
    ("tokens" or "features"), ``input_dim`` and ``labels`` (class names or CTC symbols,
    CTC's blank excluded). Counts and checksums are added here.
    """
    out = Path(out_dir)
    missing = [s for s in SPLITS if s not in splits]
    if missing:
        raise DataError(f"{out}: missing split(s) {missing}; every dataset needs {list(SPLITS)}")
    for key in ("task", "input_kind", "input_dim", "labels"):
        if key not in meta:
            raise DataError(f"{out}/meta.json: missing key {key!r}")
    meta = dict(meta)
    meta.setdefault("counts", {})
    meta["checksums"] = {}
    for name in SPLITS:
        split = splits[name]
        path = out / f"{name}.pt"
        atomic_torch_save(pack_split(split), path)
        meta["checksums"][f"{name}.pt"] = sha256_file(path)
        counts = meta["counts"].setdefault(name, {})
        counts["total"] = len(split)
        if meta["task"] == "classification":
            per = Counter(int(t) for t in split.targets)
            counts["per_class"] = {
                meta["labels"][k]: per.get(k, 0) for k in range(len(meta["labels"]))
            }
    atomic_write_bytes(out / "meta.json", json.dumps(meta, indent=2, ensure_ascii=False).encode())
    return meta


def read_meta(data_dir: str | Path) -> dict[str, Any]:
    path = Path(data_dir) / "meta.json"
    if not path.is_file():
        raise DataError(
            f"{path}: not found — prepare the dataset first "
            f"(`dvc repro` or `python -m rnnlab.data.prepare data=<name>`)"
        )
    return json.loads(path.read_text())


class ProcessedSequences(torch.utils.data.Dataset):
    """A split read back from ``<dir>/<split>.pt``: item i -> (inputs, target)."""

    def __init__(self, data_dir: str | Path, split: str, verify: bool = True) -> None:
        path = Path(data_dir) / f"{split}.pt"
        if not path.is_file():
            raise DataError(f"{path}: split file not found; valid splits: {', '.join(SPLITS)}")
        if verify:
            expected = read_meta(data_dir).get("checksums", {}).get(path.name)
            if expected and sha256_file(path) != expected:
                raise DataError(
                    f"{path}: sha256 does not match meta.json; re-run the prepare stage"
                )
        # mmap: pages are read on demand and shared by DDP ranks and loader workers
        # on one machine, instead of one private copy of a multi-GB split each.
        d = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        self.inputs, self.offsets, self.targets = d["inputs"], d["offsets"], d["targets"]
        self.target_offsets = d.get("target_offsets")
        self.lengths = (self.offsets[1:] - self.offsets[:-1]).tolist()

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int):
        x = self.inputs[self.offsets[i] : self.offsets[i + 1]]
        if self.target_offsets is None:
            return x, self.targets[i]
        return x, self.targets[self.target_offsets[i] : self.target_offsets[i + 1]]


def collate(items: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Pad a list of (inputs, target) into a batch dict with lengths (pad value 0)."""
    inputs, targets = zip(*items)
    lengths = torch.tensor([len(x) for x in inputs], dtype=torch.long)
    batch = {
        "inputs": torch.nn.utils.rnn.pad_sequence(list(inputs), batch_first=True),
        "lengths": lengths,
    }
    if targets[0].dim() == 0:
        batch["targets"] = torch.stack(list(targets))
    else:
        batch["target_lengths"] = torch.tensor([len(t) for t in targets], dtype=torch.long)
        batch["targets"] = torch.nn.utils.rnn.pad_sequence(list(targets), batch_first=True)
    return batch
