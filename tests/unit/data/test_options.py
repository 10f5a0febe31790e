"""rnnlab.data.options.takes: shared builder options as groups, each validated once; a
key that is neither a parameter nor a group field is refused naming key, value and the
valid keys; the signature lists every key (what the config-signature test reads)."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import pytest

from rnnlab.data.options import Fractions, takes
from rnnlab.data.speech.synthetic import build_speech_commands_synth, build_speech_digits_synth
from rnnlab.data.text.folders import build_text_folders
from rnnlab.errors import DataError


@dataclass(frozen=True)
class _Color:
    color: str = "red"

    def validate(self, where: str) -> None:
        if self.color not in ("red", "blue"):
            raise DataError(f"{where}: color={self.color!r}; valid: red, blue")


@takes("toy", paint=_Color(color="blue"), split=Fractions(test_fraction=0.2))
def _toy(out_dir, size: int = 1, *, paint: _Color, split: Fractions):
    return out_dir, size, paint, split


def test_keys_go_to_their_group_with_this_builders_defaults():
    assert _toy("o") == ("o", 1, _Color("blue"), Fractions(0.1, 0.2))
    out = _toy("o", size=3, color="red", val_fraction=0.3)
    assert out == ("o", 3, _Color("red"), Fractions(0.3, 0.2))
    params = inspect.signature(_toy).parameters
    assert list(params) == ["out_dir", "size", "color", "val_fraction", "test_fraction"]
    assert params["color"].default == "blue" and params["test_fraction"].default == 0.2


def test_unknown_key_and_bad_value_are_data_errors_naming_them():
    with pytest.raises(DataError, match=r"toy: unknown key\(s\) colour='red'; valid: .*color"):
        _toy("o", colour="red")
    with pytest.raises(DataError, match="toy: color='green'; valid: red, blue"):
        _toy("o", color="green")
    with pytest.raises(DataError, match="toy: val_fraction=0.9, test_fraction=0.2"):
        _toy("o", val_fraction=0.9)


def test_real_builders_refuse_a_misspelt_key_before_reading_anything(tmp_path):
    with pytest.raises(DataError, match=r"text_folders: unknown key\(s\) vocab_sise=5.*vocab_size"):
        build_text_folders(tmp_path / "out", tmp_path / "missing", vocab_sise=5)
    with pytest.raises(DataError, match="text_folders: on_bad_input='ignore' is not valid"):
        build_text_folders(tmp_path / "out", tmp_path / "missing", on_bad_input="ignore")


def test_the_two_synthetic_builders_share_one_core_with_their_own_defaults():
    a = inspect.signature(build_speech_commands_synth).parameters
    b = inspect.signature(build_speech_digits_synth).parameters
    assert build_speech_commands_synth.__name__ == "build_speech_commands_synth"
    assert (a["pitches"].default, b["pitches"].default) == ((35, 65), (35, 50, 65))
    assert "words" in a and "words" not in b and "min_digits" in b and "min_digits" not in a
    with pytest.raises(DataError, match="speech_digits_synth: min_digits=5, max_digits=4"):
        build_speech_digits_synth(min_digits=5, max_digits=4)


def test_librispeech_subsets_are_checked_before_any_download(tmp_path):
    from rnnlab.data.speech.librispeech import build_librispeech

    with pytest.raises(DataError, match=r"unknown \['dev-cleen'\]; valid: dev-clean"):
        build_librispeech(raw_dir=tmp_path, subsets=["dev-cleen"], base_url="http://0.0.0.0:9")
    assert not any(tmp_path.iterdir())
