"""fetch() against the local HTTP server (tests/http_server.py; no network)."""

from __future__ import annotations

import hashlib
import logging
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from rnnlab.data.download import fetch
from rnnlab.errors import DataError
from tests.http_server import FileServer


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


PAYLOAD = bytes(range(256)) * 400  # 100 KiB, not compressible by accident of zeros


# --------------------------------------------------------------------------- fetch


def test_fetch_verifies_renames_and_reuses(http_server: FileServer, tmp_path: Path) -> None:
    http_server.files["data.bin"] = PAYLOAD
    dest = tmp_path / "raw" / "data.bin"
    assert fetch(http_server.url("data.bin"), sha(PAYLOAD), dest) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not dest.with_suffix(".bin.part").exists()
    n = len(http_server.requests)
    fetch(http_server.url("data.bin"), sha(PAYLOAD), dest)  # cached: no new request
    assert len(http_server.requests) == n


def test_checksum_mismatch_deletes_partial_and_names_everything(
    http_server: FileServer, tmp_path: Path
) -> None:
    http_server.files["a.tar.gz"] = PAYLOAD
    dest = tmp_path / "a.tar.gz"
    wrong = "0" * 64
    with pytest.raises(DataError) as err:
        fetch(http_server.url("a.tar.gz"), wrong, dest)
    msg = str(err.value)
    assert http_server.url("a.tar.gz") in msg and "a.tar.gz.part" in msg
    assert wrong in msg and sha(PAYLOAD) in msg
    assert not dest.exists() and not (tmp_path / "a.tar.gz.part").exists()


def test_interrupted_download_resumes_with_range(http_server: FileServer, tmp_path: Path) -> None:
    http_server.files["big.bin"] = PAYLOAD
    http_server.truncate_once["big.bin"] = 30_000
    dest = tmp_path / "big.bin"
    part = tmp_path / "big.bin.part"
    with pytest.raises(DataError, match="re-run to resume"):
        fetch(http_server.url("big.bin"), sha(PAYLOAD), dest, retries=0)
    assert not dest.exists(), "a half file must never pass as complete"
    assert part.stat().st_size == 30_000
    fetch(http_server.url("big.bin"), sha(PAYLOAD), dest, retries=0)
    assert http_server.requests[-1] == ("big.bin", "bytes=30000-")
    assert dest.read_bytes() == PAYLOAD and not part.exists()


def test_retry_resumes_within_one_call(http_server: FileServer, tmp_path: Path) -> None:
    http_server.files["f.bin"] = PAYLOAD
    http_server.truncate_once["f.bin"] = 12_345
    dest = fetch(http_server.url("f.bin"), sha(PAYLOAD), tmp_path / "f.bin", retries=2)
    assert dest.read_bytes() == PAYLOAD
    assert [r for _, r in http_server.requests] == [None, "bytes=12345-"]


def test_server_without_range_restarts(http_server: FileServer, tmp_path: Path) -> None:
    http_server.files["f.bin"] = PAYLOAD
    http_server.honour_range = False
    (tmp_path / "f.bin.part").write_bytes(b"garbage-prefix")
    dest = fetch(http_server.url("f.bin"), sha(PAYLOAD), tmp_path / "f.bin")
    assert dest.read_bytes() == PAYLOAD


def test_complete_part_and_stale_part(http_server: FileServer, tmp_path: Path) -> None:
    http_server.files["f.bin"] = PAYLOAD
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD)  # complete: server answers 416
    assert fetch(http_server.url("f.bin"), sha(PAYLOAD), tmp_path / "f.bin").read_bytes() == PAYLOAD
    (tmp_path / "g.bin.part").write_bytes(PAYLOAD + b"longer than the file")
    http_server.files["g.bin"] = PAYLOAD
    assert fetch(http_server.url("g.bin"), sha(PAYLOAD), tmp_path / "g.bin").read_bytes() == PAYLOAD


def test_bad_cached_file_is_downloaded_again(http_server: FileServer, tmp_path: Path) -> None:
    http_server.files["f.bin"] = PAYLOAD
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"corrupt")
    assert fetch(http_server.url("f.bin"), sha(PAYLOAD), dest).read_bytes() == PAYLOAD


def test_missing_checksum_warns_and_md5_verifies(
    http_server: FileServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    http_server.files["f.csv"] = PAYLOAD
    with caplog.at_level(logging.WARNING, logger="rnnlab.data.download"):
        fetch(http_server.url("f.csv"), None, tmp_path / "f.csv")
    assert "unverified" in caplog.text and sha(PAYLOAD) in caplog.text
    with pytest.raises(DataError, match="md5 expected"):
        fetch(http_server.url("f.csv"), None, tmp_path / "g.csv", md5="0" * 32)
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    assert fetch(http_server.url("f.csv"), None, tmp_path / "h.csv", md5=md5).is_file()


def test_http_errors_and_bad_arguments(http_server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="HTTP 404") as err:
        fetch(http_server.url("nope.bin"), None, tmp_path / "nope.bin", retries=0)
    assert http_server.url("nope.bin") in str(err.value)
    with pytest.raises(DataError, match="not a valid sha256"):
        fetch(http_server.url("x"), "abc", tmp_path / "x")
    with pytest.raises(DataError, match="unsupported URL scheme 'ftp'"):
        fetch("ftp://example.org/x", None, tmp_path / "x")


def test_server_errors_are_retried_and_files_come_from_a_root_dir(
    http_server: FileServer, tmp_path: Path
) -> None:
    served = tmp_path / "served"
    (served / "sub").mkdir(parents=True)
    (served / "sub" / "f.bin").write_bytes(PAYLOAD)
    http_server.root = served
    failures = [503]

    def flaky(handler: BaseHTTPRequestHandler) -> None:
        if failures:
            handler.send_error(failures.pop(), "try again")
            return
        del http_server.handlers["sub/f.bin"]  # from now on the file is served normally
        handler.do_GET()

    http_server.handlers["sub/f.bin"] = flaky
    dest = fetch(http_server.url("sub/f.bin"), sha(PAYLOAD), tmp_path / "f.bin", retries=1)
    assert dest.read_bytes() == PAYLOAD
    assert [p for p, _ in http_server.requests] == ["sub/f.bin"] * 3
    (tmp_path / "outside.bin").write_bytes(PAYLOAD)
    with pytest.raises(DataError, match="HTTP 404"):  # nothing outside the root is served
        fetch(http_server.url("../outside.bin"), None, tmp_path / "g.bin", retries=0)
