"""Which backend runs a recurrent kernel call: ``RNNLAB_KERNEL=auto|cpp|triton|python``.

- ``cpp``: recurrence.cpp / gated_feedback.cpp compiled once (build.py): CPU, float32/64;
- ``triton``: triton_recurrence.py / triton_feedback.py, and the cell variants'
  triton_variant.py: CUDA tensors in float32, bfloat16
  or float16 (float32 accumulation and state); on CPU tensors only under Triton's
  interpreter (``TRITON_INTERPRET=1``, how the tests check the kernels without a GPU);
- ``python``: torch_ops.py / gated_feedback_torch_ops.py, the same algorithm in torch ops:
  any device and dtype.

``auto`` (the default) picks ``triton`` for a CUDA tensor when Triton imports, ``cpp``
for a CPU float32/float64 tensor (``python`` if the build fails, with a one-line
notice), ``python`` otherwise. A forced choice that cannot run the tensor's dtype
(float64 on ``triton``, bfloat16 on ``cpp``) runs ``python``; a forced ``triton``
without Triton, or on a CPU tensor without the interpreter, is an error naming the fix.
The choice made is logged once per (backend, device type, dtype) on the ``rnnlab.nn.kernels``
logger, and ``describe_backend`` names it for the layers' repr.
"""

from __future__ import annotations

import logging
import os
import sys

import torch

BACKENDS = ("auto", "cpp", "triton", "python")
# Cell codes of the kernels (enum Cell in nn/kernels/common.h; the Triton kernels' CELL).
CELL_CODES = {"rnn": 0, "lstm": 1, "gru": 2, "indrnn": 3}
TRITON_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
CPP_DTYPES = (torch.float32, torch.float64)
log = logging.getLogger("rnnlab.nn.kernels")
_state: dict[str, object] = {}


def requested_backend() -> str:
    """``RNNLAB_KERNEL``, validated: one of ``BACKENDS``."""
    mode = os.environ.get("RNNLAB_KERNEL", "auto").lower()
    if mode not in BACKENDS:
        raise ValueError(f"RNNLAB_KERNEL={mode!r} is not valid; valid: {', '.join(BACKENDS)}")
    return mode


