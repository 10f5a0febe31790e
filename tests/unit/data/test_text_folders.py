"""The README's worked example of a new dataset source: <root>/<label>/*.txt."""

import json

import pytest

from rnnlab.data.text.folders import build_text_folders
from rnnlab.errors import DataError
from tests.helpers import run_cli


def _docs(root, n=40):
    words = {"cats": "purr whisker meow", "dogs": "bark fetch woof"}
    for label, text in words.items():
        (root / label).mkdir(parents=True)
        for i in range(n):
            (root / label / f"{i:03d}.txt").write_text(f"{text} doc {i}\n")
    (root / "_ignored").mkdir()
    (root / "cats" / "empty.txt").write_text("   \n")
    (root / "dogs" / "latin1.txt").write_bytes(b"caf\xe9")


def test_the_documented_command_prepares_one_class_per_folder(tmp_path):
    _docs(tmp_path / "docs")
    run_cli(
        "rnnlab.data.prepare",
        "data=text_folders",
        f"prepare.root={tmp_path / 'docs'}",
        f"paths.data_dir={tmp_path / 'data'}",
        f"hydra.run.dir={tmp_path / 'log'}",
    )
    (meta_path,) = (tmp_path / "data" / "processed").glob("*/meta.json")
    meta = json.loads(meta_path.read_text())
    assert meta["labels"] == ["cats", "dogs"]
    assert meta["skipped"] == {"empty_text": 1, "invalid_utf8": 1}
    assert sum(c["total"] for c in meta["counts"].values()) == 80
    assert all(meta["counts"][s]["total"] > 0 for s in ("train", "val", "test"))


def test_bad_files_stop_the_build_naming_them_with_on_bad_input_error(tmp_path):
    _docs(tmp_path / "docs")
    with pytest.raises(DataError, match=r"empty\.txt.*empty text"):
        build_text_folders(tmp_path / "out", tmp_path / "docs", on_bad_input="error")
    with pytest.raises(DataError, match="not a directory"):
        build_text_folders(tmp_path / "out", tmp_path / "missing")
