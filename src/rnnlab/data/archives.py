"""Unpack downloaded archives safely: nothing ever lands (or points) outside the target.

Why this module exists: an archive from the internet must never write outside the
directory we unpack it into (``../`` members, absolute paths, symlinks or hard links
pointing elsewhere, links chained through earlier links), and a dataset archive should
be unpacked once, not on every prepare run.

* :func:`safe_extract` unpacks ``.tar``/``.tar.gz``/``.tgz``/``.zip`` member by member,
  validating every member before writing any, and refusing anything that would land
  (or point) outside the target directory.
* :func:`extract_once` is the one extract-once rule: a ``.extracted`` marker holds the
  archive's sha256, so an unchanged archive is not unpacked again.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import IO

from rnnlab.data.download import CHUNK
from rnnlab.errors import DataError
from rnnlab.io import atomic_write_bytes, file_digest

log = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")


def archive_kind(path: Path) -> str:
    """'tar' or 'zip' from the file name; DataError listing valid suffixes otherwise."""
    name = path.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar", ".tar.gz", ".tgz")):
        return "tar"
    raise DataError(
        f"{path}: unsupported archive type; valid suffixes: {', '.join(ARCHIVE_SUFFIXES)}"
    )


def _member_path(archive: Path, name: str, root: Path) -> Path:
    """Where member ``name`` goes under ``root``; refuse absolute and ``..`` names."""
    norm = name.replace("\\", "/")
    pure = PurePosixPath(norm)
    if norm.startswith("/") or pure.is_absolute() or re.match(r"^[A-Za-z]:", norm):
        raise DataError(
            f"{archive}: member {name!r} has an absolute path; only paths relative to the "
            f"archive root are allowed"
        )
    if ".." in pure.parts:
        raise DataError(
            f"{archive}: member {name!r} contains '..' (path traversal); members must stay "
            f"inside the extraction directory {root}"
        )
    parts = [p for p in pure.parts if p not in ("", ".")]
    return root.joinpath(*parts) if parts else root


def _inside(root: Path, path: Path) -> bool:
    try:
        Path(os.path.realpath(path)).relative_to(root)
        return True
    except ValueError:
        return False


def _check_link(archive: Path, name: str, link: str, base: Path, root: Path, kind: str) -> None:
    """Refuse a link whose target is absolute or resolves outside ``root``."""
    if not link or link.startswith("/") or PurePosixPath(link).is_absolute():
        raise DataError(
            f"{archive}: {kind} member {name!r} points to {link!r} (absolute); links must "
            f"point inside the extraction directory {root}"
        )
    # realpath (inside _inside) resolves links already on disk before applying "..",
    # unlike a lexical normpath that would wrongly collapse "link/.." to ".".
    if not _inside(root, base / link):
        raise DataError(
            f"{archive}: {kind} member {name!r} points to {link!r}, outside the extraction "
            f"directory {root}"
        )


def _safe_mkdir(archive: Path, name: str, directory: Path, root: Path) -> None:
    """Create ``directory`` one component at a time, never following a link out of root.

    Checking each existing component's real path *before* creating the next one means
    even a chain of (individually inside-pointing) links cannot make us create a
    directory outside ``root``.
    """
    current = root
    for part in directory.relative_to(root).parts:
        current = current / part
        if current.exists() or current.is_symlink():
            if not _inside(root, current):
                raise DataError(
                    f"{archive}: member {name!r} would be written through a link that "
                    f"resolves outside the extraction directory {root}"
                )
        else:
            current.mkdir()


def _ensure_parent(archive: Path, name: str, dest: Path, root: Path) -> None:
    """Make ``dest``'s parent safely and clear an old entry so we never write through it."""
    if dest == root:  # e.g. a file or link member named "." (found by hypothesis)
        raise DataError(
            f"{archive}: member {name!r} is not a directory but names the extraction "
            f"directory {root} itself"
        )
    _safe_mkdir(archive, name, dest.parent, root)
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        dest.unlink()


