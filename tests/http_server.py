"""The one local HTTP server of the test suite (127.0.0.1 only; tests never touch the network).

Use the ``http_server`` fixture (tests/conftest.py) or, inside a test body or a helper,
the ``serve_files()`` context manager::

    def test_x(http_server, tmp_path):
        http_server.files["a.bin"] = b"..."          # bytes served at /a.bin
        http_server.files["b.tar.gz"] = archive_path # or a Path, read on each request
        http_server.root = served_dir                # or: any file under this folder
        fetch(http_server.url("a.bin"), sha, dest)

It supports ``Range: bytes=N-`` (206, or 416 past the end), and the failure modes the
download tests need:

- ``truncate_once[path] = n``: the next response for ``path`` sends ``n`` body bytes,
  then drops the connection (Content-Length announced the whole body);
- ``honour_range = False``: ignore Range and answer 200 with the whole file;
- ``delay = s``: sleep ``s`` seconds after each 16 KiB chunk (a slow server);
- ``handlers[path] = fn``: ``fn(request_handler)`` answers that path itself;
- a path that is neither in ``files`` nor under ``root``: 404.

It records ``requests`` (``(path, range_header_or_None)`` in arrival order) and ``sent``
(body bytes written so far, all requests together).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CHUNK = 16384


@dataclass
class FileServer:
    """State of one local server: what it serves, how it misbehaves, what it saw."""

    files: dict[str, bytes | Path] = field(default_factory=dict)
    root: Path | None = None
    truncate_once: dict[str, int] = field(default_factory=dict)
    honour_range: bool = True
    delay: float = 0.0
    handlers: dict[str, Callable[[BaseHTTPRequestHandler], None]] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    sent: int = 0
    base: str = ""

    def url(self, path: str) -> str:
        """The full ``http://127.0.0.1:PORT/path`` address of ``path``."""
        return f"{self.base}/{path.lstrip('/')}"

    def lookup(self, path: str) -> bytes | None:
        """The bytes served at ``path``, or None (404)."""
        data = self.files.get(path)
        if data is None and self.root is not None:
            candidate = (self.root / path).resolve()
            if candidate.is_file() and candidate.is_relative_to(self.root.resolve()):
                data = candidate
        return data.read_bytes() if isinstance(data, Path) else data


def _handler(state: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server API)
            path = self.path.split("?", 1)[0].lstrip("/")
            rng = self.headers.get("Range")
            state.requests.append((path, rng))
            if path in state.handlers:
                state.handlers[path](self)
                return
            data = state.lookup(path)
            if data is None:
                self.send_error(404, "not found")
                return
            start, status = 0, 200
            if rng and state.honour_range:
                start = int(rng.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            body = data[start:]
            self.send_response(status)
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            self._send_body(body, state.truncate_once.pop(path, None))

        def _send_body(self, body: bytes, cut: int | None) -> None:
            if cut is not None:
                body = body[:cut]
            try:
                for i in range(0, len(body), CHUNK):
                    chunk = body[i : i + CHUNK]
                    self.wfile.write(chunk)
                    state.sent += len(chunk)
                    if state.delay:
                        self.wfile.flush()
                        time.sleep(state.delay)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                return
            if cut is not None:
                self.close_connection = True

    return Handler


@contextlib.contextmanager
def serve_files() -> Iterator[FileServer]:
    """A FileServer on 127.0.0.1 (a free port) in a background thread, shut down on exit."""
    state = FileServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
