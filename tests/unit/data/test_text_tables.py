"""build_csv: bring-your-own CSV/TSV/JSONL, exact skip counts, file:line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rnnlab.data.splits import SPLITS, hash_split
from rnnlab.data.text.tables import build_csv
from rnnlab.data.text.tokenizer import load_tokenizer
from rnnlab.errors import DataError


def _find_text(prefix: str, split: str) -> str:
    """A text whose hash lands in ``split`` (the split rule is fixed, so this is stable)."""
    return next(f"{prefix} {i}" for i in range(1000) if hash_split(f"{prefix} {i}") == split)


def _bad_csv(path: Path) -> dict[str, int]:
    rows = [b"label,text"]
    rows += [f"pos,movie {i} was great".encode() for i in range(25)]
    rows += [f"neg,film {i} was awful".encode() for i in range(25)]
    rows += [
        b"pos",  # line 52: missing text
        b"pos,   ",  # empty text
        b",some text",  # missing label
        b"neg,bad \xff bytes",  # invalid UTF-8
        b"",  # blank line: not a record
        b'neg,"multi\nline awful"',  # good, quoted newline
        f"rare,{_find_text('rare thing', 'test')}".encode(),  # label unseen in train
    ]
    path.write_bytes(b"\n".join(rows) + b"\n")
    return {
        "missing_text": 1,
        "empty_text": 1,
        "missing_label": 1,
        "invalid_utf8": 1,
        "unseen_label": 1,
    }


def test_csv_skips_are_counted_exactly(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    expected = _bad_csv(path)
    splits, meta = build_csv(out_dir=tmp_path / "o", path=str(path))
    assert meta["skipped"] == expected
    assert meta["labels"] == ["neg", "pos"]
    assert sum(len(splits[s]) for s in SPLITS) == 51
    assert meta["source"]["split"]["train"] == "sha256(text)"


def test_csv_error_mode_names_file_line_and_value(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    _bad_csv(path)
    with pytest.raises(DataError) as err:
        build_csv(out_dir=tmp_path / "o", path=str(path), on_bad_input="error")
    assert f"{path}:52: missing text" in str(err.value)
    path.write_bytes(b"label,text\npos,ok\nneg,bad \xff\n")
    with pytest.raises(DataError, match=r"mine\.csv:3: invalid utf8: value b'bad \\xff'"):
        build_csv(out_dir=tmp_path / "o", path=str(path), on_bad_input="error")
    with pytest.raises(DataError, match="valid: skip, error"):
        build_csv(out_dir=tmp_path / "o", path=str(path), on_bad_input="ignore")
    with pytest.raises(DataError, match=r"column\(s\) \['review'\] not in the header"):
        build_csv(out_dir=tmp_path / "o", path=str(path), text_column="review")


def test_csv_given_split_files_and_train_only_vocabulary(tmp_path: Path) -> None:
    def tsv(name: str, rows: list[str]) -> str:
        (tmp_path / name).write_text("text\tlabel\n" + "\n".join(rows) + "\n")
        return str(tmp_path / name)

    train = tsv(
        "train.tsv",
        [f"alpha beta {i}\tyes" for i in range(5)]
        + [f'gamma said "delta" {i}\tno' for i in range(5)],
    )
    val = tsv("val.tsv", ["alpha\tyes", "delta\tno", "alpha\tmaybe"])
    test = tsv("test.tsv", ["zebra alpha\tyes", "gamma\tno"])
    splits, meta = build_csv(out_dir=tmp_path / "o", train_path=train, val_path=val, test_path=test)
    tok = load_tokenizer(tmp_path / "o")
    assert tok.token_to_id("zebra") is None  # only in test
    assert splits["test"].inputs[0].tolist()[0] == 1  # -> [UNK]
    assert tok.token_to_id("alpha") == splits["test"].inputs[0].tolist()[1]
    assert tok.token_to_id('"') is not None  # TSV keeps quotes verbatim
    assert meta["skipped"] == {"unseen_label": 1}
    assert [len(splits[s]) for s in SPLITS] == [10, 2, 2]
    assert meta["labels"] == ["no", "yes"]


def test_jsonl_split_column_numeric_labels_and_bad_lines(tmp_path: Path) -> None:
    lines = [
        json.dumps({"t": f"item {i} text", "y": 10 if i % 2 else 2, "s": "train"})
        for i in range(20)
    ]
    lines += [
        json.dumps({"t": "a dev item", "y": 2, "s": "dev"}),
        json.dumps({"t": "a test item", "y": 10, "s": "test"}),
        json.dumps({"t": "odd split", "y": 2, "s": "holdout"}),
        "{not json",
        "[1, 2]",
        json.dumps({"y": 2, "s": "train"}),
    ]
    path = tmp_path / "d.jsonl"
    path.write_bytes(("\n".join(lines) + "\n").encode() + b'{"t": "\xff", "y": 2}\n')
    splits, meta = build_csv(
        out_dir=tmp_path / "o", path=str(path), text_column="t", label_column="y", split_column="s"
    )
    assert meta["labels"] == ["2", "10"]
    assert meta["skipped"] == {
        "invalid_split": 1,
        "invalid_json": 2,
        "missing_text": 1,
        "invalid_utf8": 1,
    }
    assert [len(splits[s]) for s in SPLITS] == [20, 1, 1]
