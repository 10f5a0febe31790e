"""LibriSpeech (Panayotov et al. 2015, CC BY 4.0): download subsets, prepare for CTC.

Each subset (``dev-clean``, ``dev-other``, ``test-clean``, ``test-other``,
``train-clean-100``, ``train-clean-360``, ``train-other-500``) is one OpenSLR archive
``<base_url>/<subset>.tar.gz``, fetched to ``<raw_dir>/librispeech/`` with
:func:`~rnnlab.data.download.fetch` (resumable, sha256-verified, atomic; a verified file
already there is reused, so offline users can drop the archives in) and unpacked once by
:func:`~rnnlab.data.archives.extract_once` (safe extraction, sha256 marker) into
``<raw_dir>/librispeech/<subset>/LibriSpeech/<subset>/``. :data:`SHA256` holds the
archives' sha256 as torchaudio (``torchaudio.datasets.librispeech._CHECKSUMS``) ships
them; ``sha256``/``md5`` in the config override them per subset (a mirror, a test).

Splits: ``subsets`` is a list or a mapping ``{train: [...], val: [...], test: [...]}``.
A list's ``train-*``/``dev-*``/``test-*`` subsets are their own splits when one is a
train subset (val carved from train by speaker if no dev subset is given); otherwise
(e.g. ``[dev-clean]`` alone) the utterances are split speaker-disjointly by
``val_fraction``/``test_fraction``. Everything else is
:func:`~rnnlab.data.speech.transcripts.build_transcribed`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rnnlab.data.archives import extract_once
from rnnlab.data.bad_input import BadInput
from rnnlab.data.download import fetch
from rnnlab.data.speech.audio import AudioItem
from rnnlab.data.speech.transcript_sources import keep_given_with_train, read_librispeech
from rnnlab.data.speech.transcripts import SPEAKER_DEFINITIONS, transcribed_builder
from rnnlab.data.splits import SPLITS, canonical_split
from rnnlab.errors import DataError

NAME = "librispeech"
BASE_URL = "https://www.openslr.org/resources/12"
SHA256 = {
    "dev-clean": "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3",
    "dev-other": "12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365",
    "test-clean": "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23",
    "test-other": "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29",
    "train-clean-100": "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2",
    "train-clean-360": "146a56496217e96c14334a160df97fffedd6e0a04e66b9c5af0d40be3c792ecf",
    "train-other-500": "ddb22f27f96ec163645d53215559df6aa36515f26e01dd70798188350adcb6d2",
}
SUBSETS = tuple(SHA256)


def subset_plan(
    subsets: Sequence[str] | Mapping[str, Sequence[str]],
) -> list[tuple[str, str | None]]:
    """(subset, split or None) pairs: a mapping's keys are the splits; a list's names are
    resolved later (:func:`~rnnlab.data.speech.transcript_sources.keep_given_with_train`)."""
    if isinstance(subsets, str):
        subsets = [s.strip() for s in subsets.split(",") if s.strip()]
    if isinstance(subsets, Mapping):
        plan = []
        for key, names in subsets.items():
            split = canonical_split(key)
            if split is None:
                raise DataError(f"{NAME}.subsets: key {key!r}; valid: {', '.join(SPLITS)}")
            plan += [(n, split) for n in ([names] if isinstance(names, str) else names)]
    else:
        plan = [(n, None) for n in subsets]
    if not plan:
        raise DataError(f"{NAME}.subsets is empty; valid: {', '.join(SUBSETS)}")
    unknown = sorted({n for n, _ in plan} - set(SUBSETS))
    if unknown:
        raise DataError(f"{NAME}.subsets: unknown {unknown}; valid: {', '.join(SUBSETS)}")
    return plan


def download_subset(
    subset: str,
    raw: Path,
    base_url: str,
    sha256: Mapping[str, str] | None,
    md5: Mapping[str, str] | None,
) -> tuple[Path, dict[str, Any]]:
    """Fetch and extract one subset; (its folder of speakers, its meta record)."""
    url = f"{base_url.rstrip('/')}/{subset}.tar.gz"
    digest = (sha256 or {}).get(subset, SHA256.get(subset))
    md5_digest = (md5 or {}).get(subset)
    archive = fetch(url, digest, raw / f"{subset}.tar.gz", md5=md5_digest)
    target = extract_once(archive, raw / subset)
    candidates = [target / "LibriSpeech" / subset, target / subset, target]
    folder = next(
        (c for c in candidates if c.is_dir() and next(c.rglob("*.trans.txt"), None)), None
    )
    if folder is None:
        raise DataError(
            f"{archive}: no LibriSpeech/{subset}/<speaker>/<chapter>/*.trans.txt after "
            "extraction; is this a LibriSpeech archive?"
        )
    return folder, {"subset": subset, "url": url, "sha256": digest, "md5": md5_digest}


def read_subsets(
    plan: list[tuple[str, str | None]],
    folders: Mapping[str, Path],
    extensions: Sequence[str],
    bad: BadInput,
) -> list[AudioItem]:
    """Every utterance of the planned subsets; splits from the mapping, or from the
    subset names when a train subset is among them."""
    items: list[AudioItem] = []
    for subset, split in plan:
        read = read_librispeech(folders[subset], extensions, bad, f"{NAME}.{subset}")
        if split is not None:
            for it in read:
                it.split = split
        items += read
    return items if all(s is not None for _, s in plan) else keep_given_with_train(items)


@dataclass(frozen=True)
class LibriSpeechDownload:
    """The LibriSpeech ``subsets`` to download from ``base_url`` (a list, or a mapping
    ``{train: [...], val: [...], test: [...]}``; see the module docstring), ``sha256``
    and ``md5`` ``{subset: hex}`` overriding :data:`SHA256`; audio files with one of
    ``extensions``. The source group of :func:`build_librispeech`."""

    subsets: Sequence[str] | Mapping[str, Sequence[str]] = ("dev-clean",)
    base_url: str = BASE_URL
    sha256: Mapping[str, str] | None = None
    md5: Mapping[str, str] | None = None
    extensions: Sequence[str] = (".flac", ".wav")
    where: ClassVar[str] = NAME

    def validate(self, where: str) -> None:
        subset_plan(self.subsets)

    def read(self, raw_dir: str | Path | None, bad: BadInput) -> tuple[list[AudioItem], dict]:
        """Every utterance of the downloaded subsets, and ``meta["source"]``."""
        plan = subset_plan(self.subsets)
        raw = Path(raw_dir or "data/raw") / NAME
        folders, records = {}, []
        for subset in dict.fromkeys(n for n, _ in plan):
            folders[subset], record = download_subset(
                subset, raw, self.base_url, self.sha256, self.md5
            )
            records.append(record)
        items = read_subsets(plan, folders, list(self.extensions), bad)
        return items, {
            "layout": "librispeech",
            "subsets": [{**r, "split": dict(plan)[r["subset"]]} for r in records],
            "speaker_definition": SPEAKER_DEFINITIONS["librispeech"],
        }


build_librispeech = transcribed_builder(
    NAME,
    LibriSpeechDownload(),
    """Download the LibriSpeech ``subsets`` and prepare them for CTC (the module
    docstring; :class:`LibriSpeechDownload`, then
    :func:`~rnnlab.data.speech.transcripts.build_transcribed`).""",
)
