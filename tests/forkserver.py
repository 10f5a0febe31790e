"""A fork server for the CLI tests: ``python -m rnnlab.train`` without paying the imports.

Every CLI test runs the real entry point in its own process, as a user would, and each
such process spends 5-15 s importing torch, Lightning, Hydra and rnnlab before it does
anything. This server is one interpreter (per pytest worker) that imports them once and
then forks one child per CLI call. The child is what ``python -m <module> <args>`` would
be: its own process (and process group), the requested working directory and
environment, ``sys.path[0]`` set to that directory, ``sys.argv[0]`` the module's file,
``__main__`` the module run by :mod:`runpy` as ``-m`` runs it, stdin from ``/dev/null``,
stdout and stderr to files; an uncaught exception prints its traceback and exits 1, a
``SystemExit`` exits with its code, and the interpreter shuts down normally (threads
joined, ``atexit`` run). The server imports modules only - it never runs them - so a
child starts from the same state a fresh interpreter would reach after those imports.

What a fork cannot reproduce is an environment read at import time, so
:mod:`tests.helpers` sends a call here only when its environment equals the one this
server started with, and runs a plain subprocess otherwise.

Protocol (JSON lines; requests on stdin, replies on stdout): ``{"module", "argv", "cwd",
"env", "stdout", "stderr"}`` -> ``{"pid": N}`` once the child runs, then ``{"rc": N}`` when it
exits (negative: killed by that signal, as :mod:`subprocess` reports it).
"""

from __future__ import annotations

import json
import os
import runpy
import sys

# What every CLI test's process imports first; rnnlab.train pulls in torch and Lightning.
PRELOAD = ("rnnlab.train", "rnnlab.evaluate", "rnnlab.data.prepare", "rnnlab.report.cli")


def _preload() -> None:
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)


def _forget(module: str) -> None:
    """Drop ``module`` from the import system so runpy runs it fresh as ``__main__``
    (as ``-m`` does: a module run as a script is not also the imported one)."""
    sys.modules.pop(module, None)
    parent, _, child = module.rpartition(".")
    if parent and parent in sys.modules:
        vars(sys.modules[parent]).pop(child, None)


def _run_child(request: dict, protocol: tuple) -> None:
    """Become ``python -m <module> <argv>``; never returns to the server loop normally."""
    os.setsid()  # its own process group: a timeout kills it and everything it started
    for stream in protocol:
        stream.close()
    os.chdir(request["cwd"])
    os.environ.clear()  # equal to the server's but for per-test keys (PYTEST_CURRENT_TEST)
    os.environ.update(request["env"])
    stdin = os.open(os.devnull, os.O_RDONLY)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    os.dup2(stdin, 0)
    os.dup2(os.open(request["stdout"], flags, 0o644), 1)
    os.dup2(os.open(request["stderr"], flags, 0o644), 2)
    sys.path[0] = os.getcwd()
    module = request["module"]
    _forget(module)
    _forget(f"{module}.__main__")
    sys.argv = ["-m", *request["argv"]]
    runpy._run_module_as_main(module, alter_argv=True)  # what `python -m` itself calls
    sys.exit(0)


def _exit_code(status: int) -> int:
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def serve() -> None:
    # The protocol moves off fds 0 and 1, so nothing a child inherits can write into it.
    requests = os.fdopen(os.dup(0), "r")
    replies = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    _preload()
    replies.write(json.dumps({"ready": os.getpid()}) + "\n")
    replies.flush()
    for line in requests:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _run_child(request, (requests, replies))
        replies.write(json.dumps({"pid": pid}) + "\n")
        replies.flush()
        _, status = os.waitpid(pid, 0)
        replies.write(json.dumps({"rc": _exit_code(status)}) + "\n")
        replies.flush()


if __name__ == "__main__":
    serve()
