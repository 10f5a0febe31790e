"""Speech data: espeak-ng synthesis, synthetic datasets, audio folders, Speech Commands."""

from __future__ import annotations

import functools
import http.server
import io
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from rnnlab.data.format import write_processed
from rnnlab.data.speech import (
    build_audio_folder,
    build_speech_commands,
    build_speech_commands_synth,
    build_speech_digits_synth,
    spec_augment,
)
from rnnlab.data.synth import SAMPLE_RATE, synthesize, synthesize_batch
from rnnlab.errors import DataError

SMALL = dict(
    voices=["en", "en-us"],
    variants=["m1", "f2", "m3"],
    rates=[175],
    pitches=[50],
    features={"n_mels": 20},
)


# --------------------------------------------------------------------------- synthesis
def test_synthesis_is_speech_and_voices_differ():
    a = synthesize("stop", "en+m3", rate=175, pitch=50)
    b = synthesize("stop", "en-us+f2", rate=175, pitch=50)
    assert a.dtype == np.int16 and b.dtype == np.int16
    assert 0.1 * SAMPLE_RATE < len(a) < 2 * SAMPLE_RATE
    assert np.abs(a).max() > 1000 and np.abs(b).max() > 1000
    n = min(len(a), len(b))
    assert len(a) != len(b) or not np.array_equal(a[:n], b[:n])
    # a fresh process per batch: same batch -> byte-identical samples, whatever ran before
    jobs = [("stop", "en+m3", 175, 50), ("go", "en-us+f2", 175, 50)]
    first, again = synthesize_batch([jobs, jobs], workers=2)
    assert all(np.array_equal(x, y) for x, y in zip(first, again))
    assert np.array_equal(first[0], synthesize_batch([jobs[:1]])[0][0])
    # rate matters
    assert len(synthesize("stop", "en", rate=350)) < len(synthesize("stop", "en", rate=100))


def test_synthesis_rejects_bad_voice_and_params():
    with pytest.raises(DataError, match="not-a-voice"):
        synthesize("yes", "not-a-voice")
    with pytest.raises(DataError, match="rate=5"):
        synthesize("yes", "en", rate=5)
    with pytest.raises(DataError, match="pitch=200"):
        synthesize("yes", "en", pitch=200)


# --------------------------------------------------------------------------- synthetic sets
def test_commands_synth_voice_disjoint_and_deterministic(tmp_path):
    words = ["yes", "no", "stop"]
    splits, meta = build_speech_commands_synth(words=words, seed=3, **SMALL)
    spk = meta["speakers"]
    assert set(spk["train"]).isdisjoint(spk["val"])
    assert set(spk["train"]).isdisjoint(spk["test"])
    assert set(spk["val"]).isdisjoint(spk["test"])
    assert sorted(spk["train"] + spk["val"] + spk["test"]) == sorted(
        f"{v}+{var}" for v in SMALL["voices"] for var in SMALL["variants"]
    )
    total = sum(len(s) for s in splits.values())
    assert total == 6 * len(words)
    x = splits["train"].inputs[0]
    assert x.dtype == torch.float32 and x.shape == (101, 20)
    assert meta["input_dim"] == 20 and meta["labels"] == words and meta["task"] == "classification"
    assert meta["features"]["hop_length"] == 160 and meta["features"]["win_length"] == 400
    # normalisation stats come from train: train features are ~zero-mean, unit-var
    train = torch.cat(splits["train"].inputs)
    assert train.mean(0).abs().max() < 1e-3 and (train.std(0) - 1).abs().max() < 1e-2
    assert len(meta["normalization"]["mean"]) == 20
    again, meta2 = build_speech_commands_synth(words=words, seed=3, **SMALL)
    assert meta2["speakers"] == spk
    for k in splits:
        assert splits[k].targets == again[k].targets
        assert all(torch.equal(a, b) for a, b in zip(splits[k].inputs, again[k].inputs))
    other, _ = build_speech_commands_synth(words=words, seed=4, **SMALL)
    assert (
        not torch.equal(torch.cat(other["train"].inputs[:1]), torch.cat(again["train"].inputs[:1]))
        or other["train"].targets != again["train"].targets
    )
    written = write_processed(tmp_path / "sc", splits, meta)
    assert written["counts"]["test"]["total"] == len(splits["test"])


def test_commands_synth_explicit_speakers_and_errors():
    _, meta = build_speech_commands_synth(
        words=["go"], val_speakers=["en+m1"], test_speakers=["en-us+f2", "en-us+m3"], **SMALL
    )
    assert meta["speakers"]["test"] == ["en-us+f2", "en-us+m3"]
    assert "en+m1" not in meta["speakers"]["train"]
    with pytest.raises(DataError, match="en\\+m9"):
        build_speech_commands_synth(
            words=["go"], val_speakers=["en+m9"], test_speakers=["en+m1"], **SMALL
        )
    with pytest.raises(DataError, match="feature='spectrogram'"):
        build_speech_commands_synth(
            words=["go"], **{**SMALL, "features": {"feature": "spectrogram"}}
        )


