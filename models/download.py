"""Downloading a file on first use, one way for everything EgoRecall fetches (encoder weights, checkpoints).

A temporary name beside the target, a progress bar (and :func:`current_download` for the app's status line),
the size and SHA-256 checked when known, fsync, then a rename: a download that stops half-way, a checksum that
does not match, or a server that answers with a web page instead of the file leaves nothing behind but a clear
:class:`DownloadFailed`. ``HF_HUB_OFFLINE=1`` or ``EGORECALL_OFFLINE=1`` forbid downloads (:func:`offline`).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from models.errors import EgoRecallError

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "EGORECALL_OFFLINE")


class DownloadFailed(EgoRecallError):
    """A file could not be fetched whole and as published; nothing was kept."""


def offline() -> bool:
    """Whether this process must not download anything (the Hugging Face convention, or ours)."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in OFFLINE_VARIABLES)


_lock = threading.Lock()
_state: dict | None = None


def current_download() -> dict | None:
    """The download in progress, for status displays: ``{"what", "done", "total", "started"}`` (bytes; total
    0 when unknown), or None."""
    with _lock:
        return dict(_state) if _state else None


def set_download(state: dict | None) -> None:
    global _state
    with _lock:
        _state = state


def _looks_like_a_page(head: bytes, content_type: str) -> bool:
    start = head.lstrip()[:15].lower()
    return content_type.split(";")[0].strip().lower() == "text/html" or start.startswith((b"<!doctype", b"<html"))


@contextmanager
def _connection_errors(what: str):
    """A connection that drops mid-file is a failed download, said in one sentence."""
    try:
        yield
    except (http.client.HTTPException, TimeoutError, ConnectionError) as exc:
        raise DownloadFailed(f"the download of {what} broke off ({exc!r}); try again") from None


def fetch_url(
    url: str, target: Path, what: str, *, sha256: str | None = None, size: int | None = None, timeout: float = 60.0
) -> Path:
    """Download ``url`` to ``target`` (see the module docstring); ``sha256`` may be a prefix of the digest."""
    from tqdm import tqdm

    if offline():
        raise DownloadFailed(
            f"{what} is not on this machine and downloads are off (HF_HUB_OFFLINE or EGORECALL_OFFLINE is set); "
            f"unset it on a machine with internet access, or put the file at {target}"
        )
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part-{os.getpid()}-{threading.get_ident()}")
    digest = hashlib.sha256()
    set_download({"what": what, "done": 0, "total": size or 0, "started": time.time()})
    try:
        try:
            source = urllib.request.urlopen(url, timeout=timeout)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise DownloadFailed(f"cannot download {what} from {url} ({exc})") from None
        with source, open(tmp, "wb") as out, _connection_errors(what):
            total = int(source.headers.get("Content-Length") or 0) or (size or 0)
            first = True
            done = 0
            with tqdm(total=total or None, unit="B", unit_scale=True, desc=f"downloading {what}", disable=None) as bar:
                while chunk := source.read(1 << 20):
                    if first and _looks_like_a_page(chunk[:512], source.headers.get("Content-Type", "")):
                        raise DownloadFailed(
                            f"{url} answered with a web page, not {what}: check the address (a link to a page "
                            "that offers the file is not the file itself)"
                        )
                    first = False
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    bar.update(len(chunk))
                    set_download({"what": what, "done": done, "total": total, "started": time.time()})
            out.flush()
            os.fsync(out.fileno())
        expected = size if size is not None else total
        if expected and done != expected:
            raise DownloadFailed(f"the download of {what} stopped after {done} of {expected} bytes; try again")
        if sha256 and not digest.hexdigest().startswith(sha256.lower()):
            raise DownloadFailed(f"the downloaded {what} does not match its published checksum; nothing was kept")
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
        set_download(None)
    return target
