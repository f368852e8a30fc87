"""Names and files of a library directory that its parts share (see :mod:`indexing.library` for the layout)."""

from __future__ import annotations

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
