"""espeak-ng synthesis: speech comes out, voices differ, a fresh process per batch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from rnnlab.data.speech.espeak import SAMPLE_RATE, synthesize, synthesize_batch, trim_silence
from rnnlab.errors import DataError


def test_synthesis_is_speech_and_voices_differ():
    a = synthesize("stop", "en+m3", rate=175, pitch=50)
    b = synthesize("stop", "en-us+f2", rate=175, pitch=50)
    assert a.dtype == np.int16 and b.dtype == np.int16
    assert 0.1 * SAMPLE_RATE < len(a) < 2 * SAMPLE_RATE
    assert np.abs(a).max() > 1000 and np.abs(b).max() > 1000
    n = min(len(a), len(b))
    assert len(a) != len(b) or not np.array_equal(a[:n], b[:n])
    # a fresh process per batch: same batch -> byte-identical samples, whatever ran before
    jobs = [("stop", "en+m3", 175, 50), ("go", "en-us+f2", 175, 50)]
    first, again = synthesize_batch([jobs, jobs], workers=2)
    assert all(np.array_equal(x, y) for x, y in zip(first, again))
    assert np.array_equal(first[0], synthesize_batch([jobs[:1]])[0][0])
    # rate matters
    assert len(synthesize("stop", "en", rate=350)) < len(synthesize("stop", "en", rate=100))


def test_synthesis_rejects_bad_voice_and_params():
    with pytest.raises(DataError, match="not-a-voice"):
        synthesize("yes", "not-a-voice")
    with pytest.raises(DataError, match="rate=5"):
        synthesize("yes", "en", rate=5)
    with pytest.raises(DataError, match="pitch=200"):
        synthesize("yes", "en", pitch=200)
    # a worker's error comes back as a DataError naming the voice
    with pytest.raises(DataError, match="not-a-voice"):
        synthesize_batch([[("yes", "not-a-voice", 175, 50)]])


def test_engine_and_worker_import_no_torch():
    """Workers start fast because the engine module (and its packages) never import torch."""
    code = "import sys, rnnlab.data.speech.espeak; assert 'torch' not in sys.modules, 'torch'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_trim_silence():
    x = np.array([0, 1, 0, 500, -1000, 3, 0], dtype=np.int16)
    assert trim_silence(x).tolist() == [500, -1000]
    assert trim_silence(np.zeros(5, np.int16)).size == 0
    assert trim_silence(np.zeros(0, np.int16)).size == 0
