"""Downloads and archives (rnnlab.data.download, rnnlab.data.archives) under hostile
conditions, served by the local test server on 127.0.0.1 (tests/http_server.py; no
network). tests/unit/data/test_download.py and test_archives.py cover the basic
Range/checksum/extraction cases; these add a process killed mid-download, a connection
dropped mid-body with no checksum to catch it, and property-based archives."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rnnlab.data.archives import safe_extract
from rnnlab.data.download import fetch
from rnnlab.errors import DataError
from tests.helpers import ROOT
from tests.http_server import FileServer

PAYLOAD = os.urandom(1 << 20)  # 1 MiB
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.mark.parametrize("checksum", [SHA, None], ids=["sha256", "no-checksum"])
def test_connection_dropped_mid_body_never_leaves_a_complete_looking_file(
    tmp_path, checksum, http_server: FileServer
):
    """Even without a checksum the short body is caught (Content-Length), only the
    .part remains, and the next call resumes it with a Range request."""
    dest = tmp_path / "data.bin"
    url = _serve(http_server)
    http_server.truncate_once["data.bin"] = 300_000
    with pytest.raises(DataError, match="re-run to resume") as err:
        fetch(url, checksum, dest, retries=0)
    assert str(dest) in str(err.value)
    assert not dest.exists()
    part = tmp_path / "data.bin.part"
    assert 0 < part.stat().st_size < len(PAYLOAD)
    fetch(url, checksum, dest, retries=0)
    assert http_server.requests[-1][1] == f"bytes={part_size(http_server)}-"
    assert dest.read_bytes() == PAYLOAD and not part.exists()


def _serve(server: FileServer) -> str:
    """Serve PAYLOAD at /data.bin; return its URL."""
    server.files["data.bin"] = PAYLOAD
    return server.url("data.bin")


def part_size(server: FileServer) -> int:
    return int(server.requests[-1][1].removeprefix("bytes=").rstrip("-"))


def test_process_killed_mid_download_resumes_and_verifies(tmp_path, http_server: FileServer):
    """SIGKILL while the body streams: no dest file; the next fetch resumes the .part."""
    dest = tmp_path / "data.bin"
    part = tmp_path / "data.bin.part"
    url = _serve(http_server)
    http_server.delay = 0.02  # ~1.3 s for the whole body
    code = (
        "import sys; from pathlib import Path; from rnnlab.data.download import fetch; "
        "fetch(sys.argv[1], sys.argv[2], Path(sys.argv[3]), retries=0)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, url, SHA, str(dest)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while http_server.sent < 300_000:  # the body is streaming
        assert proc.poll() is None, "the download finished before the kill"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not dest.exists(), "a half download must never sit at the final path"
    kept = part.stat().st_size if part.exists() else 0
    assert kept < len(PAYLOAD)
    http_server.delay = 0.0
    fetch(url, SHA, dest, retries=0)
    # resumed from what reached the disk (Range), or restarted if nothing did
    assert http_server.requests[-1][1] == (f"bytes={kept}-" if kept else None)
    assert dest.read_bytes() == PAYLOAD and not part.exists()


def test_checksum_mismatch_fails_cleanly_and_removes_the_partial_file(
    tmp_path, http_server: FileServer
):
    dest = tmp_path / "data.bin"
    wrong = "f" * 64
    url = _serve(http_server)
    with pytest.raises(DataError) as err:
        fetch(url, wrong, dest, retries=0)
    msg = str(err.value)
    assert wrong in msg and SHA in msg and url in msg
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
