"""Names and files of a library directory that its parts share (see :mod:`indexing.library` for the layout)."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from indexing.errors import LibraryError

DB_FILE = "library.sqlite"
LOCK_FILE = "lock"
ID_LENGTH = 12
STALE_CLIP_TMP_S = 3600.0
"""A temporary clip file older than this belongs to a dead writer."""
STORES_DIR = "encoders"
STORE_LOCK = "lock"
STAGING_DIR = "staging"
"""Videos indexed by workers without the write lock, waiting for the writer's commit (:mod:`indexing.staging`)."""
STAGING_LOCK = "lock"
"""Held by the driver of a distributed run for as long as it may commit from ``staging/``."""


LIBRARY_RELATIVE = "./"
"""How the catalog writes an encoder weights file that lies inside the library: relative to its root after this
marker (no weights tag starts with it), so a library moved to another folder or disk still finds its encoder."""


def stored_weights(pretrained: str, root: Path) -> str:
    """``pretrained`` as the catalog keeps it: a weights file inside the library relative to its root, any other
    file by its full path (never relative to the directory the app happened to start in), a tag as it is."""
    path = Path(pretrained)
    if not pretrained or not path.is_file():
        return pretrained  # a tag: "openai", "none", a hub name
    path = path.resolve()
    try:
        return LIBRARY_RELATIVE + path.relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def resolved_weights(stored: str, root: Path) -> str:
    """The encoder weights a catalog names, as a usable tag or path (see :func:`stored_weights`)."""
    return str(root / stored[len(LIBRARY_RELATIVE) :]) if stored.startswith(LIBRARY_RELATIVE) else stored


def load_features(path: Path, rows: int, dim: int) -> np.ndarray:
    """Memory-map a feature file and check it is float16 [rows, dim]; LibraryError says what is wrong."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise LibraryError(f"feature file {path.name} is missing") from None
    except (OSError, ValueError) as exc:
        raise LibraryError(f"feature file {path.name} is unreadable ({exc})") from None
    if arr.dtype != np.float16 or arr.shape != (rows, dim):
        raise LibraryError(f"feature file {path.name} holds {arr.dtype} {arr.shape}, expected float16 {(rows, dim)}")
    return arr


class FeatureMaps:
    """Open memory maps of feature files, reused: a library question reads a few rows of dozens of videos, and
    opening a ``.npy`` map (path resolution, header parse, mmap) costs more than reading them. A map is reused
    only while its file is the same inode with the same modification time; the least recently used are
    dropped past ``size`` (a map holds no file descriptor, only address space)."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._maps: OrderedDict[tuple[str, int, int], tuple[tuple[int, int], np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def load(self, path: Path, rows: int, dim: int) -> np.ndarray:
        """:func:`load_features`, from the cache when the file has not changed."""
        key = (str(path), int(rows), int(dim))
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise LibraryError(f"feature file {Path(path).name} is missing") from None
        stamp = (st.st_ino, st.st_mtime_ns)
        with self._lock:
            hit = self._maps.get(key)
            if hit is not None and hit[0] == stamp:
                self._maps.move_to_end(key)
                return hit[1]
        arr = load_features(path, rows, dim)
        with self._lock:
            self._maps[key] = (stamp, arr)
            self._maps.move_to_end(key)
            while len(self._maps) > self.size:
                self._maps.popitem(last=False)
        return arr
