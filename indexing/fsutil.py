"""Small file-system tools the library's crash safety rests on: atomic replace, locks, links, hashes.

Every file the library writes is written under a temporary name in the same directory, flushed to disk and
then renamed over its final name (``os.replace`` is atomic on POSIX), so a reader or a process killed at any
instant sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

TMP_MARK = ".tmp-"
"""Temporary files are named ``<final name>.tmp-<random>``; leftovers of a killed writer are removed on repair."""


def tmp_name(final: Path) -> Path:
    return final.with_name(f"{final.name}{TMP_MARK}{uuid.uuid4().hex[:8]}")


def fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is fsynced and renamed to ``final``."""
    final = Path(final)
    tmp = tmp_name(final)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
        fsync_dir(final.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(final: Path, data: bytes) -> None:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(final: Path, obj) -> None:
    write_bytes_atomic(final, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def save_npy_atomic(final: Path, array: np.ndarray) -> None:
    with atomic_path(final) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)


def replace_durably(src: Path, dst: Path) -> None:
    """Rename a finished file into place and make the rename itself durable."""
    os.replace(src, dst)
    fsync_dir(dst.parent)


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


class HashCache:
    """sha256 of files, remembered by (inode, size, mtime) so asking twice reads the file once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[tuple, str] = {}

    def __call__(self, path: Path) -> str:
        st = os.stat(path)
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        digest = sha256_file(path)
        with self._lock:
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key] = digest
        return digest


def link_or_copy(src: Path, dst: Path, progress: Callable[[int], None] | None = None) -> str:
    """Hard-link ``src`` to ``dst`` when both live on one file system, else copy; returns 'link' or 'copy'."""
    try:
        os.link(src, dst)
        return "link"
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
            raise
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout, length=1 << 22)
        fout.flush()
        os.fsync(fout.fileno())
    return "copy"


class FileLock:
    """An exclusive ``flock`` on a file, plus a thread lock so threads of one process also take turns.

    The kernel drops an flock when its process dies (even by SIGKILL), so a crashed writer never leaves the
    library locked. ``try_acquire`` never blocks; ``acquire`` polls until ``timeout``.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._thread_lock = threading.RLock()
        self._fd: int | None = None
        self._depth = 0

    def try_acquire(self) -> bool:
        if not self._thread_lock.acquire(blocking=False):
            return False
        if self._depth:
            self._depth += 1
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            self._thread_lock.release()
            return False
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass
        self._fd, self._depth = fd, 1
        return True

    def acquire(self, timeout: float) -> bool:
        deadline = time.monotonic() + max(0.0, timeout)
        delay = 0.01
        while True:
            if self.try_acquire():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    def holder_pid(self) -> int | None:
        try:
            return int(self.path.read_text().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        self._thread_lock.release()


def lock_is_free(path: Path) -> bool:
    """True when no process holds an flock on ``path`` (used to tell dead indexing jobs from live ones)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)
