"""Text classification datasets and their tokenizers, written in the processed format.

Every builder has the signature ``build_<name>(out_dir, **params) -> (splits, meta)``:
it reads raw text, splits it deterministically (sha256 of the normalised text, so the
split is identical on every machine and identical texts share a split), trains a
tokenizer on the TRAIN split only, saves it as ``<out_dir>/tokenizer.json`` and
returns ``Split``s of int64 token ids (``[PAD]`` = 0, ``[UNK]`` = 1) plus a meta dict
for :func:`rnnlab.data.format.write_processed`.

Modules (import builders from their module: ``_target_: rnnlab.data.text.<module>.build_*``):

* :mod:`~rnnlab.data.text.tokenizer`: ``train_tokenizer``/``load_tokenizer``, char/word/bpe;
* :mod:`~rnnlab.data.text.encode`: the steps every builder shares (normalise, dedupe,
  class limits, hash splits, encode + meta) and their option groups (``EncodeOptions``,
  ``Upstream``);
* :mod:`~rnnlab.data.text.records`: CSV/TSV/JSONL records with their line numbers;
* :mod:`~rnnlab.data.text.chatterbot`: ``build_text_langid``, ``build_text_topics``
  (the packaged chatterbot corpus; offline);
* :mod:`~rnnlab.data.text.tables`: ``build_csv`` (bring your own CSV/TSV/JSONL);
* :mod:`~rnnlab.data.text.ag_news`: ``build_ag_news`` (download);
* :mod:`~rnnlab.data.text.imdb`: ``build_imdb`` (download).
"""
