"""Downloads and archives (rnnlab.data.download) under hostile conditions, served from a
local http.server on 127.0.0.1 (no network). tests/unit/test_download.py covers the
basic Range/checksum/extraction cases; these add a process killed mid-download, a
connection dropped mid-body with no checksum to catch it, and property-based archives."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import warnings
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rnnlab.data.download import fetch, safe_extract
from rnnlab.errors import DataError
from tests.helpers import ROOT

PAYLOAD = os.urandom(1 << 20)  # 1 MiB
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Server:
    """Serves PAYLOAD at /data.bin with Range support; ``drop_after`` cuts the first
    response after that many bytes (connection closed mid-body); ``delay`` trickles."""

    def __init__(self, drop_after: int | None = None, delay: float = 0.0):
        self.drop_after, self.delay, self.ranges, self.sent = drop_after, delay, [], 0
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                rng = self.headers.get("Range")
                state.ranges.append(rng)
                start = int(rng.removeprefix("bytes=").split("-")[0]) if rng else 0
                body = PAYLOAD[start:]
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header(
                        "Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"
                    )
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                limit, state.drop_after = state.drop_after, None
                sent = 0
                try:
                    for i in range(0, len(body), 16384):
                        chunk = body[i : i + 16384]
                        if limit is not None and sent + len(chunk) > limit:
                            self.wfile.write(chunk[: limit - sent])
                            self.wfile.flush()
                            self.close_connection = True
                            return
                        self.wfile.write(chunk)
                        sent += len(chunk)
                        state.sent += len(chunk)
                        if state.delay:
                            self.wfile.flush()
                            time.sleep(state.delay)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/data.bin"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("checksum", [SHA, None], ids=["sha256", "no-checksum"])
def test_connection_dropped_mid_body_never_leaves_a_complete_looking_file(tmp_path, checksum):
    """Even without a checksum the short body is caught (Content-Length), only the
    .part remains, and the next call resumes it with a Range request."""
    dest = tmp_path / "data.bin"
    with _Server(drop_after=300_000) as server:
        with pytest.raises(DataError, match="re-run to resume") as err:
            fetch(server.url, checksum, dest, retries=0)
        assert str(dest) in str(err.value)
        assert not dest.exists()
        part = tmp_path / "data.bin.part"
        assert 0 < part.stat().st_size < len(PAYLOAD)
        fetch(server.url, checksum, dest, retries=0)
        assert server.ranges[-1] == f"bytes={part_size(server)}-"
    assert dest.read_bytes() == PAYLOAD and not part.exists()


def part_size(server: _Server) -> int:
    return int(server.ranges[-1].removeprefix("bytes=").rstrip("-"))


def test_process_killed_mid_download_resumes_and_verifies(tmp_path):
    """SIGKILL while the body streams: no dest file; the next fetch resumes the .part."""
    dest = tmp_path / "data.bin"
    part = tmp_path / "data.bin.part"
    with _Server(delay=0.02) as server:  # ~1.3 s for the whole body
        code = (
            "import sys; from pathlib import Path; from rnnlab.data.download import fetch; "
            "fetch(sys.argv[1], sys.argv[2], Path(sys.argv[3]), retries=0)"
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", code, server.url, SHA, str(dest)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while server.sent < 300_000:  # the body is streaming
            assert proc.poll() is None, "the download finished before the kill"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert not dest.exists(), "a half download must never sit at the final path"
        kept = part.stat().st_size if part.exists() else 0
        assert kept < len(PAYLOAD)
        server.delay = 0.0
        fetch(server.url, SHA, dest, retries=0)
        # resumed from what reached the disk (Range), or restarted if nothing did
        assert server.ranges[-1] == (f"bytes={kept}-" if kept else None)
    assert dest.read_bytes() == PAYLOAD and not part.exists()


def test_checksum_mismatch_fails_cleanly_and_removes_the_partial_file(tmp_path):
    dest = tmp_path / "data.bin"
    wrong = "f" * 64
    with _Server() as server:
        with pytest.raises(DataError) as err:
            fetch(server.url, wrong, dest, retries=0)
    msg = str(err.value)
    assert wrong in msg and SHA in msg and server.url in msg
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- archives

NAME_PART = st.sampled_from(["a", "b", "..", ".", "", "c.txt", "/", "~", "x..y"])
MEMBER_NAME = st.lists(NAME_PART, min_size=1, max_size=4).map("/".join)
LINK_TARGET = st.one_of(MEMBER_NAME, st.just("/etc/passwd"), st.just("../../outside"))
MEMBER = st.tuples(
    st.sampled_from(["file", "dir", "symlink", "hardlink"]), MEMBER_NAME, LINK_TARGET
)


def _tar_bytes(members) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for kind, name, target in members:
            info = tarfile.TarInfo(name or "x")
            if kind == "file":
                data = b"payload"
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {
                "dir": tarfile.DIRTYPE,
                "symlink": tarfile.SYMTYPE,
                "hardlink": tarfile.LNKTYPE,
            }[kind]
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


def _outside(case: Path, target: Path) -> set[Path]:
    """Every path under ``case`` that is not the target or inside it."""
    return {p for p in case.rglob("*") if p != target and target not in p.parents}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(members=st.lists(MEMBER, min_size=1, max_size=6), fmt=st.sampled_from(["tar", "zip"]))
# found by hypothesis: a file member named "." (the target itself) crashed with ValueError
@example(members=[("file", "a", "/etc/passwd"), ("file", ".", "/etc/passwd")], fmt="tar")
def test_random_archives_extract_inside_the_target_or_fail_cleanly(tmp_path, members, fmt):
    """Whatever the member names and links: a DataError, or every written path lies
    inside the target; nothing outside the target is ever created."""
    case = Path(os.path.realpath(tempfile.mkdtemp(dir=tmp_path, prefix="case-")))
    target = case / "sandbox" / "deep" / "target"  # room for '..' to reach siblings
    target.mkdir(parents=True)
    archive = case / f"a.{fmt}"
    if fmt == "tar":
        archive.write_bytes(_tar_bytes(members))
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # duplicate names are part of the fuzz
            with zipfile.ZipFile(archive, "w") as z:
                for kind, name, _ in members:
                    z.writestr(name or "x", b"payload" if kind != "dir" else b"")
    before = _outside(case, target)
    try:
        written = safe_extract(archive, target)
    except DataError as err:
        assert str(archive) in str(err)
    else:
        for path in written:
            assert Path(os.path.realpath(path)).is_relative_to(target), path
    assert _outside(case, target) == before, "something was written outside the target"
    for p in target.rglob("*"):
        if p.is_symlink():
            assert Path(os.path.realpath(p)).is_relative_to(target), p
