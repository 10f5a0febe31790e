"""Google Speech Commands: download from the local test server, official lists, extras."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import soundfile as sf

from rnnlab.data.speech.speech_commands import build_speech_commands
from rnnlab.errors import DataError
from tests.unit.data.test_speech_folder import tone


def _wav_bytes(freq: float, seconds: float = 1.0) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, tone(16000, seconds, freq), 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _speech_commands_fixture(path: Path) -> dict[str, str]:
    """A tiny archive in the official layout; returns {relative path: expected split}."""
    expected = {}
    val, test = [], []
    with tarfile.open(path, "w:gz") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for w, word in enumerate(
            ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "bed")
        ):
            for s, spk in enumerate(("0a1b2c3d", "1f2e3d4c", "2b3c4d5e")):
                rel = f"{word}/{spk}_nohash_0.wav"
                add(rel, _wav_bytes(200 + 100 * w, 0.8 if s == 0 else 1.0))
                split = ("train", "val", "test")[s]
                (val if split == "val" else test if split == "test" else []).append(rel)
                if word != "bed":
                    expected[rel] = split
        add("_background_noise_/white_noise.wav", _wav_bytes(60, 3.0))
        add("validation_list.txt", ("\n".join(val) + "\n").encode())
        add("testing_list.txt", ("\n".join(test) + "\n").encode())
    return expected


def test_speech_commands_download_follows_official_lists(tmp_path, http_server):
    archive = tmp_path / "speech_commands_v0.02.tar.gz"
    expected = _speech_commands_fixture(archive)
    http_server.files[archive.name] = archive
    url = http_server.url(archive.name)
    splits, meta = build_speech_commands(
        raw_dir=tmp_path / "raw", url=url, features={"n_mels": 16}, normalize=False
    )
    assert meta["labels"][:10] == [
        "yes",
        "no",
        "up",
        "down",
        "left",
        "right",
        "on",
        "off",
        "stop",
        "go",
    ]
    assert len(meta["labels"]) == 10
    assert {k: len(v) for k, v in splits.items()} == {"train": 10, "val": 10, "test": 10}
    assert meta["speakers"] == {"train": ["0a1b2c3d"], "val": ["1f2e3d4c"], "test": ["2b3c4d5e"]}
    for split in splits.values():
        assert sorted(split.targets) == list(range(10))
        assert all(x.shape == (101, 16) for x in split.inputs)  # 0.8 s clips padded to 1 s
    assert (tmp_path / "raw" / "speech_commands_v0.02.tar.gz").is_file()
    # unknown + silence classes; a second call reuses the cached archive
    splits, meta = build_speech_commands(
        raw_dir=tmp_path / "raw",
        url=url,
        include_unknown=True,
        include_silence=True,
        unknown_fraction=0.1,
        silence_fraction=0.2,
        features={"n_mels": 16},
    )
    assert meta["labels"][10:] == ["_unknown_", "_silence_"]
    assert len(splits["train"]) == 10 + 1 + round(0.2 * 11)
    assert len(expected) == 30
    assert [path for path, _ in http_server.requests] == [archive.name]  # downloaded once


def test_speech_commands_extracts_once_and_names_bad_words(tmp_path):
    """The archive is unpacked once per archive digest (extract_once), not on every run."""
    raw = tmp_path / "raw"
    raw.mkdir()
    archive = raw / "speech_commands_v0.02.tar.gz"
    _speech_commands_fixture(archive)
    url = archive.as_uri()
    kwargs = dict(raw_dir=raw, url=url, words=["yes", "no"], features={"n_mels": 16})
    first, _ = build_speech_commands(**kwargs)
    assert sum(len(s) for s in first.values()) == 6
    extracted = raw / "speech_commands_v0.02" / "yes" / "0a1b2c3d_nohash_0.wav"
    extracted.unlink()  # not re-extracted: the marker matches the archive
    again, _ = build_speech_commands(**kwargs)
    assert sum(len(s) for s in again.values()) == 5 and not extracted.exists()
    with pytest.raises(DataError, match=r"word folder\(s\) \['nope'\] not in the archive"):
        build_speech_commands(**{**kwargs, "words": ["yes", "nope"]})
    with pytest.raises(DataError, match="non-text entries"):
        build_speech_commands(**{**kwargs, "words": ["yes", False]})
    with pytest.raises(DataError, match="on_bad_input='strict'"):
        build_speech_commands(**kwargs, on_bad_input="strict")
