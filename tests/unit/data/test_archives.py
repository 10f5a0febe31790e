"""safe_extract() and extract_once() on crafted archives (traversal, links, special files)."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from rnnlab.data.archives import extract_once, safe_extract
from rnnlab.errors import DataError


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


def test_extract_once_skips_an_unchanged_archive_and_redoes_a_changed_one(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "a.tar", [(_file("x.txt"), b"one")])
    out = tmp_path / "out"
    assert extract_once(archive, out) == out
    assert (out / "x.txt").read_bytes() == b"one"
    (out / "x.txt").write_bytes(b"edited")
    extract_once(archive, out)  # same archive: the marker says it is unpacked
    assert (out / "x.txt").read_bytes() == b"edited"
    _tar(archive, [(_file("x.txt"), b"two")])
    extract_once(archive, out)  # changed archive: unpacked again
    assert (out / "x.txt").read_bytes() == b"two"
