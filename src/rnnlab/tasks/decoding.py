"""CTC decoding: per-frame outputs -> label sequences -> text.

Model output ``c`` of a frame is the CTC blank for ``c = 0`` and dataset label ``c - 1``
otherwise. Two decoders, both returning 0-based dataset label ids per sequence:

* :func:`greedy_decode` (best path): ``argmax_c`` per frame, merge repeats, drop blanks.
  The training-time metric (val/test CER and WER).
* :class:`BeamSearchDecoder`: CTC prefix beam search (torchaudio's ``ctc_decoder``, the
  flashlight-text decoder) keeping ``beam_size`` prefixes per frame, scored

      log p_ctc(prefix | x) + lm_weight * log p_lm(prefix) + word_score * |words|

  where ``p_ctc(prefix | x)`` sums over the alignments that reach the prefix
  (``log_add``, the prefix beam search of Hannun et al. 2014; off: the best alignment).

  Lexicon-free by default (any label sequence); with ``lexicon`` only lexicon words are
  emitted; with ``lm`` (ARPA or KenLM binary n-gram) the LM scores words when a lexicon
  is given, else it scores the tokens (labels) themselves. Beam 1 without an LM is
  greedy decoding.

The decoder's tokens are ``[blank, *labels]``, plus a silence token the model never emits
(log-probability -inf) when the data has no word-boundary label. Text from labels
(:func:`spell`) follows the dataset's ``meta.json`` ``decode`` record: ``join`` (``" "``
for word units, ``""`` for characters and pieces) and ``word_boundary`` (the label read
as a space, e.g. ``▁``), the word boundary being the decoder's silence token.

Lexicon file: one word per line (spelled by the data's units: characters plus the word
boundary for char units, the word itself for word units), or flashlight's format
``word tok1 tok2 ...`` (tokens are dataset labels) used as given; needed for pieces.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

BLANK = 0
# The meta.json ``decode`` record of datasets that have none (speech_digits_synth: words).
WORD_SPELLING: dict[str, Any] = {"join": " ", "word_boundary": None}


def greedy_decode(logits: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    """Best path: argmax per frame, merge repeats, drop blanks; label ids (0-based).

    ``logits`` ``(B, T, C)``, ``lengths`` ``(B,)`` valid frames per sequence.
    """
    best = logits.argmax(-1).cpu()
    out = []
    for seq, n in zip(best, lengths.cpu().tolist()):
        labels, prev = [], BLANK
        for s in seq[:n].tolist():
            if s != prev and s != BLANK:
                labels.append(s - 1)
            prev = s
        out.append(labels)
    return out


def spell(names: Sequence[str], labels: Sequence[int], spelling: Mapping[str, Any]) -> str:
    """The text of dataset label ids: names joined by ``spelling["join"]``, the
    ``word_boundary`` label read as a space, runs of spaces collapsed."""
    text = str(spelling.get("join", " ")).join(names[k] for k in labels)
    boundary = spelling.get("word_boundary")
    if boundary:
        text = text.replace(boundary, " ")
    return " ".join(text.split())


@dataclass(frozen=True)
class BeamConfig:
    """``task.decoder``: the beam search settings (torchaudio ``ctc_decoder`` names)."""

    beam_size: int = 16
    beam_size_token: int | None = None  # tokens tried per frame; None: all
    beam_threshold: float = 50.0  # prune prefixes this far (log) below the best
    lexicon: str | None = None  # word list or flashlight lexicon file
    lm: str | None = None  # n-gram LM file: ARPA or KenLM binary
    lm_weight: float = 2.0
    word_score: float = 0.0  # added per emitted word (insertion bonus/penalty)
    unk_score: float = -math.inf  # per out-of-lexicon word (lexicon decoding)
    sil_score: float = 0.0  # per word boundary
    log_add: bool = True  # merged prefixes add probabilities (False: keep the max)
    test_beam: bool = False  # also beam-decode the test set in train (evaluate always does)

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any] | None, where: str = "task.decoder"):
        """Check ``cfg`` (unknown keys, types, ranges, files) and build the config."""
        cfg = dict(cfg or {})
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(cfg) - set(valid))
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; valid: {', '.join(valid)}")
        out = cls(**cfg)
        for key in ("beam_size", "beam_size_token"):
            v = getattr(out, key)
            if v is None and key == "beam_size_token":
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{where}.{key}={v!r} must be an integer >= 1")
        for key in ("beam_threshold", "lm_weight", "word_score", "unk_score", "sil_score"):
            v = getattr(out, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
                raise ValueError(f"{where}.{key}={v!r} must be a number")
        if out.beam_threshold < 0:
            raise ValueError(f"{where}.beam_threshold={out.beam_threshold!r} must be >= 0")
        for key in ("lexicon", "lm"):
            path = getattr(out, key)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{where}.{key}={path!r}: no such file")
        for key in ("log_add", "test_beam"):
            if not isinstance(getattr(out, key), bool):
                raise ValueError(f"{where}.{key}={getattr(out, key)!r} must be true or false")
        return out

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _unique(name: str, taken: set[str]) -> str:
    while name in taken:
        name = f"<{name}>"
    return name


def lexicon_lines(path: str | Path, labels: Sequence[str], spelling: Mapping[str, Any]):
    """flashlight lexicon lines (``word tok ...``) from a word list or a lexicon file.

    A one-field line is a word spelled by the units: for ``join=""`` (characters) its
    characters then the word boundary, else the word itself as one label. Every token
    must be a dataset label; a word that cannot be spelled is an error naming it.
    """
    known = set(labels)
    boundary = spelling.get("word_boundary")
    lines = []
    for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        parts = raw.split()
        if not parts:
            continue
        word, spelled = parts[0], parts[1:]
        if not spelled:
            if spelling.get("join", " ") == "":
                spelled = list(word) + ([boundary] if boundary in known else [])
            else:
                spelled = [word]
        missing = [t for t in spelled if t not in known]
        if missing:
            raise ValueError(
                f"{path}:{number}: word {word!r} is spelled with {missing}, which are not "
                f"labels of this dataset (meta.json labels); write it as 'word label label ...'"
            )
        lines.append(" ".join([word, *spelled]))
    if not lines:
        raise ValueError(f"{path}: the lexicon holds no word")
    return lines


class BeamSearchDecoder:
    """``decoder(logits, lengths) -> list of label-id lists`` (see the module docstring).

    ``labels`` are the dataset's label names (model output ``k + 1`` is label ``k``);
    ``spelling`` its ``meta.json`` ``decode`` record.
    """

    def __init__(
        self,
        labels: Sequence[str],
        cfg: BeamConfig | Mapping[str, Any] | None = None,
        spelling: Mapping[str, Any] | None = None,
    ):
        from torchaudio.models.decoder import ctc_decoder  # needs flashlight-text

        cfg = cfg if isinstance(cfg, BeamConfig) else BeamConfig.from_mapping(cfg)
        self.cfg, self.labels = cfg, list(labels)
        self.spelling = dict(spelling or WORD_SPELLING)
        taken = set(self.labels)
        blank = _unique("<blank>", taken)
        boundary = self.spelling.get("word_boundary")
        self.extra_sil = boundary not in taken
        sil = _unique("<sil>", taken) if self.extra_sil else boundary
        tokens = [blank, *self.labels] + ([sil] if self.extra_sil else [])
        self.sil_index = tokens.index(sil)
        options = {
            "tokens": tokens,
            "lm": cfg.lm,
            "beam_size": cfg.beam_size,
            "beam_size_token": cfg.beam_size_token,
            "beam_threshold": cfg.beam_threshold,
            "lm_weight": cfg.lm_weight if cfg.lm else 0.0,
            "word_score": cfg.word_score,
            "unk_score": cfg.unk_score,
            "sil_score": cfg.sil_score,
            "log_add": cfg.log_add,
            "blank_token": blank,
            "sil_token": sil,
            # the LM's and lexicon's unknown word (kenlm's <unk>); unused without a lexicon
            "unk_word": "<unk>",
        }
        if cfg.lexicon is None:
            self.decoder = ctc_decoder(lexicon=None, **options)
            return
        lines = lexicon_lines(cfg.lexicon, self.labels, self.spelling)
        with tempfile.TemporaryDirectory(prefix="rnnlab-lexicon-") as tmp:
            lexicon = Path(tmp) / "lexicon.txt"  # read once by ctc_decoder, then dropped
            lexicon.write_text("\n".join(lines) + "\n", encoding="utf-8")
            self.decoder = ctc_decoder(lexicon=str(lexicon), **options)

    def _best(self, logits: torch.Tensor, lengths: torch.Tensor) -> list[Any]:
        """The best hypothesis of each sequence (None for an empty beam)."""
        emissions = torch.log_softmax(logits.detach().float(), dim=-1).cpu()
        if self.extra_sil:  # a silence token the model never emits
            never = torch.full((*emissions.shape[:2], 1), -math.inf)
            emissions = torch.cat([emissions, never], dim=-1)
        results = self.decoder(emissions.contiguous(), lengths.detach().cpu().to(torch.int32))
        return [hyps[0] if hyps else None for hyps in results]

    def _labels(self, hyp: Any) -> list[int]:
        """0-based label ids of a hypothesis: blanks dropped (already merged by the
        decoder), and the silence token when it is not a label."""
        if hyp is None:
            return []
        tokens = hyp.tokens.tolist()
        # flashlight starts and ends every hypothesis with the silence token (merged with
        # a boundary the model emits there): not an output, and never text (spell strips)
        if tokens and tokens[0] == self.sil_index:
            tokens = tokens[1:]
        if tokens and tokens[-1] == self.sil_index:
            tokens = tokens[:-1]
        drop = {BLANK, self.sil_index} if self.extra_sil else {BLANK}
        return [t - 1 for t in tokens if t not in drop]

    def __call__(self, logits: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
        """Label ids (0-based) of the best beam per sequence, as :func:`greedy_decode`."""
        return [self._labels(hyp) for hyp in self._best(logits, lengths)]

    def transcribe(self, logits: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        """Text of the best beam per sequence: its lexicon words (lexicon decoding), else
        its labels spelled as :func:`spell`."""
        hyps = self._best(logits, lengths)
        if self.cfg.lexicon is not None:
            return [" ".join(hyp.words) if hyp is not None else "" for hyp in hyps]
        return [spell(self.labels, self._labels(hyp), self.spelling) for hyp in hyps]
