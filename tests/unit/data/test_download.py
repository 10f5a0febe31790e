"""fetch() and safe_extract() against the local HTTP server (tests/http_server.py, no
network) and crafted archives."""

from __future__ import annotations

import hashlib
import io
import logging
import tarfile
import zipfile
from pathlib import Path

import pytest

from rnnlab.data.download import fetch, safe_extract
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


# --------------------------------------------------------------------------- safe_extract


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz" if path.name.endswith("gz") else "w") as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return path


def _file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def _link(name: str, target: str, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info


def test_safe_extract_tar_and_zip_roundtrip(tmp_path: Path) -> None:
    d = tarfile.TarInfo("pkg/sub")
    d.type = tarfile.DIRTYPE
    archive = _tar(
        tmp_path / "ok.tar.gz",
        [
            (d, None),
            (_file("pkg/sub/a.txt"), b"hello"),
            (_link("pkg/link.txt", "sub/a.txt"), None),
            (_link("pkg/hard.txt", "pkg/sub/a.txt", hard=True), None),
            (_file("pkg/unsup/skip.txt"), b"skip"),
        ],
    )
    out = tmp_path / "out"
    written = safe_extract(archive, out, include=lambda n: "unsup" not in n)
    assert (out / "pkg/sub/a.txt").read_bytes() == b"hello"
    assert (out / "pkg/link.txt").read_bytes() == b"hello" and (out / "pkg/link.txt").is_symlink()
    assert (out / "pkg/hard.txt").read_bytes() == b"hello"
    assert not (out / "pkg/unsup").exists()
    assert (out / "pkg/sub/a.txt").resolve() in {p.resolve() for p in written}
    zpath = tmp_path / "ok.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("z/b.txt", "zip!")
    safe_extract(zpath, tmp_path / "zout")
    assert (tmp_path / "zout/z/b.txt").read_text() == "zip!"


@pytest.mark.parametrize(
    ("member", "needle"),
    [
        ((_file("../evil.txt"), b"x"), "'../evil.txt'"),
        ((_file("ok/../../evil.txt"), b"x"), "'ok/../../evil.txt'"),
        ((_file("/tmp/abs_evil.txt"), b"x"), "'/tmp/abs_evil.txt'"),
        ((_link("escape", "../../outside"), None), "'escape'"),
        ((_link("abs_link", "/etc/passwd"), None), "'abs_link'"),
        ((_link("deep/up", "../../x"), None), "'deep/up'"),
        ((_link("hard", "../outside.txt", hard=True), None), "'hard'"),
    ],
)
def test_safe_extract_refuses_escaping_tar_members(
    tmp_path: Path, member: tuple[tarfile.TarInfo, bytes | None], needle: str
) -> None:
    target = tmp_path / "a" / "target"
    archive = _tar(tmp_path / "bad.tar", [(_file("fine.txt"), b"ok"), member])
    with pytest.raises(DataError) as err:
        safe_extract(archive, target)
    assert needle in str(err.value) and str(archive) in str(err.value)
    # validated before writing: nothing at all was written, inside or outside
    assert not any(target.rglob("*"))
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "bad.tar", "target"]


@pytest.mark.parametrize(
    ("members", "needle"),
    [
        # each link looks inside on paper; through the earlier link it resolves outside
        ([(_link("p", "."), None), (_link("p/q", "../x"), None)], "'p/q'"),
        ([(_link("q", "p/../x"), None), (_link("p", "."), None)], "['q']"),
        ([(_link("l", "."), None), (_link("m", "l/.."), None), (_file("m/evil"), b"x")], "'m'"),
    ],
)
def test_safe_extract_refuses_link_chains_that_escape(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], needle: str
) -> None:
    target = tmp_path / "a" / "target"
    with pytest.raises(DataError) as err:
        safe_extract(_tar(tmp_path / "chain.tar", members), target)
    assert needle in str(err.value) and "outside" in str(err.value)
    assert not (tmp_path / "a" / "x").exists() and not (tmp_path / "a" / "evil").exists()
    assert not [p for p in target.rglob("*") if p.is_symlink()]


def test_safe_extract_refuses_zip_traversal_and_outside_symlink(tmp_path: Path) -> None:
    z1 = tmp_path / "t.zip"
    with zipfile.ZipFile(z1, "w") as zf:
        zf.writestr("../../evil.txt", "x")
    with pytest.raises(DataError, match=r"'\.\./\.\./evil\.txt'"):
        safe_extract(z1, tmp_path / "out1")
    z2 = tmp_path / "s.zip"
    with zipfile.ZipFile(z2, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16) | 0
        zf.writestr(info, "../../etc")
    with pytest.raises(DataError, match="'link' points to '../../etc'"):
        safe_extract(z2, tmp_path / "out2")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path.parent / "evil.txt").exists()


def test_safe_extract_refuses_special_files_and_unknown_types(tmp_path: Path) -> None:
    fifo = tarfile.TarInfo("pipe")
    fifo.type = tarfile.FIFOTYPE
    with pytest.raises(DataError, match="'pipe' is a device, FIFO"):
        safe_extract(_tar(tmp_path / "f.tar", [(fifo, None)]), tmp_path / "o")
    (tmp_path / "x.rar").write_bytes(b"x")
    with pytest.raises(DataError, match=r"valid suffixes: \.tar, \.tar\.gz, \.tgz, \.zip"):
        safe_extract(tmp_path / "x.rar", tmp_path / "o")
