"""Bring your own data: one documented command trains on a user's CSV or audio, and
prepares transcribed speech in each of the three layouts."""

import csv
import json
import random

from tests.helpers import read_metrics, run_cli

QUIET = ["print_config=false", "callbacks.progress_bar.refresh_rate=0"]


def test_csv_trains_with_one_command_and_counts_bad_rows(tmp_path):
    rng = random.Random(0)
    words = {
        "sport": ["goal", "match", "team", "score"],
        "tech": ["chip", "code", "cpu", "app"],
        "food": ["bread", "soup", "salt", "rice"],
    }
    path = tmp_path / "my data.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["review", "topic"])
        for i in range(150):
            label = list(words)[i % 3]
            w.writerow([" ".join(rng.choices(words[label], k=6)) + f" n{i}", label])
        w.writerow(["", "tech"])  # empty text: skipped, counted
        w.writerow(["no label here", ""])  # missing label: skipped, counted
    data_dir = tmp_path / "data"
    run_cli(
        "rnnlab.train",
        "data=csv",
        f"prepare.path={path}",
        "prepare.text_column=review",
        "prepare.label_column=topic",
        f"paths.data_dir={data_dir}",
        "trainer.max_epochs=10",
        "optim.optimizer.lr=0.01",
        "model.hidden_size=16",
        "data.batch_size=16",
        f"hydra.run.dir={tmp_path / 'run'}",
        *QUIET,
    )
    # named after the file: processed/csv-my_data-<8 hex>/ (rnnlab.data.naming)
    (meta_path,) = (data_dir / "processed").glob("csv-my_data-*/meta.json")
    meta = json.loads(meta_path.read_text())
    assert meta["labels"] == ["food", "sport", "tech"]
    assert sum(meta["skipped"].values()) == 2
    assert sum(c["total"] for c in meta["counts"].values()) == 150
    assert read_metrics(tmp_path / "run")["metrics"]["test/acc"] > 0.9


def test_wav_folder_trains_with_one_command(tmp_path):
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    root = tmp_path / "my_words"
    for label, freq in (("low", 300.0), ("high", 2000.0)):
        (root / label).mkdir(parents=True)
        for speaker in range(6):
            for take in range(5):
                rate = (8000, 16000, 22050)[take % 3]
                t = np.arange(int(0.5 * rate)) / rate
                tone = 0.3 * np.sin(2 * np.pi * freq * (1 + 0.05 * speaker) * t)
                wave = tone + 0.02 * rng.standard_normal(t.size)
                if take % 2:  # stereo files are mixed down
                    wave = np.stack([wave, wave], axis=1)
                sf.write(root / label / f"spk{speaker}_nohash_{take}.wav", wave, rate)
    (root / "low" / "broken.wav").write_bytes(b"RIFF not really a wav")
    data_dir = tmp_path / "data"
    run_cli(
        "rnnlab.train",
        "data=audio_folder",
        f"prepare.root={root}",
        "prepare.speaker_pattern='^(spk[0-9]+)_nohash_'",
        f"paths.data_dir={data_dir}",
        "trainer.max_epochs=10",  # the data-level recipe: 2 layers, mean pooling, lr 3e-3
        "model.hidden_size=16",
        "data.batch_size=8",
        f"hydra.run.dir={tmp_path / 'run'}",
        *QUIET,
    )
    (meta_path,) = (data_dir / "processed").glob("audio_folder-my_words-*/meta.json")
    meta = json.loads(meta_path.read_text())
    assert meta["labels"] == ["high", "low"]
    assert sum(meta["skipped"].values()) == 1
    assert sum(c["total"] for c in meta["counts"].values()) == 60
    speakers = meta["speakers"]
    assert not set(speakers["train"]) & (set(speakers["val"]) | set(speakers["test"]))
    assert read_metrics(tmp_path / "run")["metrics"]["test/acc"] > 0.9
    # CTC on classification data: refused at start naming the mismatch, no raw TypeError
    proc = run_cli(
        "rnnlab.train",
        "data=audio_folder",
        f"prepare.root={root}",
        "prepare.speaker_pattern='^(spk[0-9]+)_nohash_'",
        "task.name=ctc",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={tmp_path / 'run_ctc'}",
        *QUIET,
        check=False,
    )
    assert proc.returncode != 0
    assert "task.name='ctc' does not fit data" in proc.stderr, proc.stderr[-2000:]
    assert "says task 'classification'" in proc.stderr and "TypeError" not in proc.stderr


