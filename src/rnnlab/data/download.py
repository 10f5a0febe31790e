"""Download and unpack raw datasets safely: resumable, checksum-verified, traversal-proof.

Why this module exists: a half-downloaded or tampered file must never pass as a
dataset, an interrupted download of a large archive should resume instead of starting
over, and an archive from the internet must never write outside the directory we
unpack it into (``../`` members, absolute paths, symlinks pointing elsewhere).

* :func:`fetch` streams to ``<dest>.part``, resumes it with an HTTP ``Range`` request
  when the server honours one (else restarts), verifies the checksum and only then
  renames the file to ``dest``. A ``dest`` that already exists with the right checksum
  is reused, so ``data/raw`` works as a cache and offline users can drop files there.
* :func:`safe_extract` unpacks ``.tar``/``.tar.gz``/``.tgz``/``.zip`` member by member,
  refusing anything that would land (or point) outside the target directory.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import shutil
import stat
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from rnnlab.errors import DataError
from rnnlab.io import atomic_write_bytes, file_digest

log = logging.getLogger(__name__)

CHUNK = 1 << 20
USER_AGENT = "rnnlab-downloader/0.1 (+https://github.com/; research dataset fetch)"
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


class _Incomplete(Exception):
    """The connection ended before Content-Length bytes arrived (resumable)."""


def _check_hex(value: str | None, pattern: re.Pattern[str], name: str, url: str) -> str | None:
    if value is None or str(value).strip() == "":
        return None
    v = str(value).strip().lower()
    if not pattern.match(v):
        width = 64 if name == "sha256" else 32
        raise DataError(
            f"{url}: {name}={value!r} is not a valid {name} digest ({width} hex characters); "
            f"pass null to skip verification"
        )
    return v


def _verify(path: Path, url: str, sha256: str | None, md5: str | None) -> str:
    """Return the file's sha256; raise DataError (after deleting ``path``) on any mismatch."""
    actual = file_digest(path)
    problems = []
    if sha256 is not None and actual != sha256:
        problems.append(f"sha256 expected {sha256}, actual {actual}")
    if md5 is not None:
        actual_md5 = file_digest(path, "md5")
        if actual_md5 != md5:
            problems.append(f"md5 expected {md5}, actual {actual_md5}")
    if problems:
        size = path.stat().st_size
        path.unlink(missing_ok=True)
        raise DataError(
            f"{url}: checksum mismatch for {path} ({size} bytes): {'; '.join(problems)}. "
            f"The file was deleted; re-run to download it again, or set the expected "
            f"checksum to the new value (or null) if the upstream file legitimately changed."
        )
    return actual


def _download_once(url: str, part: Path, timeout: float) -> None:
    """One HTTP(S)/file request appending to (resume) or overwriting ``part``."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if have > 0:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 (scheme checked)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have > 0:
            # Range not satisfiable: the .part is complete iff its size is the total size
            # the server reports ("bytes */N"); otherwise it is stale, so start over.
            total = e.headers.get("Content-Range", "") if e.headers else ""
            if total == f"bytes */{have}":
                log.info("%s: %s is already complete (HTTP 416)", url, part)
                return
            log.info("%s: stale %s (HTTP 416, %r); restarting", url, part, total)
            part.unlink(missing_ok=True)
            _download_once(url, part, timeout)
            return
        raise
    with resp:
        status = getattr(resp, "status", None) or resp.getcode()
        content_range = resp.headers.get("Content-Range", "")
        if have > 0 and status == 206 and content_range.startswith(f"bytes {have}-"):
            mode = "ab"
            log.info("%s: resuming %s at byte %d", url, part, have)
        else:
            if have > 0:
                log.info("%s: server ignored the Range request; restarting %s", url, part)
            mode, have = "wb", 0
        length = resp.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        got = 0
        with open(part, mode) as f:
            while True:
                chunk = resp.read(CHUNK)
                if not chunk:
                    break
                f.write(chunk)
                got += len(chunk)
            f.flush()
            os.fsync(f.fileno())
    if expected is not None and got < expected:
        raise _Incomplete(f"received {got} of {expected} bytes")


def fetch(
    url: str,
    sha256: str | None,
    dest: Path,
    *,
    md5: str | None = None,
    retries: int = 3,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` (resumable, verified, atomic) and return ``dest``.

    ``sha256`` (preferred) and/or ``md5`` pin the content; with neither, a warning says
    the file is unverified and logs its sha256 so the user can pin it. The data go to
    ``dest.part`` first and are renamed only after verification, so an interrupted run
    leaves a ``.part`` that the next call resumes (HTTP Range) and never a bad ``dest``.
    """
    dest = Path(dest)
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme not in ("http", "https", "file"):
        raise DataError(f"{url}: unsupported URL scheme {scheme!r}; valid: http, https, file")
    sha256 = _check_hex(sha256, _HEX64, "sha256", url)
    md5 = _check_hex(md5, _HEX32, "md5", url)
    dest.parent.mkdir(parents=True, exist_ok=True)

    if dest.is_file():
        if sha256 is None and md5 is None:
            log.warning("%s: reusing %s without a checksum (unverified)", url, dest)
            return dest
        try:
            _verify(dest, url, sha256, md5)
            log.info("%s: reusing verified %s", url, dest)
            return dest
        except DataError as e:
            log.warning("%s: cached file is bad, downloading again (%s)", url, e)

    part = dest.with_suffix(dest.suffix + ".part")
    attempts = max(int(retries), 0) + 1
    for attempt in range(1, attempts + 1):
        try:
            _download_once(url, part, timeout)
            break
        except urllib.error.HTTPError as e:
            if e.code in (408, 429) or e.code >= 500:
                err: Exception = e
            else:
                raise DataError(
                    f"{url}: HTTP {e.code} {e.reason} while downloading to {dest}; check the "
                    f"URL, or place the file at {dest} yourself to work offline"
                ) from e
        except (urllib.error.URLError, http.client.HTTPException, OSError, _Incomplete) as e:
            err = e
        if attempt < attempts:
            log.warning("%s: attempt %d/%d failed (%s); retrying", url, attempt, attempts, err)
            time.sleep(min(0.2 * 2**attempt, 5.0))
        else:
            kept = part.stat().st_size if part.exists() else 0
            raise DataError(
                f"{url}: download to {dest} failed after {attempts} attempt(s): {err}. "
                f"{kept} bytes kept in {part}; re-run to resume, or place the file at {dest} "
                f"yourself to work offline"
            ) from err

    actual = _verify(part, url, sha256, md5)
    if sha256 is None:
        log.warning(
            "%s: no sha256 given, checksum unverified%s; downloaded sha256=%s",
            url,
            " (md5 verified)" if md5 else "",
            actual,
        )
    os.replace(part, dest)
    log.info("%s: saved %s (sha256 %s)", url, dest, actual)
    return dest


