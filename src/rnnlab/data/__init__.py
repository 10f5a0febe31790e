"""Datasets: a small shared core, then one module per dataset source, by modality.

Core (every source uses these; none imports a source):

* :mod:`rnnlab.data.format` — the processed format (``train/val/test.pt`` + ``meta.json``)
  that every prepare stage writes and every DataModule reads;
* :mod:`rnnlab.data.splits` — the one split rule (fractions, sha256 hash splits,
  speaker/voice-disjoint splits, carving val from train);
* :mod:`rnnlab.data.bad_input` — skip-and-count or stop-naming-file-and-line
  (``OnBadInput``, the ``on_bad_input`` option);
* :mod:`rnnlab.data.options` — ``takes``: a builder receives the options several
  builders share (``Fractions``, ``OnBadInput``, ``EncodeOptions``, ``SpeechOptions``,
  ...) as one dataclass per group, each defined once and validated once;
* :mod:`rnnlab.data.download` (``fetch``: resumable, checksummed) and
  :mod:`rnnlab.data.archives` (``safe_extract``, ``extract_once``);
* :mod:`rnnlab.data.prepare` — the DVC stage entry, ``python -m rnnlab.data.prepare``;
* :mod:`rnnlab.data.sampling` (batch order as a function of seed and epoch) and
  :mod:`rnnlab.data.datamodules` (``ProcessedDataModule``: length-bucketed batches).

Sources: :mod:`rnnlab.data.probes` (adding, copy: generated on the fly),
:mod:`rnnlab.data.text` (tokenizer, encode, records + one module per source) and
:mod:`rnnlab.data.speech` (features, augment, audio + one module per source).

Adding a dataset is one module with a ``build_<name>(out_dir, **params) -> (splits,
meta)`` function (its own parameters, plus the shared option groups it declares with
:func:`rnnlab.data.options.takes`) and one ``conf/data/<name>.yaml`` whose
``prepare._target_`` names it (see the README's "Layout" section for a worked example).
"""
