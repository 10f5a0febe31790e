"""Bring-your-own audio: folders and manifests, bad files, speaker and hash splits."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rnnlab.data.speech.assign import warn_shared_speakers
from rnnlab.data.speech.folder import build_audio_folder
from rnnlab.errors import DataError


def tone(sr: int, seconds: float, freq: float, channels: int = 1) -> np.ndarray:
    """A 0.3-amplitude sine, (samples,) or (samples, channels)."""
    t = np.arange(int(sr * seconds)) / sr
    x = 0.3 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([x] * channels, 1) if channels > 1 else x


def _make_folder(root: Path) -> None:
    for label, freq in (("high", 2000.0), ("low", 300.0)):
        (root / label).mkdir(parents=True)
        for spk in ("aa01", "bb02", "cc03", "dd04"):
            sf.write(root / label / f"{spk}_nohash_0.wav", tone(8000, 0.5, freq, 2), 8000)
            sf.write(root / label / f"{spk}_nohash_1.wav", tone(44100, 0.7, freq), 44100)
    (root / "low" / "ee05_nohash_0.wav").write_bytes(b"RIFF\x00\x00garbage, not a wav file")
    (root / "high" / "ff06_nohash_0.wav").write_bytes(b"")
    (root / "_background_noise_").mkdir()
    sf.write(root / "_background_noise_" / "noise.wav", tone(16000, 1.0, 50.0), 16000)


def test_audio_folder_skips_bad_files_and_splits_by_speaker(tmp_path):
    _make_folder(tmp_path / "data")
    splits, meta = build_audio_folder(
        root=tmp_path / "data",
        speaker_pattern=r"^([0-9a-f]+)_nohash_",
        val_fraction=0.25,
        test_fraction=0.25,
        seed=1,
    )
    assert meta["labels"] == ["high", "low"]
    assert meta["skipped"] == {"empty": 1, "unreadable": 1}
    assert sum(len(s) for s in splits.values()) == 16
    spk = meta["speakers"]
    assert all(len(spk[k]) >= 1 for k in spk)
    assert set(spk["train"]).isdisjoint(spk["test"]) and set(spk["train"]).isdisjoint(spk["val"])
    lengths = {len(x) for s in splits.values() for x in s.inputs}
    assert lengths == {51, 71}  # 0.5 s and 0.7 s at 10 ms hop, both resampled to 16 kHz
    with pytest.raises(DataError, match=r"ff06_nohash_0\.wav: empty"):
        build_audio_folder(root=tmp_path / "data", on_bad_input="error")
    (tmp_path / "data" / "high" / "ff06_nohash_0.wav").unlink()
    with pytest.raises(DataError, match=r"ee05_nohash_0\.wav: unreadable.*on_bad_input=skip"):
        build_audio_folder(root=tmp_path / "data", on_bad_input="error")
    with pytest.raises(DataError, match="on_bad_input='ignore'"):
        build_audio_folder(root=tmp_path / "data", on_bad_input="ignore")


def test_audio_folder_manifest(tmp_path):
    _make_folder(tmp_path / "data")
    rows = ["path,label,speaker"]
    for label in ("high", "low"):
        for p in sorted((tmp_path / "data" / label).glob("*.wav")):
            rows.append(f"data/{label}/{p.name},{label},{p.name[:4]}")
    rows.append("data/low/missing.wav,low,zz99")
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    splits, meta = build_audio_folder(
        manifest=tmp_path / "manifest.csv",
        val_fraction=0.2,
        test_fraction=0.2,
        seed=0,
        features={"feature": "mfcc"},
    )
    assert meta["skipped"] == {"empty": 1, "missing": 1, "unreadable": 1}
    spk = meta["speakers"]
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert set(spk[a]).isdisjoint(spk[b])
    assert meta["input_dim"] == 13 and splits["train"].inputs[0].shape[1] == 13
    # errors name the manifest line and the file
    (tmp_path / "one.csv").write_text(f"{rows[0]}\n\n{rows[-1]}\n")
    with pytest.raises(DataError, match=r"one\.csv:3 \(data/low/missing\.wav\): missing"):
        build_audio_folder(manifest=tmp_path / "one.csv", on_bad_input="error")
    (tmp_path / "bad.csv").write_text("file,label\nx.wav,a\n")
    with pytest.raises(DataError, match="bad.csv.*'path' and 'label'"):
        build_audio_folder(manifest=tmp_path / "bad.csv")
    (tmp_path / "split.csv").write_text("path,label,split\nx.wav,a,holdout\n")
    with pytest.raises(DataError, match=r"split\.csv:2: split='holdout'; valid: train, val"):
        build_audio_folder(manifest=tmp_path / "split.csv")


def test_manifest_labels_filter_and_given_splits(tmp_path):
    for i in range(6):
        sf.write(tmp_path / f"s{i}.wav", tone(16000, 0.3, 440.0), 16000)
    split = ("train", "train", "dev", "validation", "test", "testing")
    rows = ["path,label,split"] + [f"s{i}.wav,{'ab'[i % 2]},{split[i]}" for i in range(6)]
    rows.append("s0.wav,other,train")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    splits, meta = build_audio_folder(manifest=tmp_path / "m.csv", labels=["a", "b"])
    assert meta["skipped"] == {"unlisted_label": 1}
    assert {k: len(v) for k, v in splits.items()} == {"train": 2, "val": 2, "test": 2}
    with pytest.raises(DataError, match=r"m\.csv:8 \(s0\.wav\): unlisted label: label 'other'"):
        build_audio_folder(manifest=tmp_path / "m.csv", labels=["a", "b"], on_bad_input="error")


def test_speaker_pattern_misses_are_bad_input(tmp_path):
    _make_folder(tmp_path / "data")
    (tmp_path / "data" / "high" / "ff06_nohash_0.wav").unlink()
    (tmp_path / "data" / "low" / "ee05_nohash_0.wav").unlink()
    sf.write(tmp_path / "data" / "low" / "nobody.wav", tone(16000, 0.5, 300.0), 16000)
    kwargs = dict(root=tmp_path / "data", speaker_pattern=r"^([0-9a-f]+)_nohash_", seed=1)
    _, meta = build_audio_folder(**kwargs, val_fraction=0.25, test_fraction=0.25)
    assert meta["skipped"] == {"no_speaker_match": 1}
    with pytest.raises(DataError, match=r"nobody\.wav: no speaker match"):
        build_audio_folder(**kwargs, on_bad_input="error")
    with pytest.raises(DataError, match=r"speaker_pattern='\(' is not a valid regex"):
        build_audio_folder(root=tmp_path / "data", speaker_pattern="(")


def test_hash_split_fraction_rule_and_empty_split(tmp_path):
    """One fraction rule ([0, 1), sum < 1); a split left empty fails naming the sizes."""
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for i in range(5):
            sf.write(tmp_path / label / f"{i}.wav", tone(16000, 0.3, 440.0), 16000)
    with pytest.raises(DataError, match=r"split\(s\) \['val'\] are empty \(sizes"):
        build_audio_folder(root=tmp_path, val_fraction=0.0, test_fraction=0.5)
    with pytest.raises(DataError, match="val_fraction=-0.1.*each must be in \\[0, 1\\)"):
        build_audio_folder(root=tmp_path, val_fraction=-0.1)
    splits, meta = build_audio_folder(root=tmp_path, val_fraction=0.3, test_fraction=0.3)
    assert meta["split_method"] == "hash" and meta["speakers"] is None
    again, _ = build_audio_folder(root=tmp_path, val_fraction=0.3, test_fraction=0.3)
    assert {k: v.targets for k, v in splits.items()} == {k: v.targets for k, v in again.items()}


def test_shared_speaker_warning_names_all_or_counts_the_rest(caplog):
    many = [f"s{i}" for i in range(8)]
    with caplog.at_level(logging.WARNING, logger="rnnlab.data.speech.assign"):
        warn_shared_speakers({"train": many, "val": many[:6], "test": ["x", "y"]}, "m.csv")
        warn_shared_speakers({"train": ["a"], "val": ["b"], "test": ["c"]}, "m.csv")
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "train/val: 6 (s0, s1, s2, s3, s4 and 1 more)" in message
    assert "test" not in message.split("share speakers")[1]


def test_given_splits_sharing_speakers_warn(tmp_path, caplog):
    for i in range(3):
        sf.write(tmp_path / f"{i}.wav", tone(16000, 0.3, 440.0), 16000)
    rows = ["path,label,speaker,split", "0.wav,a,alice,train", "1.wav,a,alice,val"]
    rows.append("2.wav,a,bob,test")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING, logger="rnnlab.data.speech.assign"):
        _, meta = build_audio_folder(manifest=tmp_path / "m.csv", normalize=False)
    assert meta["speakers"] == {"train": ["alice"], "val": ["alice"], "test": ["bob"]}
    assert "train/val: 1 (alice)" in caplog.text


def test_manifest_one_liner_with_the_shipped_config(tmp_path):
    """`data=audio_folder prepare.manifest=<csv>` works: the default root no longer clashes."""
    from rnnlab.data.prepare import prepare
    from tests.unit.data.test_naming import compose_prepare

    _make_folder(tmp_path / "data")
    rows = ["path,label"] + [
        f"data/{lab}/{p.name},{lab}"
        for lab in ("high", "low")
        for p in sorted((tmp_path / "data" / lab).glob("aa01*.wav"))
        + sorted((tmp_path / "data" / lab).glob("[bcd]*.wav"))
    ]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    cfg = compose_prepare(
        "data=audio_folder", f"prepare.manifest={tmp_path / 'm.csv'}", f"paths.data_dir={tmp_path}"
    )
    meta = prepare(cfg)
    assert meta["source"]["manifest"] == str(tmp_path / "m.csv") and meta["source"]["root"] is None
    assert "audio_folder-m-" in cfg.data.data_dir
    with pytest.raises(DataError, match="give one of root=.*not both"):
        build_audio_folder(root=tmp_path / "data", manifest=tmp_path / "m.csv")
    with pytest.raises(DataError, match=r"raw_missing/audio_folder'? is not a directory"):
        build_audio_folder(raw_dir=tmp_path / "raw_missing")  # neither: the default folder


def test_given_train_test_without_val_carves_val(tmp_path):
    for i in range(12):
        sf.write(tmp_path / f"{i}.wav", tone(16000, 0.3, 300.0 + 100 * (i % 2)), 16000)
    rows = ["path,label,speaker,split"]
    rows += [f"{i}.wav,{'ab'[i % 2]},s{i // 2},{'test' if i >= 10 else 'train'}" for i in range(12)]
    (tmp_path / "spk.csv").write_text("\n".join(rows) + "\n")
    splits, meta = build_audio_folder(manifest=tmp_path / "spk.csv", val_fraction=0.2)
    assert meta["split_method"] == "given" and meta["val_carved_from"] == "train"
    assert meta["carved_by"] == "speaker" and len(meta["speakers"]["val"]) == 1
    assert set(meta["speakers"]["val"]).isdisjoint(meta["speakers"]["train"])
    rows = ["path,label,split"] + [
        f"{i}.wav,{'ab'[i % 2]},{'test' if i >= 10 else 'train'}" for i in range(12)
    ]
    (tmp_path / "hash.csv").write_text("\n".join(rows) + "\n")
    splits, meta = build_audio_folder(manifest=tmp_path / "hash.csv", val_fraction=0.4)
    assert meta["carved_by"] == "hash" and meta["speakers"] is None
    assert len(splits["val"]) > 0 and len(splits["test"]) == 2


def test_resampling_is_logged_once_with_both_rates(tmp_path, caplog):
    _make_folder(tmp_path / "data")
    with caplog.at_level(logging.INFO, logger="rnnlab.data.speech.audio"):
        build_audio_folder(root=tmp_path / "data", val_fraction=0.3, test_fraction=0.3)
    lines = [r.getMessage() for r in caplog.records if "Hz ->" in r.getMessage()]
    assert len(lines) == 1
    assert (
        "8000 Hz -> 16000 Hz (8 files)" in lines[0] and "44100 Hz -> 16000 Hz (8 files)" in lines[0]
    )