def test_ctc_recognition_trains_on_synth_digits_with_gated_feedback(tmp_path):
    run_cli(
        "rnnlab.train",
        "data=speech_digits_synth",
        "prepare.voices=[en,en-us]",
        "prepare.variants=[m1,f1,m3,f3]",
        "prepare.utterances_per_speaker=4",
        f"paths.data_dir={tmp_path / 'data'}",
        "trainer.max_epochs=1",
        "model/cell=gru",
        "model/activation=relu",
        "model/connection=gated_feedback",
        "model.num_layers=2",
        "model.hidden_size=16",
        f"hydra.run.dir={tmp_path / 'run'}",
        *QUIET,
    )
    metrics = read_metrics(tmp_path / "run")["metrics"]
    for key in ("test/cer", "test/wer", "val/cer", "val/wer", "train/loss"):
        assert key in metrics and metrics[key] == metrics[key]  # present and not NaN


def test_transcribed_speech_prepares_from_each_layout(tmp_path):
    """`python -m rnnlab.data.prepare data=speech_transcripts prepare.<source>=...` for a
    manifest, LibriSpeech folders and Common Voice TSVs, each into its own directory."""
    from tests.unit.data.test_transcripts import (
        make_commonvoice,
        make_librispeech,
        make_manifest,
    )

    manifest = make_manifest(tmp_path / "mine")
    libri = make_librispeech(tmp_path / "LibriSpeech", {"train-a": [1, 2, 3, 4], "test-b": [5]})
    cv = make_commonvoice(tmp_path / "cv")
    data_dir = tmp_path / "data"
    runs = {
        "manifest": [f"prepare.manifest={manifest}", "prepare.units=word"],
        "librispeech": [f"prepare.librispeech_root={libri}", "prepare.normalize_text.digits=spell"],
        "commonvoice": [f"prepare.commonvoice_tsv=[{cv}/train.tsv,{cv}/dev.tsv,{cv}/test.tsv]"],
    }
    for layout, overrides in runs.items():
        run_cli(
            "rnnlab.data.prepare",
            "data=speech_transcripts",
            *overrides,
            # the fixture's clips are a few tenths of a second: no frame stacking, so the
            # CTC length rule keeps them (the real-recording default stacks 3 frames)
            "prepare.time_reduction=1",
            f"paths.data_dir={data_dir}",
            f"hydra.run.dir={tmp_path / 'logs' / layout}",
        )
    metas = {
        json.loads(p.read_text())["source"]["layout"]: json.loads(p.read_text())
        for p in (data_dir / "processed").glob("speech_transcripts-*/meta.json")
    }
    assert sorted(metas) == ["commonvoice", "librispeech", "manifest"]
    for meta in metas.values():
        assert meta["task"] == "ctc" and meta["labels"][0] == "<unk>"
        assert all(meta["counts"][k]["total"] > 0 for k in ("train", "val", "test"))
    assert metas["manifest"]["units"] == "word" and metas["manifest"]["carved_by"] == "speaker"
    assert metas["librispeech"]["text_normalization"]["digits"] == "spell"
    assert metas["librispeech"]["val_carved_from"] == "train"
    assert metas["commonvoice"]["split_method"] == "given"
    assert metas["commonvoice"]["skipped"] == {"duplicate_clip": 1}
