"""Unwritable or full output directories fail at start naming the path; checkpoints,
metrics and processed data are written atomically, so a crash or a full disk during a
save leaves the previous file intact and no temp file behind."""

from __future__ import annotations

import errno
import os

import pytest
import torch

from rnnlab.checkpoints import AtomicCheckpointIO, check_output_dir
from rnnlab.data.format import Split, write_processed
from rnnlab.errors import OutputError
from rnnlab.io import atomic_write_bytes
from tests.helpers import FAST, run_cli


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_output_dir_under_a_regular_file_fails_at_start_naming_it(tmp_path):
    # chmod cannot block root; a directory whose parent is a file is unwritable for anyone
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file")
    out = blocker / "run"
    proc = run_cli(
        "rnnlab.train",
        f"paths.output_dir={out}",
        f"hydra.run.dir={tmp_path / 'hydra'}",
        *FAST,
        check=False,
    )
    assert proc.returncode != 0
    assert f"paths.output_dir='{out}' is not writable" in proc.stderr, proc.stderr[-2000:]
    assert "hydra.run.dir=" in proc.stderr  # says how to fix it
    assert "Epoch" not in proc.stdout + proc.stderr  # failed before training
    assert not list((tmp_path / "hydra").glob("**/*.ckpt"))


def test_full_disk_at_start_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "write", _enospc)
    with pytest.raises(OutputError, match=r"is not writable: .*\(the disk is full\)") as err:
        check_output_dir(tmp_path / "out")
    assert str(tmp_path / "out") in str(err.value)
    assert not [p for p in (tmp_path / "out").iterdir()], "the probe file must be removed"


def test_writable_output_dir_passes_and_is_left_clean(tmp_path):
    assert check_output_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert list((tmp_path / "a" / "b").iterdir()) == []


@pytest.mark.parametrize("fail_at", ["write", "fsync", "replace"])
def test_failed_atomic_write_keeps_previous_file_and_no_temp(tmp_path, monkeypatch, fail_at):
    target = tmp_path / "file.bin"
    atomic_write_bytes(target, b"old contents")
    if fail_at == "write":  # the disk fills up half-way through the data
        real_fdopen = os.fdopen

        class HalfWriter:
            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            def write(self, data):
                self.f.write(data[: len(data) // 2])
                self.f.flush()
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "fdopen", lambda fd, mode: HalfWriter(real_fdopen(fd, mode)))
    else:
        monkeypatch.setattr(os, fail_at, _enospc)
    with pytest.raises(OutputError, match="No space left on device") as err:
        atomic_write_bytes(target, b"new contents that never land")
    monkeypatch.undo()
    assert str(target) in str(err.value)
    assert target.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"], "temp file left behind"


def test_atomic_checkpoint_io_roundtrip_and_interrupt(tmp_path, monkeypatch):
    io_plugin = AtomicCheckpointIO()
    path = tmp_path / "ckpts" / "last.ckpt"
    io_plugin.save_checkpoint({"epoch": 0, "w": torch.ones(3)}, path)
    assert torch.equal(io_plugin.load_checkpoint(path)["w"], torch.ones(3))

    def crash(*args):  # the process dies between writing the temp file and the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        io_plugin.save_checkpoint({"epoch": 1, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["epoch"] == 0
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]


def test_crash_while_training_saves_a_checkpoint_keeps_the_previous_one(
    tmp_path, monkeypatch, compose_cfg
):
    """The real Trainer uses the atomic plugin: when the disk fills up while last.ckpt of
    epoch 1 is written, the run fails naming the file and epoch 0's last.ckpt survives."""
    from rnnlab.train import train

    cfg = compose_cfg(tmp_path, "trainer.max_epochs=3")
    real_replace = os.replace
    saves: list[str] = []

    def replace(src, dst):
        if str(dst).endswith("last.ckpt"):
            saves.append(str(dst))
            if len(saves) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OutputError, match="No space left on device") as err:
        train(cfg)
    monkeypatch.undo()
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert str(last) in str(err.value)
    assert len(saves) == 2, "the Trainer must save through AtomicCheckpointIO"
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["epoch"] == 0 and ckpt["state_dict"]
    assert not [p for p in last.parent.iterdir() if p.name.endswith(".tmp")]
    assert not (tmp_path / "metrics.json").exists()


def test_processed_data_write_failure_keeps_previous_dataset(tmp_path, monkeypatch):
    def splits(value: int) -> dict[str, Split]:
        return {
            s: Split([torch.full((3,), value, dtype=torch.long)] * 2, [0, 1])
            for s in ("train", "val", "test")
        }

    meta = {"task": "classification", "input_kind": "tokens", "input_dim": 10, "labels": ["a", "b"]}
    write_processed(tmp_path, splits(1), meta)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real_replace = os.replace

    def replace(src, dst):  # full disk when the second split file lands
        if str(dst).endswith("val.pt"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OutputError, match="val.pt"):
        write_processed(tmp_path, splits(2), meta)
    monkeypatch.undo()
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(after) == sorted(before), "no temp files left"
    assert after["val.pt"] == before["val.pt"] and after["meta.json"] == before["meta.json"]
    # train.pt was replaced before the failure: the old meta.json's checksum exposes it
    from rnnlab.data.format import ProcessedSequences
    from rnnlab.errors import DataError

    with pytest.raises(DataError, match="sha256 does not match meta.json"):
        ProcessedSequences(tmp_path, "train")


def test_split_file_streams_to_disk_and_a_full_disk_keeps_the_previous_one(tmp_path, monkeypatch):
    """A 64 MB split is written without a bytes copy of it in memory (tracemalloc sees
    every bytes object), and when the disk fills up part-way the previous file survives."""
    import tracemalloc

    from rnnlab.io import atomic_torch_save

    target = tmp_path / "train.pt"
    big = {"inputs": torch.ones(16 << 20)}  # 64 MB of float32
    tracemalloc.start()
    try:
        atomic_torch_save(big, target)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"{peak / 2**20:.0f} MB of Python objects while saving 64 MB"
    assert torch.equal(torch.load(target, weights_only=True)["inputs"], big["inputs"])

    real_fdopen = os.fdopen

    class FillsUp:  # the disk is full after the first megabyte of the new file
        def __init__(self, f):
            self.f, self.written = f, 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.written += len(data)
            if self.written > 1 << 20:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FillsUp(real_fdopen(fd, mode)))
    with pytest.raises(OutputError, match="No space left on device"):
        atomic_torch_save({"inputs": torch.zeros(16 << 20)}, target)
    monkeypatch.undo()
    assert torch.equal(torch.load(target, weights_only=True)["inputs"], big["inputs"])
    assert [p.name for p in tmp_path.iterdir()] == ["train.pt"], "temp file left behind"
