"""The default name (and so the processed directory) of a bring-your-own dataset.

Every bring-your-own config (``csv``, ``audio_folder``, ``speech_transcripts``) sets

.. code-block:: yaml

    data:
      name: ${rnnlab_data_name:csv,${prepare.path},${prepare.train_path}}
      data_dir: ${paths.data_dir}/processed/${data.name}

so two datasets never share processed files: ``data.name=my_reviews`` names the
directory yourself; by default it is ``<kind>-<stem>-<hash>``, where ``stem`` is the
first given source's file stem (or folder name) and ``hash`` the first 8 hex digits of
sha256 over every given source's absolute path (one per line). With no source given
(a config's documented default folder) the name is just ``<kind>``.

No torch here: :func:`rnnlab.config.register_resolvers` imports this module.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

RESOLVER = "rnnlab_data_name"
HASH_CHARS = 8
STEM_CHARS = 40
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip", ".gz")


def _flatten(values: Iterable[Any]) -> list[str]:
    """Every non-empty path among ``values`` (None skipped, lists/ListConfigs flattened)."""
    out: list[str] = []
    for v in values:
        if v is None:
            continue
        if isinstance(v, (str, os.PathLike)):
            if str(v).strip() and str(v).strip().lower() not in ("null", "none"):
                out.append(str(v).strip())
        else:  # a list of paths (ListConfig included)
            out.extend(_flatten(list(v)))
    return out


def source_stem(path: str) -> str:
    """A file-system-safe stem of ``path``: its file name without extension(s), at most
    :data:`STEM_CHARS` characters of ``[A-Za-z0-9_.-]``."""
    name = Path(path).name or Path(path).resolve().name
    lower = name.lower()
    for suffix in _ARCHIVE_SUFFIXES:
        if lower.endswith(suffix):
            name = name[: -len(suffix)]
            break
    else:
        name = Path(name).stem if Path(name).suffix else name
    safe = _UNSAFE.sub("_", name).strip("._-")
    return (safe or "data")[:STEM_CHARS]


def data_name(kind: str, *sources: Any) -> str:
    """``<kind>-<stem>-<hash8>`` from the given source paths, or ``<kind>`` with none.

    ``sources`` are the prepare block's path keys (None when unset; a key may hold a
    list). Relative paths are made absolute against the current directory, so the same
    file always gives the same name and two different files never do.
    """
    paths = _flatten(sources)
    if not paths:
        return str(kind)
    absolute = [os.path.abspath(os.path.expanduser(p)) for p in paths]
    digest = hashlib.sha256("\n".join(absolute).encode("utf-8")).hexdigest()[:HASH_CHARS]
    return f"{kind}-{source_stem(absolute[0])}-{digest}"
