"""Bring-your-own transcribed speech (data=speech_transcripts): sources, units, CTC rule."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rnnlab.data.speech.transcript_text import TextNormalization
from rnnlab.data.speech.transcripts import build_speech_transcripts, ctc_frames_needed
from rnnlab.data.speech.units import labels_to_text, train_units
from rnnlab.errors import DataError

TEXTS = ("Hello, World!", "the quick brown fox", "don't stop", "well-known facts", "go 42")


def noise(path: Path, seconds: float = 0.5, sr: int = 16000, seed: int = 0) -> None:
    """A short noise clip (content is irrelevant to preparation)."""
    rng = np.random.default_rng(seed)
    sf.write(path, (0.1 * rng.standard_normal(int(sr * seconds))).astype(np.float32), sr)


def make_manifest(root: Path, splits: tuple[str, ...] = ("train", "train", "test")) -> Path:
    """6 speakers x 2 utterances; speaker i's split is splits[i % len(splits)]; odd
    speakers recorded at 8 kHz."""
    (root / "clips").mkdir(parents=True, exist_ok=True)
    rows = ["path,transcript,speaker,split"]
    for i in range(12):
        spk = i % 6
        noise(root / "clips" / f"u{i}.wav", sr=8000 if spk % 2 else 16000, seed=i)
        rows.append(
            f'clips/u{i}.wav,"{TEXTS[i % len(TEXTS)]}",spk{spk},{splits[spk % len(splits)]}'
        )
    (root / "m.csv").write_text("\n".join(rows) + "\n")
    return root / "m.csv"


def make_librispeech(root: Path, subsets: dict[str, list[int]], ext: str = ".flac") -> Path:
    """``root/<subset>/<speaker>/<chapter>/`` with 2 utterances per speaker."""
    for subset, speakers in subsets.items():
        for spk in speakers:
            chapter = root / subset / str(spk) / "100"
            chapter.mkdir(parents=True)
            lines = []
            for n in range(2):
                utt = f"{spk}-100-{n:04d}"
                noise(chapter / f"{utt}{ext}", seconds=0.4, seed=spk * 10 + n)
                lines.append(f"{utt} {TEXTS[(spk + n) % len(TEXTS)].upper()}")
            (chapter / f"{spk}-100.trans.txt").write_text("\n".join(lines) + "\n")
    return root


def make_commonvoice(root: Path) -> Path:
    """train/dev/test TSVs, clips/ beside them, client_id speakers."""
    (root / "clips").mkdir(parents=True)
    header = "client_id\tpath\tsentence\tup_votes"
    for split, speakers in (("train", "abcd"), ("dev", "e"), ("test", "f")):
        rows = [header]
        for spk in speakers:
            for n in range(2):
                clip = f"cv_{spk}{n}.wav"
                noise(root / "clips" / clip, seed=ord(spk) + n)
                rows.append(f'{spk * 8}\t{clip}\t"{TEXTS[n]}" she said\t2')
        (root / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    with open(root / "train.tsv", "a") as f:
        f.write(f"{'a' * 8}\tcv_a0.wav\tagain\t1\n")  # listed twice: counted, kept once
    return root


def test_text_normalization_rules():
    norm = TextNormalization()
    assert norm("Hello,  “World”! Don’t-stop…") == "hello world don't stop"
    assert norm("Ｆｕｌｌ width 42") == "full width 42"
    assert TextNormalization(digits="spell")("Call 911!") == "call nine one one"
    assert TextNormalization(digits="drop")("route 66 now") == "route now"
    assert TextNormalization(lowercase=False, keep_apostrophes=False)("It's OK") == "It s OK"
    with pytest.raises(DataError, match="digits='words'; valid: keep, spell, drop"):
        TextNormalization(digits="words")
    with pytest.raises(DataError, match=r"unknown key\(s\) \['case'\]; valid: lowercase"):
        TextNormalization.from_config({"case": "lower"})


def test_units_are_learnt_on_train_with_unk_zero(tmp_path):
    train = ["hello world", "hello there"]
    chars = train_units(train, "char")
    assert chars.labels[0] == "<unk>" and "▁" in chars.labels and "z" not in chars.labels
    ids, unk = chars.encode("hez")
    assert unk == 1 and ids[-1] == 0
    assert chars.decode(chars.encode("hello world")[0]) == "hello world"
    words = train_units(train, "word", vocab_size=3)
    assert words.labels == ["<unk>", "hello", "there"]  # most frequent first, ties by name
    assert words.encode("hello world") == ([1, 0], 1)
    for kind in ("bpe", "unigram"):
        pieces = train_units(train * 3, kind, vocab_size=40)
        assert pieces.labels[0] == "<unk>" and len(pieces.labels) <= 40
        assert pieces.decode(pieces.encode("hello world")[0]) == "hello world"
        assert pieces.save(tmp_path / kind) == "tokenizer.json"
    assert labels_to_text(["▁he", "llo", "▁w", "orld"], "bpe") == "hello world"
    with pytest.raises(
        DataError, match="units='phone' is not valid; valid: char, word, bpe, unigram"
    ):
        train_units(train, "phone")


def test_ctc_frames_needed_counts_a_blank_between_repeats():
    assert ctc_frames_needed([1, 2, 3]) == 3
    assert ctc_frames_needed([1, 1, 2, 2, 2]) == 8
    assert ctc_frames_needed([]) == 0


def test_manifest_given_train_test_carves_val_by_speaker(tmp_path, caplog):
    manifest = make_manifest(tmp_path)
    with caplog.at_level(logging.INFO, logger="rnnlab.data.speech"):
        splits, meta = build_speech_transcripts(
            out_dir=tmp_path / "out", manifest=manifest, val_fraction=0.25
        )
    assert meta["task"] == "ctc" and meta["units"] == "char" and meta["labels"][0] == "<unk>"
    assert meta["split_method"] == "given"
    assert meta["val_carved_from"] == "train" and meta["carved_by"] == "speaker"
    spk = meta["speakers"]
    assert spk["test"] == ["spk2", "spk5"] and len(spk["val"]) == 1
    assert set(spk["val"]).isdisjoint(spk["train"])
    assert {k: len(v) for k, v in splits.items()} == {"train": 6, "val": 2, "test": 4}
    assert meta["text_normalization"]["lowercase"] is True
    assert meta["decode"] == {"join": "", "word_boundary": "▁"}
    assert all(isinstance(t, list) and min(t) >= 0 for t in splits["train"].targets)
    assert all(x.shape[1] == 40 for s in splits.values() for x in s.inputs)
    resampled = [r for r in caplog.records if "Hz ->" in r.getMessage()]
    assert len(resampled) == 1
    assert "8000 Hz -> 16000 Hz (6 files)" in resampled[0].getMessage()


def test_utterances_too_long_for_ctc_are_skipped_and_counted(tmp_path):
    noise(tmp_path / "short.wav", seconds=0.1)  # 11 frames
    noise(tmp_path / "ok.wav", seconds=0.5)
    rows = ["path,transcript"]
    rows += [f"ok.wav,hi there {i}" for i in range(8)]
    rows += ["short.wav,this transcript has far more letters than frames"]
    rows += ["short.wav,!!!"]  # nothing left after normalisation
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    kwargs = dict(manifest=tmp_path / "m.csv", val_fraction=0.3, test_fraction=0.3)
    splits, meta = build_speech_transcripts(**kwargs)
    assert meta["skipped"] == {"empty_transcript": 1, "too_long_for_ctc": 1}
    assert meta["split_method"] == "hash" and meta["speakers"] is None
    assert sum(len(s) for s in splits.values()) == 8
    _, meta = build_speech_transcripts(**kwargs, time_reduction=4)  # 51 frames -> 12 >= 10
    assert meta["skipped"]["too_long_for_ctc"] == 1 and meta["time_reduction"] == 4
    with pytest.raises(DataError, match=r"are empty"):  # 51 // 8 = 6 frames < 10 labels
        build_speech_transcripts(**kwargs, time_reduction=8)
    (tmp_path / "m2.csv").write_text("\n".join(rows[:-1]) + "\n")
    with pytest.raises(
        DataError,
        match=r"m2\.csv:10 \(short\.wav\): too long for ctc: 48 labels need 49 frames, the model gets 11",
    ):
        build_speech_transcripts(manifest=tmp_path / "m2.csv", on_bad_input="error")


def test_librispeech_folders_subset_splits_and_auto_detect(tmp_path):
    root = make_librispeech(
        tmp_path / "LibriSpeech", {"train-clean-5": [1, 2, 3, 4], "test-x": [9]}
    )
    (root / "train-clean-5" / "4" / "100" / "4-100-0001.flac").unlink()  # listed, missing
    splits, meta = build_speech_transcripts(librispeech_root=root, units="word")
    assert meta["skipped"] == {"missing": 1}
    assert meta["source"]["layout"] == "librispeech"
    assert meta["speakers"]["test"] == ["9"] and meta["val_carved_from"] == "train"
    assert meta["labels"][1:] and all(w == w.lower() for w in meta["labels"])  # lower-cased
    again, meta2 = build_speech_transcripts(root=root, units="word")
    assert meta2["speakers"] == meta["speakers"]
    assert {k: v.targets for k, v in again.items()} == {k: v.targets for k, v in splits.items()}


def test_commonvoice_tsvs_are_given_splits(tmp_path):
    root = make_commonvoice(tmp_path / "cv")
    tsvs = [root / "train.tsv", root / "dev.tsv", root / "test.tsv"]
    splits, meta = build_speech_transcripts(
        commonvoice_tsv=tsvs, units="bpe", vocab_size=30, out_dir=tmp_path / "out"
    )
    assert meta["skipped"] == {"duplicate_clip": 1}
    assert meta["split_method"] == "given" and meta["val_carved_from"] is None
    assert meta["speakers"]["val"] == ["eeeeeeee"] and len(meta["speakers"]["train"]) == 4
    assert meta["tokenizer"] == "tokenizer.json" and (tmp_path / "out" / "tokenizer.json").is_file()
    assert {k: len(v) for k, v in splits.items()} == {"train": 8, "val": 2, "test": 2}
    _, auto = build_speech_transcripts(root=root)
    assert auto["source"]["layout"] == "commonvoice" and auto["split_method"] == "given"
    json.dumps(meta)  # meta.json-ready


def test_exactly_one_source(tmp_path):
    with pytest.raises(DataError, match="give exactly one of manifest=, librispeech_root="):
        build_speech_transcripts()
    with pytest.raises(DataError, match="got manifest='a.csv', root='b'"):
        build_speech_transcripts(manifest="a.csv", root="b")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither LibriSpeech-style"):
        build_speech_transcripts(root=tmp_path / "empty")
