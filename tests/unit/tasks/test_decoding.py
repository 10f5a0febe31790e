"""CTC decoding: greedy best path, prefix beam search (torchaudio/flashlight), lexicon, LM."""

import pytest
import torch

from rnnlab.tasks.decoding import (
    BeamConfig,
    BeamSearchDecoder,
    greedy_decode,
    lexicon_lines,
    spell,
)

WORDS = ["zero", "one", "two", "three"]  # word units (speech_digits_synth: no decode record)
CHARS = ["<unk>", "a", "b", "▁"]  # char units, ▁ the word boundary
CHAR_SPELLING = {"join": "", "word_boundary": "▁"}

# A bigram word LM in ARPA format (log10 probabilities): "<s> one two one </s>" is likely.
ARPA = """\\data\\
ngram 1=5
ngram 2=4

\\1-grams:
-1.0\t<s>\t-0.3
-1.0\t</s>\t0
-0.5\tone\t-0.3
-0.5\ttwo\t-0.3
-3.0\t<unk>\t0

\\2-grams:
-0.1\t<s> one
-0.1\tone two
-0.1\ttwo one
-0.1\tone </s>

\\end\\
"""


def random_logits(seed: int, classes: int, batch: int = 4, steps: int = 30):
    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(batch, steps, classes, generator=g)
    lengths = torch.tensor([steps, steps - 9, 7, 1][:batch])
    return logits, lengths


def test_spell_follows_the_meta_decode_record():
    assert spell(WORDS, [2, 0], {"join": " ", "word_boundary": None}) == "two zero"
    # characters: joined, boundary read as a space, boundary runs and ends collapsed
    assert spell(CHARS, [3, 1, 2, 3, 3, 2, 3], CHAR_SPELLING) == "ab b"


@pytest.mark.parametrize("seed", range(20))
def test_beam_1_equals_greedy_for_word_units(seed):
    decoder = BeamSearchDecoder(WORDS, {"beam_size": 1})
    logits, lengths = random_logits(seed, len(WORDS) + 1)
    greedy = greedy_decode(logits, lengths)
    assert decoder(logits, lengths) == greedy
    assert decoder.transcribe(logits, lengths) == [spell(WORDS, g, {}) for g in greedy]


@pytest.mark.parametrize("seed", range(20))
def test_beam_1_equals_greedy_for_char_units(seed):
    decoder = BeamSearchDecoder(CHARS, {"beam_size": 1}, CHAR_SPELLING)
    logits, lengths = random_logits(seed, len(CHARS) + 1)
    greedy = [spell(CHARS, g, CHAR_SPELLING) for g in greedy_decode(logits, lengths)]
    assert decoder.transcribe(logits, lengths) == greedy


def test_prefix_beam_search_sums_alignments_where_best_path_does_not():
    # 2 frames of p(blank)=.4, p(a)=.35, p(b)=.25: the best path is "blank blank" ("",
    # p=.16), but P("a") = .35*.35 + 2*.35*.4 = .4025 summed over its three alignments
    p = torch.tensor([[[0.4, 1e-9, 0.35, 0.25]] * 2])
    logits, lengths = torch.log(p), torch.tensor([2])
    assert greedy_decode(logits, lengths) == [[]]
    decoder = BeamSearchDecoder(CHARS[:3], {"beam_size": 8}, CHAR_SPELLING)
    assert decoder(logits, lengths) == [[1]]
    viterbi = BeamSearchDecoder(CHARS[:3], {"beam_size": 8, "log_add": False}, CHAR_SPELLING)
    assert viterbi(logits, lengths) == [[]]  # the best single alignment: empty


@pytest.mark.parametrize("seed", range(10))
def test_lexicon_constrained_beam_never_emits_an_out_of_lexicon_word(tmp_path, seed):
    (tmp_path / "words.txt").write_text("one\nthree\n")
    decoder = BeamSearchDecoder(WORDS, {"beam_size": 8, "lexicon": str(tmp_path / "words.txt")})
    logits, lengths = random_logits(seed, len(WORDS) + 1)
    texts = decoder.transcribe(logits, lengths)
    assert any(texts)
    assert {w for t in texts for w in t.split()} <= {"one", "three"}
    for labels in decoder(logits, lengths):
        assert set(labels) <= {1, 3}


@pytest.mark.parametrize("seed", range(10))
def test_lexicon_of_char_words(tmp_path, seed):
    (tmp_path / "lexicon.txt").write_text("ab\nba\nbb a b ▁\n")  # word list + flashlight line
    cfg = {"beam_size": 8, "lexicon": str(tmp_path / "lexicon.txt")}
    decoder = BeamSearchDecoder(CHARS, cfg, CHAR_SPELLING)
    logits, lengths = random_logits(seed, len(CHARS) + 1)
    for text in decoder.transcribe(logits, lengths):
        assert set(text.split()) <= {"ab", "ba", "bb"}


def test_word_lm_from_an_arpa_file(tmp_path):
    (tmp_path / "lm.arpa").write_text(ARPA)
    (tmp_path / "words.txt").write_text("one\ntwo\n")
    # per frame "one" and "two" equally likely: the LM prefers alternating one two ...
    p = torch.full((1, 6, 5), 1e-6)
    p[0, 0::2, 0] = 0.5  # blank on even frames
    p[0, 1::2, 2] = 0.5  # one
    p[0, 1::2, 3] = 0.5  # two
    logits = torch.log(p)
    cfg = {"beam_size": 16, "lexicon": str(tmp_path / "words.txt"), "lm": str(tmp_path / "lm.arpa")}
    decoder = BeamSearchDecoder(WORDS, {**cfg, "lm_weight": 2.0})
    assert decoder.transcribe(logits, torch.tensor([6])) == ["one two one"]


def test_lexicon_word_that_cannot_be_spelled_is_named(tmp_path):
    (tmp_path / "lex.txt").write_text("ab\nxyz x y z\n")
    with pytest.raises(ValueError, match=r"lex.txt:2: word 'xyz'.*\['x', 'y', 'z'\]"):
        lexicon_lines(tmp_path / "lex.txt", CHARS, CHAR_SPELLING)
    # word list for word units: each word is one label
    (tmp_path / "w.txt").write_text("one\nfour\n")
    with pytest.raises(ValueError, match="word 'four'"):
        lexicon_lines(tmp_path / "w.txt", WORDS, {"join": " "})


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"beam": 3}, r"task.decoder: unknown key\(s\) \['beam'\]; valid: beam_size"),
        ({"beam_size": 0}, r"task.decoder.beam_size=0 must be an integer >= 1"),
        ({"beam_threshold": -1.0}, r"beam_threshold=-1.0 must be >= 0"),
        ({"lm": "/nonexistent/lm.bin"}, r"task.decoder.lm='/nonexistent/lm.bin': no such file"),
        ({"test_beam": "yes"}, r"test_beam='yes' must be true or false"),
    ],
)
def test_decoder_config_errors_name_the_key(cfg, message):
    with pytest.raises(ValueError, match=message):
        BeamConfig.from_mapping(cfg)
