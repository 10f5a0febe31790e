"""The LibriSpeech downloader against the local 127.0.0.1 server: verified, resumed, once."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from rnnlab.data.speech.librispeech import SHA256, build_librispeech, subset_plan
from rnnlab.errors import DataError
from rnnlab.io import sha256_file
from tests.unit.data.test_transcripts import make_librispeech


def librispeech_archive(tmp: Path, subset: str, speakers: list[int]) -> Path:
    """``<subset>.tar.gz`` laid out as OpenSLR's: ``LibriSpeech/<subset>/<spk>/<chapter>/``."""
    make_librispeech(tmp / subset / "LibriSpeech", {subset: speakers})
    (tmp / subset / "LibriSpeech" / "LICENSE.TXT").write_text("CC BY 4.0\n")
    archive = tmp / f"{subset}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp / subset / "LibriSpeech", arcname="LibriSpeech")
    return archive


def test_download_resumes_verifies_and_extracts_once(tmp_path, http_server):
    archive = librispeech_archive(tmp_path / "src", "dev-clean", [11, 12, 13, 14, 15])
    http_server.files["dev-clean.tar.gz"] = archive
    http_server.truncate_once["dev-clean.tar.gz"] = 200  # the first response breaks off
    kwargs = dict(
        raw_dir=tmp_path / "raw",
        subsets=["dev-clean"],
        base_url=http_server.url(""),
        sha256={"dev-clean": sha256_file(archive)},
        val_fraction=0.2,
        test_fraction=0.2,
    )
    splits, meta = build_librispeech(**kwargs)
    assert ("dev-clean.tar.gz", "bytes=200-") in http_server.requests  # resumed
    assert meta["task"] == "ctc" and meta["split_method"] == "speaker"
    assert sum(len(s) for s in splits.values()) == 10
    assert meta["source"]["subsets"][0]["sha256"] == sha256_file(archive)
    assert meta["speakers"]["test"] and set(meta["speakers"]["test"]).isdisjoint(
        meta["speakers"]["train"]
    )
    extracted = tmp_path / "raw" / "librispeech" / "dev-clean" / "LibriSpeech" / "dev-clean"
    assert (extracted / "11" / "100" / "11-100.trans.txt").is_file()
    n = len(http_server.requests)
    again, _ = build_librispeech(**kwargs)  # cached archive reused, not fetched again
    assert len(http_server.requests) == n
    assert {k: v.targets for k, v in again.items()} == {k: v.targets for k, v in splits.items()}
    (tmp_path / "raw" / "librispeech" / "dev-clean.tar.gz").unlink()
    with pytest.raises(DataError, match="checksum mismatch"):
        build_librispeech(**{**kwargs, "sha256": {"dev-clean": "0" * 64}})


def test_subset_mapping_gives_splits_and_carves_val(tmp_path, http_server):
    for subset, speakers in (("train-clean-100", [1, 2, 3, 4]), ("test-clean", [7])):
        http_server.files[f"{subset}.tar.gz"] = librispeech_archive(tmp_path, subset, speakers)
    sha = {s: sha256_file(tmp_path / f"{s}.tar.gz") for s in ("train-clean-100", "test-clean")}
    _, meta = build_librispeech(
        raw_dir=tmp_path / "raw",
        subsets=["train-clean-100", "test-clean"],
        base_url=http_server.url(""),
        sha256=sha,
        units="word",
        val_fraction=0.25,
    )
    assert meta["split_method"] == "given" and meta["val_carved_from"] == "train"
    assert meta["speakers"]["test"] == ["7"] and len(meta["speakers"]["val"]) == 1
    assert subset_plan({"train": ["dev-clean"], "test": "test-clean"}) == [
        ("dev-clean", "train"),
        ("test-clean", "test"),
    ]
    with pytest.raises(DataError, match=r"unknown \['dev-cleen'\]; valid: dev-clean"):
        subset_plan(["dev-cleen"])
    assert set(SHA256) >= {"dev-clean", "test-clean", "train-clean-100"}
