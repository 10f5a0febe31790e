"""Fuzzing the prepare stage with hypothesis: random bytes as audio, random Unicode and
invalid UTF-8 as text, empty and huge lines. The only error a user ever sees is the
project's DataError; with ``on_bad_input=skip`` the skipped counts are exact."""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnlab.data.format import write_processed
from rnnlab.data.speech.folder import build_audio_folder
from rnnlab.data.text.encode import normalise_text
from rnnlab.data.text.tables import build_csv
from rnnlab.errors import DataError

# RNNLAB_FUZZ_EXAMPLES=500 for a longer hunt than the CI's
FUZZ = settings(
    max_examples=int(os.environ.get("RNNLAB_FUZZ_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
TEXT_OPTS = {"tokenizer": "char", "max_length": 64}
# any Unicode a UTF-8 file can hold (no lone surrogates), control characters included
UNICODE = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
WHITESPACE = st.text(st.sampled_from(" \t\u00a0\u2003\u3000\r\n"), max_size=6)


class _Dir:
    """A fresh temp dir per hypothesis example (pytest's tmp_path is per test)."""

    def __enter__(self) -> Path:
        self.path = Path(tempfile.mkdtemp(prefix="rnnlab-fuzz-"))
        return self.path

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _prepare_or_data_error(build, out: Path, **kwargs) -> dict | None:
    """Run a builder and write its output; None if it refused with a DataError."""
    try:
        splits, meta = build(out_dir=out, **kwargs)
        return write_processed(out, splits, meta)
    except DataError as err:
        assert str(err), "a DataError must say what is wrong"
        return None


# --------------------------------------------------------------------------- text


@FUZZ
@given(data=st.binary(max_size=3000), mode=st.sampled_from(["skip", "error"]))
def test_csv_of_random_bytes_never_crashes(data, mode):
    with _Dir() as d:
        for content in (data, b"text,label\n" + data):
            path = d / "data.csv"
            path.write_bytes(content)
            _prepare_or_data_error(build_csv, d / "out", path=str(path), on_bad_input=mode)


@FUZZ
@given(
    lines=st.lists(
        st.one_of(
            st.binary(max_size=200),
            UNICODE.map(lambda s: s.encode("utf-8")),
            st.just(b""),
            st.just(b"x" * 200_000),  # one huge line
        ),
        max_size=20,
    ),
    mode=st.sampled_from(["skip", "error"]),
)
def test_jsonl_and_tsv_of_random_lines_never_crash(lines, mode):
    with _Dir() as d:
        body = b"\n".join(lines)
        for name, content in (("data.jsonl", body), ("data.tsv", b"text\tlabel\n" + body)):
            path = d / name
            path.write_bytes(content)
            _prepare_or_data_error(build_csv, d / "out", path=str(path), on_bad_input=mode)


# one generated CSV record: its kind decides whether it is kept and why it is skipped
RECORD = st.one_of(
    st.tuples(st.just("good"), UNICODE, st.sampled_from(["pos", "neg"])),
    st.tuples(st.just("huge"), st.just(""), st.sampled_from(["pos", "neg"])),  # 100k chars
    st.tuples(st.just("empty_text"), WHITESPACE, st.sampled_from(["pos", "neg"])),
    st.tuples(st.just("missing_label"), UNICODE, WHITESPACE),
    st.tuples(
        st.just("invalid_utf8"),
        st.binary(min_size=1, max_size=20).map(lambda b: b.replace(b"\xff", b"") + b"\xff\xfe"),
        st.sampled_from(["pos", "neg"]),
    ),
    st.tuples(st.just("invalid_split"), UNICODE, st.sampled_from(["pos", "neg"])),
)
# two of each label in each split, so every split is populated whatever else is drawn
ANCHORS = [("good", f"anchor {i} {lab}", lab) for i, lab in enumerate(["pos", "neg"] * 6)]


def _csv_bytes(records: list[tuple[str, object, str]]) -> tuple[bytes, Counter]:
    """The file and the exact skip counts an implementation must report."""
    text_buf = io.StringIO()
    writer = csv.writer(text_buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(["text", "label", "split"])
    expected: Counter = Counter()
    rows: list[bytes] = [text_buf.getvalue().encode()]
    for i, (kind, text, label) in enumerate(records):
        split = ["train", "val", "test"][(i // 2 if i < len(ANCHORS) else i) % 3]
        if kind == "invalid_split":
            split = "nowhere"
        if kind == "invalid_utf8":  # raw bytes: quote them so no byte can break the row
            raw = b",".join(
                [
                    b'"' + text.replace(b'"', b'""') + b'"',
                    b'"' + label.encode() + b'"',
                    split.encode(),
                ]
            )
            rows.append(raw + b"\n")
        else:
            if kind == "huge":
                text = f"r{i} " + "y" * 100_000
            elif kind in ("good", "missing_label", "invalid_split"):
                text = f"r{i} {text}"  # unique and never empty after normalising
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL).writerow(
                [text, label, split]
            )
            rows.append(buf.getvalue().encode("utf-8"))
        if kind in ("good", "huge"):
            continue
        if kind == "empty_text":
            assert normalise_text(text) == ""
        expected[kind] += 1
    return b"".join(rows), expected


@FUZZ
@given(records=st.lists(RECORD, max_size=25))
def test_csv_skip_counts_are_exact(records):
    records = ANCHORS + records
    content, expected = _csv_bytes(records)
    with _Dir() as d:
        path = d / "data.csv"
        path.write_bytes(content)
        meta = _prepare_or_data_error(
            build_csv, d / "out", path=str(path), split_column="split", **TEXT_OPTS
        )
        assert meta is not None
        assert meta["skipped"] == {k: v for k, v in sorted(expected.items()) if v}
        kept = sum(c["total"] for c in meta["counts"].values())
        read = len(records)
        assert kept + sum(expected.values()) == read


@FUZZ
@given(records=st.lists(RECORD, min_size=1, max_size=15))
def test_csv_error_mode_names_file_and_line_of_the_first_bad_record(records):
    records = ANCHORS + records
    content, expected = _csv_bytes(records)
    with _Dir() as d:
        path = d / "data.csv"
        path.write_bytes(content)
        try:
            build_csv(
                out_dir=d / "out",
                path=str(path),
                split_column="split",
                on_bad_input="error",
                **TEXT_OPTS,
            )
        except DataError as err:
            assert expected, f"no bad record, yet: {err}"
            if "duplicate" not in expected or len(expected) > 1:
                first = next(i for i, (k, _, _) in enumerate(records) if k not in ("good", "huge"))
                # line numbers count the header; quoted fields may span lines, so the
                # error names the line where the first bad record starts
                line = content[: content.index(b"\n") + 1]
                starts = _record_start_lines(content)
                assert f"{path}:{starts[first]}:" in str(err), (str(err), line)
        else:
            assert not expected or set(expected) == {"duplicate"}


def _record_start_lines(content: bytes) -> list[int]:
    """1-based line on which each data record starts (after the header)."""
    text = content.decode("utf-8", "surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""))
    starts, prev = [], 0
    for _row in reader:
        starts.append(prev + 1)
        prev = reader.line_num
    return starts[1:]


# --------------------------------------------------------------------------- audio


def _tone(path: Path, seconds: float = 0.2, sr: int = 8000) -> None:
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr)


@FUZZ
@given(
    garbage=st.lists(
        st.one_of(
            st.binary(max_size=400).filter(lambda b: not b.startswith(b"RIFF")),
            st.binary(max_size=400).map(lambda b: b"RIFF" + b),  # header-shaped garbage
            st.just(b""),
        ),
        min_size=1,
        max_size=6,
    ),
    mode=st.sampled_from(["skip", "error"]),
)
def test_random_bytes_as_wav_files(garbage, mode):
    """Good tones plus garbage files: skip counts every unreadable file exactly (random
    bytes never decode as audio); error names the first bad file."""
    with _Dir() as d:
        root = d / "audio"
        for label in ("up", "down"):
            (root / label).mkdir(parents=True)
            for i in range(6):
                _tone(root / label / f"spk{i}_{label}.wav")
        for i, data in enumerate(garbage):
            (root / ("up", "down")[i % 2] / f"zz_bad{i}.wav").write_bytes(data)
        kwargs = {
            "root": str(root),
            "on_bad_input": mode,
            "features": {"sample_rate": 8000},
            # 12 good files: wide fractions so the sha256 hash split leaves no split empty
            "val_fraction": 0.25,
            "test_fraction": 0.25,
        }
        if mode == "error":
            try:
                build_audio_folder(out_dir=d / "out", **kwargs)
            except DataError as err:
                assert "zz_bad" in str(err) and "on_bad_input=skip" in str(err)
            else:
                raise AssertionError("a garbage .wav must be refused with on_bad_input=error")
            return
        meta = _prepare_or_data_error(build_audio_folder, d / "out", **kwargs)
        assert meta is not None
        assert sum(meta["skipped"].values()) == len(garbage), meta["skipped"]
        assert meta["skipped"].get("empty", 0) == sum(len(g) == 0 for g in garbage)
        assert sum(c["total"] for c in meta["counts"].values()) == 12