def _make_symlink(archive: Path, name: str, link: str, dest: Path, root: Path) -> None:
    """Create a symlink after re-checking its target from the *real* parent directory."""
    _ensure_parent(archive, name, dest, root)
    _check_link(archive, name, link, Path(os.path.realpath(dest.parent)), root, "symlink")
    os.symlink(link, dest)


def _remove_links(links: list[tuple[str, Path]]) -> None:
    """On failure, leave no link from a refused archive behind for a later reader."""
    for _, path in links:
        if path.is_symlink():
            path.unlink()


def _recheck_links(archive: Path, links: list[tuple[str, Path]], root: Path) -> None:
    """Links created early can be redirected by later ones: verify them all at the end."""
    bad = [name for name, path in links if not _inside(root, path)]
    if bad:
        _remove_links(links)
        raise DataError(
            f"{archive}: symlink member(s) {bad} resolve outside the extraction directory "
            f"{root} once the archive is unpacked; all links from this archive were removed"
        )


def safe_extract(
    archive: Path, target: Path, *, include: Callable[[str], bool] | None = None
) -> list[Path]:
    """Unpack ``archive`` into ``target`` and return the paths written.

    Every member is checked before anything is written: absolute names, ``..``
    components, links pointing outside ``target`` and device/FIFO members raise a
    DataError naming the member. Files are written by this function (not by
    ``extractall``), each destination re-checked after resolving links already created.
    ``include(name)`` (optional) selects which validated members are written, e.g. to
    skip a large unused part of an archive.
    """
    archive, target = Path(archive), Path(target)
    kind = archive_kind(archive)
    if not archive.is_file():
        raise DataError(f"{archive}: archive not found")
    target.mkdir(parents=True, exist_ok=True)
    root = Path(os.path.realpath(target))
    keep = include or (lambda name: True)
    if kind == "tar":
        return _extract_tar(archive, root, keep)
    return _extract_zip(archive, root, keep)


def _conflict(archive: Path, name: str, err: OSError) -> DataError:
    """A member that cannot be written, e.g. a file and a directory under one path."""
    where = f" ({err.filename})" if err.filename else ""
    return DataError(
        f"{archive}: cannot extract member {name!r}: {err.strerror or err}{where}; the archive "
        f"has conflicting entries (e.g. a file and a directory with the same path)"
    )


@dataclass(frozen=True)
class _Member:
    """One validated archive member, whatever the format: what to make at ``name``.

    ``kind``: ``dir``, ``file``, ``symlink`` or ``hardlink``; ``link``: where a link
    points, as the archive spells it; ``read``: opens a file's contents; ``mode``: a
    file's permission bits where the format keeps them (tar), else None.
    """

    name: str
    kind: str
    link: str = ""
    read: Callable[[], IO[bytes] | None] | None = None
    mode: int | None = None


def _tar_members(archive: Path, tf: tarfile.TarFile, root: Path) -> list[_Member]:
    """Every member of ``tf``, validated (links inside ``root``; no special files)."""
    out = []
    for m in tf.getmembers():
        dest = _member_path(archive, m.name, root)
        if m.issym():
            _check_link(archive, m.name, m.linkname, dest.parent, root, "symlink")
            out.append(_Member(m.name, "symlink", m.linkname))
        elif m.islnk():
            _check_link(archive, m.name, m.linkname, root, root, "hardlink")
            out.append(_Member(m.name, "hardlink", m.linkname))
        elif m.isdir():
            out.append(_Member(m.name, "dir"))
        elif m.isfile():
            mode = (m.mode & 0o755) | 0o600
            out.append(_Member(m.name, "file", read=partial(tf.extractfile, m), mode=mode))
        else:
            raise DataError(
                f"{archive}: member {m.name!r} is a device, FIFO or other special file; "
                f"only regular files, directories and inside-pointing links are allowed"
            )
    return out


