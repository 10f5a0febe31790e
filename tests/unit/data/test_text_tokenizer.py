"""train_tokenizer/load_tokenizer: [PAD]=0, [UNK]=1, the three kinds."""

from __future__ import annotations

import pytest

from rnnlab.data.text.tokenizer import train_tokenizer
from rnnlab.errors import DataError


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_tokenizer_special_ids_and_unknowns(kind: str) -> None:
    tok = train_tokenizer(["the cat sat", "the dog sat"] * 3, kind, vocab_size=40)
    assert tok.token_to_id("[PAD]") == 0 and tok.token_to_id("[UNK]") == 1
    ids = tok.encode("zq").ids  # z and q never seen in training
    assert ids and set(ids) == {1}
    with pytest.raises(DataError, match="valid: char, word, bpe"):
        train_tokenizer(["x"], "sentencepiece")