def test_digits_synth_ctc_targets():
    splits, meta = build_speech_digits_synth(
        utterances_per_speaker=2,
        min_digits=3,
        max_digits=5,
        **{**SMALL, "features": {"feature": "mfcc"}},
    )
    assert meta["task"] == "ctc" and meta["labels"][0] == "zero" and len(meta["labels"]) == 10
    assert meta["input_dim"] == 13
    for split in splits.values():
        for x, y in zip(split.inputs, split.targets):
            assert 3 <= len(y) <= 5 and all(0 <= d <= 9 for d in y)
            assert x.shape[1] == 13 and x.shape[0] > 10 * len(y)  # > 100 ms per digit
    assert set(meta["speakers"]["train"]).isdisjoint(meta["speakers"]["test"])


# --------------------------------------------------------------------------- audio folder
def _tone(sr: int, seconds: float, freq: float, channels: int = 1) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    x = 0.3 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([x] * channels, 1) if channels > 1 else x


def _make_folder(root: Path) -> None:
    for label, freq in (("high", 2000.0), ("low", 300.0)):
        (root / label).mkdir(parents=True)
        for spk in ("aa01", "bb02", "cc03", "dd04"):
            sf.write(root / label / f"{spk}_nohash_0.wav", _tone(8000, 0.5, freq, 2), 8000)
            sf.write(root / label / f"{spk}_nohash_1.wav", _tone(44100, 0.7, freq), 44100)
    (root / "low" / "ee05_nohash_0.wav").write_bytes(b"RIFF\x00\x00garbage, not a wav file")
    (root / "high" / "ff06_nohash_0.wav").write_bytes(b"")
    (root / "_background_noise_").mkdir()
    sf.write(root / "_background_noise_" / "noise.wav", _tone(16000, 1.0, 50.0), 16000)


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
    with pytest.raises(DataError, match=r"ee05_nohash_0\.wav: unreadable"):
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
    (tmp_path / "bad.csv").write_text("file,label\nx.wav,a\n")
    with pytest.raises(DataError, match="bad.csv.*'path' and 'label'"):
        build_audio_folder(manifest=tmp_path / "bad.csv")


# --------------------------------------------------------------------------- speech commands
def _wav_bytes(freq: float, seconds: float = 1.0) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, _tone(16000, seconds, freq), 16000, format="WAV", subtype="PCM_16")
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


@pytest.fixture
def http_root(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_speech_commands_download_follows_official_lists(tmp_path, http_root):
    served, base = http_root
    expected = _speech_commands_fixture(served / "speech_commands_v0.02.tar.gz")
    url = f"{base}/speech_commands_v0.02.tar.gz"
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


# --------------------------------------------------------------------------- spec augment
def test_spec_augment_masks_and_keeps_shape():
    torch.manual_seed(0)
    x = torch.randn(100, 40) + 5.0
    before = x.clone()
    y = spec_augment(x, freq_mask=8, time_mask=10, num_masks=2)
    assert y.shape == x.shape and not torch.equal(x, y)
    assert torch.equal(x, before)  # the input is not modified in place
    changed = y != x
    # masked cells form whole feature columns and/or whole frame rows
    full_cols = changed.all(0).sum().item()
    full_rows = changed.all(1).sum().item()
    assert full_cols + full_rows >= 1 and full_cols <= 2 * 8 and full_rows <= 2 * 10
    assert torch.allclose(y[changed], torch.full_like(y[changed], x.mean().item()))
    batch = torch.randn(3, 50, 20)
    assert spec_augment(batch, 4, 5, 1).shape == batch.shape
    assert torch.equal(spec_augment(x, 0, 0, 2), x)
    with pytest.raises(DataError, match="freq_mask=-1"):
        spec_augment(x, freq_mask=-1)


# --------------------------------------------------------------------------- configs
@pytest.mark.parametrize(
    "name", ["speech_commands_synth", "speech_digits_synth", "audio_folder", "speech_commands"]
)
def test_data_configs_match_builders(name):
    import inspect

    import yaml

    from rnnlab.data import speech

    path = Path(__file__).resolve().parents[2] / "conf" / "data" / f"{name}.yaml"
    assert path.read_text().startswith("# @package _global_\n")
    cfg = yaml.safe_load(path.read_text())
    assert cfg["data"]["name"] == name
    target = cfg["prepare"]["_target_"]
    assert target.startswith("rnnlab.data.speech.build_")
    params = inspect.signature(getattr(speech, target.rsplit(".", 1)[1])).parameters
    unknown = set(cfg["prepare"]) - {"_target_"} - set(params)
    assert not unknown, f"{path}: prepare keys {unknown} are not builder parameters"
    assert all(isinstance(w, str) for w in cfg["prepare"].get("words", []))
    speech.FeatureParams(**cfg["prepare"]["features"])
    assert cfg["task"]["name"] == ("ctc" if name == "speech_digits_synth" else "classification")
