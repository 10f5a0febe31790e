"""Run the real CLI in a subprocess, as a user would."""

from __future__ import annotations

import atexit
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAST = [
    "print_config=false",
    "data.num_train=64",
    "data.num_val=32",
    "data.num_test=32",
    "data.batch_size=16",
    "data.seq_len=12",
    "model.hidden_size=8",
    "callbacks.progress_bar.refresh_rate=0",
]
# Set in the test process while tests run - by pytest for every test, by Lightning and
# torch when a test trains in-process - and read by nothing at import time: a call's
# environment may differ from the fork server's in these and still be forked (the child
# gets them anyway). Any other difference runs the call from scratch.
VOLATILE_ENV = {
    "PYTEST_CURRENT_TEST",
    "PL_GLOBAL_SEED",
    "PL_SEED_WORKERS",
    "PYTORCH_NVML_BASED_CUDA_CHECK",
    "TORCHINDUCTOR_CACHE_DIR",
}


def cli_env() -> dict[str, str]:
    """The environment every CLI test runs in: offline W&B, no DVC analytics, no warnings."""
    return {
        **os.environ,
        "WANDB_MODE": "offline",
        "DVC_NO_ANALYTICS": "1",
        "PYTHONWARNINGS": "ignore",
        "HYDRA_FULL_ERROR": "0",
    }


def run_cli(
    module: str,
    *overrides: str,
    cwd: Path | None = None,
    check: bool = True,
    timeout: int = 600,
    fresh: bool = False,
) -> subprocess.CompletedProcess:
    """``python -m <module> <overrides>`` in ``cwd``; the result as :func:`subprocess.run`
    gives it (text stdout/stderr). The process is forked from a server that has done the
    imports (:mod:`tests.forkserver`) when the environment allows it, else (or with
    ``fresh=True``, or ``RNNLAB_TEST_FORKSERVER=0``) started from scratch."""
    env = cli_env()
    cwd = Path(cwd or ROOT)
    server = None if fresh else _server_for(env)
    if server is not None:
        proc = server.run(module, list(overrides), cwd=cwd, env=env, timeout=timeout)
    else:
        proc = subprocess.run(
            [sys.executable, "-m", module, *overrides],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{module} {' '.join(overrides)} failed ({proc.returncode}):\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def _stable(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in VOLATILE_ENV}


class ForkServer:
    """Client of one :mod:`tests.forkserver` process, started with ``env``."""

    def __init__(self, env: dict[str, str]):
        self.tmp = Path(tempfile.mkdtemp(prefix="rnnlab-forkserver-"))
        self.log = self.tmp / "server.log"
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("forkserver.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log.open("wb"),
            cwd=ROOT,
            env=env,
        )
        self.buffer = b""
        self.calls = 0
        self._reply(timeout=300)  # {"ready": pid}: the imports are done

    def run(
        self, module: str, argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float
    ) -> subprocess.CompletedProcess:
        self.calls += 1
        out, err = self.tmp / f"{self.calls}.out", self.tmp / f"{self.calls}.err"
        request = {"module": module, "argv": argv, "cwd": str(cwd), "env": env}
        request |= {"stdout": str(out), "stderr": str(err)}
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()
        pid = self._reply(timeout=60)["pid"]
        try:
            rc = self._reply(timeout=timeout)["rc"]
            timed_out = False
        except TimeoutError:
            os.killpg(pid, signal.SIGKILL)
            rc, timed_out = self._reply(timeout=60)["rc"], True
        stdout, stderr = (_read_text(p) for p in (out, err))
        if timed_out:
            raise subprocess.TimeoutExpired([module, *argv], timeout, stdout, stderr)
        return subprocess.CompletedProcess([module, *argv], rc, stdout, stderr)

    def _reply(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError(f"fork server: no reply within {timeout} s")
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError(f"fork server exited: {self.log.read_text()[-3000:]}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


_SERVER: ForkServer | None = None


# The worker's environment before any test could change it (conftest has set its keys):
# the server starts with this one, so a first call from a test that monkeypatched the
# environment runs from scratch instead of giving the server its environment.
_SERVER_ENV = _stable(cli_env())


def env_drift(env: dict[str, str] | None = None) -> list[str]:
    """The keys in which ``env`` (default: a CLI call's now) differs from the fork
    server's environment; any makes :func:`run_cli` start the call from scratch."""
    env = _stable(cli_env() if env is None else env)
    return sorted(k for k in env.keys() | _SERVER_ENV.keys() if env.get(k) != _SERVER_ENV.get(k))


def _server_for(env: dict[str, str]) -> ForkServer | None:
    """The worker's fork server, started on first use; ``None`` (run from scratch) when
    ``env`` differs from the server's or it is switched off."""
    global _SERVER
    if os.environ.get("RNNLAB_TEST_FORKSERVER", "1") == "0" or env_drift(env):
        return None
    if _SERVER is None or _SERVER.proc.poll() is not None:
        _SERVER = ForkServer(_SERVER_ENV)
        atexit.register(_SERVER.close)
    return _SERVER


def _read_text(path: Path) -> str:
    text = path.read_bytes().decode(errors="replace") if path.exists() else ""
    path.unlink(missing_ok=True)
    return text
