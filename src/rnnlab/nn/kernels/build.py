"""Build (once) and load the C++ recurrent kernels, safely under concurrency.

All ``SOURCES`` (the single-layer recurrence and the gated-feedback stack) compile into
one extension and the cell-variant kernels (``VARIANT_SOURCES``: one layer, and the
gated-feedback stack with variants) into a second, each at
first use, into a cache directory keyed by every source's text, the torch version and
the CPU, so a source edit or a torch upgrade rebuilds it and every later process just
loads the shared object. Two processes building at once
(pytest-xdist workers, DDP ranks) serialise on an ``fcntl`` lock that the OS releases
if a builder dies (so a killed build never wedges later runs); the second process
then finds the finished build and only loads it.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import platform
from pathlib import Path

import torch

_HERE = Path(__file__).parent
SOURCES = [_HERE / "recurrence.cpp", _HERE / "gated_feedback.cpp"]
SOURCE = SOURCES[0]  # the single-layer kernel (kept for callers that named it)
# The cell-variant kernel (variant_recurrence.py) is a second extension, built on its
# first use only: a layer without variants never compiles it.
VARIANT_SOURCES = [
    _HERE / "variant_recurrence.cpp",
    _HERE / "variant_backward.cpp",
    _HERE / "gated_feedback_variants.cpp",  # gated feedback with the variants
    _HERE / "gated_feedback_variants_backward.cpp",
]
HEADERS = [_HERE / "common.h", _HERE / "gated_feedback_common.h"]  # in every cache key
# the variant sources' own headers
VARIANT_HEADERS = [
    _HERE / "variant_recurrence.h",
    _HERE / "variant_rows.h",
    _HERE / "gated_feedback_variants.h",
]
# 512-bit vectors where the CPU has them: the inline exp/tanh/erf run ~25% faster than
# at gcc's default 256-bit preference (ignored on CPUs without AVX-512).
CFLAGS = ["-O3", "-march=native", "-mprefer-vector-width=512", "-ffast-math", "-fopenmp"]
CFLAGS += ["-DNDEBUG"]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags")):
                return line
    except OSError:
        pass
    return platform.processor()


def cache_root() -> Path:
    """``$RNNLAB_KERNEL_CACHE``, else ``$TORCH_EXTENSIONS_DIR/rnnlab``, else ~/.cache/rnnlab."""
    if os.environ.get("RNNLAB_KERNEL_CACHE"):
        return Path(os.environ["RNNLAB_KERNEL_CACHE"])
    if os.environ.get("TORCH_EXTENSIONS_DIR"):
        return Path(os.environ["TORCH_EXTENSIONS_DIR"]) / "rnnlab"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rnnlab" / "kernels"


def build_name(sources: list[Path] | None = None, prefix: str = "rnnlab_rec_") -> str:
    files = (sources or SOURCES) + HEADERS
    if sources == VARIANT_SOURCES:
        files += VARIANT_HEADERS
    sources = [f"{src.name}\n{src.read_text()}" for src in files]
    key = "|".join(
        [*sources, torch.__version__, " ".join(CFLAGS), _cpu_model(), platform.machine()]
    )
    return prefix + hashlib.sha256(key.encode()).hexdigest()[:12]


def load_extension(sources: list[Path] | None = None, prefix: str = "rnnlab_rec_") -> None:
    """Compile if needed and load; registers ``torch.ops.rnnlab_kernels`` (``SOURCES``, the
    default) or ``torch.ops.rnnlab_variant_kernels`` (``VARIANT_SOURCES``, prefix
    ``rnnlab_var_``). Raises on failure."""
    sources = sources or SOURCES
    # Importing cpp_extension on a CUDA build without a GPU logs a warning: not our news.
    ext_log = logging.getLogger("torch.utils.cpp_extension")
    level = ext_log.level
    ext_log.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension
    finally:
        ext_log.setLevel(level)

    name = build_name(sources, prefix)
    build_dir = cache_root() / name
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / "rnnlab.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            cpp_extension.load(
                name=name,
                sources=[str(src) for src in sources],
                extra_cflags=CFLAGS,
                extra_ldflags=["-fopenmp"],
                build_directory=str(build_dir),
                is_python_module=False,
                verbose=False,
            )
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
