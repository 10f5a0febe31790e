"""Download raw datasets safely: resumable and checksum-verified.

Why this module exists: a half-downloaded or tampered file must never pass as a
dataset, and an interrupted download of a large archive should resume instead of
starting over.

:func:`fetch` streams to ``<dest>.part``, resumes it with an HTTP ``Range`` request
when the server honours one (else restarts), verifies the checksum and only then
renames the file to ``dest``. A ``dest`` that already exists with the right checksum
is reused, so ``data/raw`` works as a cache and offline users can drop files there.
Unpacking what was downloaded is :mod:`rnnlab.data.archives`.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

from rnnlab.errors import DataError
from rnnlab.io import file_digest

log = logging.getLogger(__name__)

CHUNK = 1 << 20
USER_AGENT = "rnnlab-downloader/0.1 (+https://github.com/; research dataset fetch)"
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