# --------------------------------------------------------------------------- extraction


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


def _extract_tar(archive: Path, root: Path, keep: Callable[[str], bool]) -> list[Path]:
    written: list[Path] = []
    links: list[tuple[str, Path]] = []
    try:
        tf = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as e:
        raise DataError(f"{archive}: not a readable tar archive ({e})") from e
    with tf:
        members = tf.getmembers()
        # Validate everything first so a bad archive writes nothing at all.
        for m in members:
            dest = _member_path(archive, m.name, root)
            if m.issym():
                _check_link(archive, m.name, m.linkname, dest.parent, root, "symlink")
            elif m.islnk():
                _check_link(archive, m.name, m.linkname, root, root, "hardlink")
            elif not (m.isfile() or m.isdir()):
                raise DataError(
                    f"{archive}: member {m.name!r} is a device, FIFO or other special file; "
                    f"only regular files, directories and inside-pointing links are allowed"
                )
        current = ""
        try:
            for m in members:
                if not keep(m.name):
                    continue
                current = m.name
                dest = _member_path(archive, m.name, root)
                if m.isdir():
                    _safe_mkdir(archive, m.name, dest, root)
                elif m.issym():
                    _make_symlink(archive, m.name, m.linkname, dest, root)
                    links.append((m.name, dest))
                elif m.islnk():
                    src = Path(os.path.normpath(root / m.linkname))
                    if not _inside(root, src) or not src.is_file():
                        raise DataError(
                            f"{archive}: hardlink {m.name!r} -> {m.linkname!r}: target is not a "
                            f"file extracted inside {root}"
                        )
                    _ensure_parent(archive, m.name, dest, root)
                    shutil.copyfile(src, dest)
                else:
                    _ensure_parent(archive, m.name, dest, root)
                    fobj = tf.extractfile(m)
                    if fobj is None:
                        raise DataError(f"{archive}: cannot read member {m.name!r}")
                    with fobj, open(dest, "wb") as out:
                        shutil.copyfileobj(fobj, out, CHUNK)
                    os.chmod(dest, (m.mode & 0o755) | 0o600)
                written.append(dest)
        except OSError as e:
            _remove_links(links)
            raise _conflict(archive, current, e) from e
        except BaseException:
            _remove_links(links)
            raise
    _recheck_links(archive, links, root)
    return written


def _extract_zip(archive: Path, root: Path, keep: Callable[[str], bool]) -> list[Path]:
    written: list[Path] = []
    made: list[tuple[str, Path]] = []
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{archive}: not a readable zip archive ({e})") from e
    with zf:
        infos = zf.infolist()
        links: dict[str, str] = {}
        for info in infos:
            dest = _member_path(archive, info.filename, root)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                link = zf.read(info).decode("utf-8", errors="replace")
                _check_link(archive, info.filename, link, dest.parent, root, "symlink")
                links[info.filename] = link
        current = ""
        try:
            for info in infos:
                if not keep(info.filename):
                    continue
                current = info.filename
                dest = _member_path(archive, info.filename, root)
                if info.is_dir():
                    _safe_mkdir(archive, info.filename, dest, root)
                elif info.filename in links:
                    _make_symlink(archive, info.filename, links[info.filename], dest, root)
                    made.append((info.filename, dest))
                else:
                    _ensure_parent(archive, info.filename, dest, root)
                    with zf.open(info) as src, open(dest, "wb") as out:
                        shutil.copyfileobj(src, out, CHUNK)
                written.append(dest)
        except OSError as e:
            _remove_links(made)
            raise _conflict(archive, current, e) from e
        except BaseException:
            _remove_links(made)
            raise
    _recheck_links(archive, made, root)
    return written


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
    safe_extract(archive, target, include=include)
    atomic_write_bytes(marker, stamp.encode())
    return target