def _zip_members(archive: Path, zf: zipfile.ZipFile, root: Path) -> list[_Member]:
    """Every member of ``zf``, validated (symlinks, stored as mode bits, inside ``root``)."""
    out = []
    for info in zf.infolist():
        dest = _member_path(archive, info.filename, root)
        link = ""
        if stat.S_ISLNK(info.external_attr >> 16):
            link = zf.read(info).decode("utf-8", errors="replace")
            _check_link(archive, info.filename, link, dest.parent, root, "symlink")
        if info.is_dir():
            out.append(_Member(info.filename, "dir"))
        elif link:
            out.append(_Member(info.filename, "symlink", link))
        else:
            out.append(_Member(info.filename, "file", read=partial(zf.open, info)))
    return out


def _write_member(archive: Path, m: _Member, dest: Path, root: Path) -> None:
    """Make one validated member at ``dest`` (a symlink is made by the caller)."""
    if m.kind == "dir":
        _safe_mkdir(archive, m.name, dest, root)
        return
    if m.kind == "hardlink":
        src = Path(os.path.normpath(root / m.link))
        if not _inside(root, src) or not src.is_file():
            raise DataError(
                f"{archive}: hardlink {m.name!r} -> {m.link!r}: target is not a "
                f"file extracted inside {root}"
            )
        _ensure_parent(archive, m.name, dest, root)
        shutil.copyfile(src, dest)
        return
    _ensure_parent(archive, m.name, dest, root)
    fobj = m.read() if m.read is not None else None
    if fobj is None:
        raise DataError(f"{archive}: cannot read member {m.name!r}")
    with fobj, open(dest, "wb") as out:
        shutil.copyfileobj(fobj, out, CHUNK)
    if m.mode is not None:
        os.chmod(dest, m.mode)


def _write_members(
    archive: Path, root: Path, members: list[_Member], keep: Callable[[str], bool]
) -> list[Path]:
    """Write the ``keep``-selected members; on any failure remove the symlinks made."""
    written: list[Path] = []
    links: list[tuple[str, Path]] = []
    current = ""
    try:
        for m in members:
            if not keep(m.name):
                continue
            current = m.name
            dest = _member_path(archive, m.name, root)
            if m.kind == "symlink":
                _make_symlink(archive, m.name, m.link, dest, root)
                links.append((m.name, dest))
            else:
                _write_member(archive, m, dest, root)
            written.append(dest)
    except OSError as e:
        _remove_links(links)
        raise _conflict(archive, current, e) from e
    except BaseException:
        _remove_links(links)
        raise
    _recheck_links(archive, links, root)
    return written


def _extract_tar(archive: Path, root: Path, keep: Callable[[str], bool]) -> list[Path]:
    try:
        tf = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as e:
        raise DataError(f"{archive}: not a readable tar archive ({e})") from e
    with tf:
        # Validate everything first so a bad archive writes nothing at all.
        return _write_members(archive, root, _tar_members(archive, tf, root), keep)


def _extract_zip(archive: Path, root: Path, keep: Callable[[str], bool]) -> list[Path]:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{archive}: not a readable zip archive ({e})") from e
    with zf:
        return _write_members(archive, root, _zip_members(archive, zf, root), keep)


def extract_once(archive: Path, target: Path, include: Callable[[str], bool] | None = None) -> Path:
    """:func:`safe_extract` ``archive`` into ``target`` unless this exact archive already is.

    A marker file ``target/.extracted`` holds the archive's sha256 (and the ``include``
    filter's name); a changed or re-downloaded archive, or a different filter, is
    extracted again. Returns ``target``.
    """
    marker = target / ".extracted"
    stamp = f"{file_digest(archive)} {getattr(include, '__qualname__', 'all')}"
    if marker.is_file() and marker.read_text().strip() == stamp:
        return target
    log.info("unpacking %s into %s", archive, target)
    safe_extract(archive, target, include=include)
    atomic_write_bytes(marker, stamp.encode())
    return target
