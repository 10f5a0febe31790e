"""Speech datasets, one concept per module.

Every builder returns ``(splits, meta)`` for :func:`rnnlab.data.format.write_processed`:
``Split.inputs`` are float32 ``(frames, F)`` feature tensors, and ``meta`` records the
feature parameters (so the same front end can be rebuilt at inference), the normalisation
statistics (computed on TRAIN only), the speakers of each split (so a reviewer can check
that they are disjoint) and what was skipped and why.

The front end and shared parts:

* :mod:`~rnnlab.data.speech.options` — ``SpeechOptions`` (``seed``, ``features``,
  ``normalize``), the option group every speech builder takes.
* :mod:`~rnnlab.data.speech.features` — ``FeatureParams``, ``FeatureExtractor`` (log-mel
  or MFCC), ``resample``, ``fix_length``, ``normalize_splits``, ``single_thread``.
* :mod:`~rnnlab.data.speech.augment` — ``spec_augment`` (train-time masking).
* :mod:`~rnnlab.data.speech.audio` — ``read_audio``, ``BadAudio``, featurising a list of
  files under the bad-input policy.
* :mod:`~rnnlab.data.speech.labels` — the Speech Commands core words, the digit names.
* :mod:`~rnnlab.data.speech.espeak` — the espeak-ng engine (ctypes, torch-free), ``Voice``,
  ``synthesize``, ``synthesize_batch`` (one fresh worker process per batch).
* :mod:`~rnnlab.data.speech.render` — synthesized speech to a clip: placement, noise, gain.

One module per dataset source (the ``_target_`` of ``conf/data/<name>.yaml``):

* :mod:`~rnnlab.data.speech.synthetic` — ``build_speech_commands_synth`` (keyword
  spotting) and ``build_speech_digits_synth`` (CTC), espeak-ng voices as speakers.
* :mod:`~rnnlab.data.speech.folder` — ``build_audio_folder``: your own
  ``<root>/<label>/*.wav`` or a manifest CSV.
* :mod:`~rnnlab.data.speech.speech_commands` — ``build_speech_commands``: the real Google
  Speech Commands v2 (download).
* :mod:`~rnnlab.data.speech.transcripts` — ``build_speech_transcripts``: your own
  transcribed recordings for CTC (manifest, LibriSpeech or Common Voice layouts), and
  ``build_transcribed``, the one CTC builder every transcribed source goes through.
* :mod:`~rnnlab.data.speech.librispeech` — ``build_librispeech``: LibriSpeech subsets
  from OpenSLR (download), the same builder with a download source.

Nothing is re-exported here: import from the module (old ``rnnlab.data.speech.build_*``
targets resolve through :data:`rnnlab.compat.TARGET_ALIASES` only).
"""