def triton_interpret() -> bool:
    """True when Triton's interpreter runs kernels (``TRITON_INTERPRET=1``): CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def cpp_available() -> bool:
    """Build/load the C++ kernel once per process; False (with a notice) if it cannot be."""
    if "cpp" not in _state:
        mode = requested_backend()
        if mode in ("python", "triton"):
            _state["cpp"] = False
        else:
            from rnnlab.nn.kernels.build import load_extension

            try:
                load_extension()
                _state["cpp"] = True
            except Exception as err:  # no compiler, no headers, ...: fall back, say so once
                if mode == "cpp":
                    raise
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err)
                print(
                    f"rnnlab: C++ recurrent kernel unavailable ({first}); "
                    "using the slower portable kernel",
                    file=sys.stderr,
                )
                _state["cpp"] = False
    return bool(_state["cpp"])


def triton_error() -> str | None:
    """None when Triton imports; else the one-line reason (cached per process)."""
    if "triton" not in _state:
        try:
            import triton  # noqa: F401

            _state["triton"] = None
        except Exception as err:  # not installed, broken install, no driver bindings
            _state["triton"] = f"{type(err).__name__}: {err}".splitlines()[0]
    return _state["triton"]  # type: ignore[return-value]


def _triton_device_ok(x: torch.Tensor) -> bool:
    return x.device.type == "cuda" or (x.device.type == "cpu" and triton_interpret())


def _choose(x: torch.Tensor) -> str:
    mode = requested_backend()
    if mode == "python":
        return "python"
    if mode == "triton":
        if x.dtype not in TRITON_DTYPES:
            return "python"
        reason = triton_error()
        if reason is not None:
            raise RuntimeError(f"RNNLAB_KERNEL=triton but Triton cannot be imported ({reason})")
        if not _triton_device_ok(x):
            raise RuntimeError(
                f"RNNLAB_KERNEL=triton on a {x.device.type} tensor needs a CUDA tensor, or "
                "TRITON_INTERPRET=1 (set before the first kernel call) for CPU tensors"
            )
        return "triton"
    if x.device.type == "cuda":
        ok = mode == "auto" and x.dtype in TRITON_DTYPES and triton_error() is None
        return "triton" if ok else "python"
    if x.device.type == "cpu" and x.dtype in CPP_DTYPES and cpp_available():
        return "cpp"
    return "python"


def backend_for(x: torch.Tensor) -> str:
    """The backend that will run a layer on tensor ``x``: ``cpp``, ``triton`` or ``python``."""
    choice = _choose(x)
    seen = _state.setdefault("logged", set())
    key = (choice, x.device.type, x.dtype)
    if key not in seen:  # type: ignore[operator]
        seen.add(key)  # type: ignore[union-attr]
        log.info(
            "rnnlab recurrent kernel: backend=%s for %s %s tensors (RNNLAB_KERNEL=%s)",
            choice,
            x.device.type,
            str(x.dtype).removeprefix("torch."),
            requested_backend(),
        )
    return choice


def describe_backend(x: torch.Tensor) -> str:
    """The backend ``backend_for(x)`` picks, for a repr: never builds or raises.

    Before the first call has tried the build, ``auto`` on a CPU float32/float64 tensor
    reads ``cpp (python if the build fails)``.
    """
    mode = requested_backend()
    if mode == "triton" or (mode == "auto" and x.device.type == "cuda"):
        try:
            return _choose(x)
        except RuntimeError as err:
            return f"triton unavailable: {err}"
    if mode == "python" or x.device.type != "cpu" or x.dtype not in CPP_DTYPES:
        return "python"
    if "cpp" in _state:
        return "cpp" if _state["cpp"] else "python"
    return "cpp" if mode == "cpp" else "cpp (python if the build fails)"


def kernel_preferred(x: torch.Tensor, build: bool = True) -> bool:
    """``fused=auto``'s choice for a layer that PyTorch's fused module computes exactly
    (default activations, no variant): True where rnnlab's kernel is the faster path for
    tensor ``x``, False where ``nn.LSTM/GRU/RNN`` is.

    The rule, from ``benchmarks/fused_auto.py`` (results/fused_auto.md): on CPU the C++
    kernel wins forward+backward for every cell, padded or not (PyTorch runs a padded batch on its
    per-step packed path); so the kernel runs wherever the ``cpp`` backend runs ``x``
    (CPU float32/float64 outside a bfloat16/float16 autocast, ``RNNLAB_KERNEL=auto|cpp``,
    the build succeeds). Elsewhere
    the fused module runs: cuDNN on CUDA (the Triton backend is not measured faster
    than cuDNN for tanh), and nn.* where only the slower torch-ops backend could. With
    ``build=False`` (a repr) nothing is compiled: an untried build counts as working.
    """
    if x.device.type != "cpu" or x.dtype not in CPP_DTYPES:
        return False
    if torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") not in CPP_DTYPES:
        return False  # bf16-mixed on CPU: the input projection comes out bfloat16
    if requested_backend() not in ("auto", "cpp"):
        return False
    if build:
        return cpp_available()
    return bool(_state.get("cpp", True))


def for_autograd(*tensors):
    """A kernel Function's inputs: as given under grad mode, detached under ``no_grad``.

    ``ctx.needs_input_grad`` reads ``requires_grad``, not grad mode, so a Function fed a
    module's parameters inside ``torch.no_grad()`` (validation, test, ``evaluate``) would
    save its backward buffers (pre-activations, B*T*G*H values) for a backward that
    never runs; detached inputs make its ``save`` False. Non-tensors pass through.
    """
    if torch.is_grad_enabled():
        return tensors
    return tuple(t.detach() if isinstance(t, torch.Tensor) else t for t in tensors)


def reset_backend() -> None:
    """Forget the cached backend decisions (tests flip ``RNNLAB_KERNEL``)."""
    _state.clear()
