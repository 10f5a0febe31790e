"""Offline speech synthesis with espeak-ng (via the ``espeakng_loader`` wheel and ctypes).

Why: the embedded speech datasets must be generated here, deterministically and without a
network or a system package. espeak-ng is a formant synthesiser: fast (~1 ms per word),
deterministic for a given voice/rate/pitch, and with many voices and variants that play
the role of "speakers" for speaker-disjoint splits.

espeak-ng keeps global state and is not thread-safe, so the library is initialised once
per process and every call goes through one lock. That state also carries over between
utterances (the pitch-flutter phase, noise generators, ...): the same call made twice in
one process can differ by a few samples, while a fresh process replaying the same calls is
byte-identical. Datasets therefore use :func:`synthesize_batch`, which runs each batch
(e.g. one speaker) in a fresh worker process: the audio of a clip depends only on its
batch, never on what was synthesized before, and batches run in parallel.

This module imports neither torch nor rnnlab.data.format (only the torch-free
:mod:`rnnlab.errors`), so a worker (``python -m rnnlab.data.speech.espeak``) starts in
~0.1 s.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from rnnlab.errors import DataError

SAMPLE_RATE = 22050  # espeak-ng's native output rate

# espeak_AUDIO_OUTPUT: synchronous retrieval — espeak_Synth returns after the callback
# has received every sample.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
# espeak_PARAMETER
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
_EE_OK = 0

# Valid parameter ranges (espeak-ng clamps silently; we prefer a clear error).
RATE_RANGE = (80, 450)  # words per minute
PITCH_RANGE = (0, 99)  # base pitch, 50 = voice default

# English-family voices shipped in espeak-ng-data/lang/gmw, and the male/female variants
# in espeak-ng-data/voices/!v that sound like plausible speakers (no whisper/robot).
ENGLISH_VOICES = (
    "en",
    "en-us",
    "en-gb-x-rp",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-us-nyc",
    "en-029",
)
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
)  # fmt: skip

_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


@dataclass(frozen=True)
class Voice:
    """A synthetic speaker: espeak voice (language) + variant, e.g. ``en-us`` + ``f2``."""

    name: str
    variant: str | None = None

    @property
    def spec(self) -> str:
        return f"{self.name}+{self.variant}" if self.variant else self.name

    @classmethod
    def parse(cls, spec: str) -> Voice:
        name, _, variant = spec.partition("+")
        return cls(name, variant or None)


class _Engine:
    """The process-wide espeak-ng instance (lazily loaded, lock-guarded)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lib: ctypes.CDLL | None = None
        self.rate = 0
        self._chunks: list[np.ndarray] = []
        self._voice: str | None = None
        self._seed_fns: list = []
        # Keep a reference so the callback is not garbage-collected while C holds it.
        self._callback = _CALLBACK(self._collect)

    def _collect(self, wav, numsamples: int, events) -> int:
        if wav and numsamples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        return 0  # 0 = continue synthesis

    def _load(self) -> ctypes.CDLL:
        if self.lib is not None:
            return self.lib
        try:
            import espeakng_loader
        except ImportError as e:  # pragma: no cover - a declared dependency
            raise DataError(
                "speech synthesis needs the 'espeakng-loader' package (pip install espeakng-loader)"
            ) from e
        lib_path = espeakng_loader.get_library_path()
        data_path = espeakng_loader.get_data_path()
        try:
            lib = ctypes.CDLL(lib_path)
        except OSError as e:
            raise DataError(f"{lib_path}: cannot load libespeak-ng ({e})") from e
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]  # fmt: skip
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        # buflength 0 = default; the data path is the dir *containing* espeak-ng-data's files.
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise DataError(f"{data_path}: espeak_Initialize failed (returned {rate})")
        lib.espeak_SetSynthCallback(self._callback)
        # Breath/aspiration noise comes from espeak's own generator (seeded from the clock
        # at start-up) and libc rand(): both are re-seeded before every utterance.
        self._seed_fns = []
        if hasattr(lib, "espeak_ng_SetRandSeed"):
            lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
            lib.espeak_ng_SetRandSeed.restype = ctypes.c_int
            self._seed_fns.append(lib.espeak_ng_SetRandSeed)
        libc = ctypes.CDLL(None)
        if hasattr(libc, "srand"):
            libc.srand.argtypes = [ctypes.c_uint]
            libc.srand.restype = None
            self._seed_fns.append(libc.srand)
        self.lib, self.rate = lib, rate
        return lib

    def synthesize(self, text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
        with self.lock:
            lib = self._load()
            if voice != self._voice:
                if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                    self._voice = None
                    raise DataError(
                        f"espeak voice {voice!r} not found; valid: a language such as "
                        f"{', '.join(ENGLISH_VOICES)} optionally with '+<variant>' "
                        f"({', '.join(VARIANTS)}, ...)"
                    )
                self._voice = voice
            # Setting the voice resets parameters, so set them on every call.
            lib.espeak_SetParameter(_RATE, int(rate), 0)
            lib.espeak_SetParameter(_PITCH, int(pitch), 0)
            lib.espeak_SetParameter(_VOLUME, 100, 0)
            for seed_fn in self._seed_fns:
                seed_fn(1)
            self._chunks = []
            data = text.encode("utf-8") + b"\0"
            err = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            if err != _EE_OK:
                raise DataError(f"espeak_Synth failed for text {text!r} voice {voice!r} ({err})")
            lib.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
        if not chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(chunks).astype(np.int16, copy=False)


_ENGINE = _Engine()


def synthesize(
    text: str,
    voice: str | Voice = "en",
    rate: int = 175,
    pitch: int = 50,
) -> np.ndarray:
    """Speak ``text`` and return mono int16 samples at :data:`SAMPLE_RATE` (22050 Hz).

    ``voice`` is an espeak voice name with an optional variant ("en+m3", "en-us+f2").
    ``rate`` is in words per minute, ``pitch`` 0..99 (50 is the voice's default).
    Repeated calls in one process may differ by a few samples (see the module docstring).
    """
    spec = voice.spec if isinstance(voice, Voice) else str(voice)
    _check_params(rate, pitch)
    return _ENGINE.synthesize(text, spec, int(rate), int(pitch))


Job = tuple[str, str, int, int]  # (text, voice spec, rate, pitch)
WORKER_MODULE = "rnnlab.data.speech.espeak"  # run as ``python -m`` by each worker process


def synthesize_batch(
    batches: Sequence[Sequence[Job]], workers: int | None = None
) -> list[list[np.ndarray]]:
    """Synthesize each batch of jobs in its own fresh process (reproducible; parallel).

    ``batches[i][j] = (text, voice, rate, pitch)``; returns the int16 arrays in the same
    nesting. ``workers`` processes run at once (default: the CPU count, at most 4).
    """
    for batch in batches:
        for job in batch:
            _check_params(job[2], job[3])
    workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        return list(pool.map(_run_worker, [list(b) for b in batches]))


def synthesize_per_voice(
    speakers: Sequence[Voice], jobs: Sequence[Sequence[Job]], workers: int | None
) -> list[list[np.ndarray]]:
    """One fresh espeak-ng process per voice (all its variants): reproducible, and a worker's
    ~0.3 s start-up is paid 8 times instead of once per speaker. Returns audio per speaker."""
    groups: dict[str, list[int]] = {}
    for i, spk in enumerate(speakers):
        groups.setdefault(spk.name, []).append(i)
    batches = [[job for i in idx for job in jobs[i]] for idx in groups.values()]
    out: list[list[np.ndarray]] = [[] for _ in speakers]
    for idx, audios in zip(groups.values(), synthesize_batch(batches, workers)):
        pos = 0
        for i in idx:
            out[i] = audios[pos : pos + len(jobs[i])]
            pos += len(jobs[i])
    return out


def _run_worker(jobs: list[Job]) -> list[np.ndarray]:
    if not jobs:
        return []
    proc = subprocess.run(
        [sys.executable, "-m", WORKER_MODULE],
        input=pickle.dumps(jobs),
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip().splitlines()
        raise DataError(message[-1] if message else f"espeak-ng worker failed ({proc.returncode})")
    return pickle.loads(proc.stdout)


def _worker_main() -> None:
    """Read pickled jobs on stdin, write pickled int16 arrays on stdout."""
    jobs = pickle.loads(sys.stdin.buffer.read())
    try:
        out = [synthesize(*job) for job in jobs]
    except Exception as e:  # the parent re-raises the last stderr line
        print(f"{e}", file=sys.stderr)
        sys.exit(1)
    sys.stdout.buffer.write(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))


def _check_params(rate: int, pitch: int) -> None:
    if not RATE_RANGE[0] <= int(rate) <= RATE_RANGE[1]:
        raise DataError(
            f"synthesis rate={rate!r} out of range; valid: {RATE_RANGE[0]}..{RATE_RANGE[1]} wpm"
        )
    if not PITCH_RANGE[0] <= int(pitch) <= PITCH_RANGE[1]:
        raise DataError(
            f"synthesis pitch={pitch!r} out of range; valid: {PITCH_RANGE[0]}..{PITCH_RANGE[1]}"
        )


def trim_silence(audio: np.ndarray, threshold: float = 0.02) -> np.ndarray:
    """Drop leading/trailing near-silence so clips can be placed (shifted) inside a window."""
    if audio.size == 0:
        return audio
    peak = float(np.abs(audio).max())
    if peak == 0:
        return audio[:0]
    loud = np.flatnonzero(np.abs(audio) > threshold * peak)
    return audio[loud[0] : loud[-1] + 1]


if __name__ == "__main__":
    _worker_main()
