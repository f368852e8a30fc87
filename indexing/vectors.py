"""The faiss index over every frame embedding of the library, and its file on disk.

Each vector's 64-bit id encodes ``(video rowid << 24) | bin``, so a hit maps straight back to a video and a
time, and a video's vectors form one contiguous id range (removal and per-video filtering are range
selectors). 2**24 bins is 2,485 hours of one video at 1.875 Hz.

The index is a cache of the per-video feature files, which are the truth: it is saved atomically with a JSON
sidecar (count, dimension, generation, checksum of the set of videos it holds, file size) and whenever the
sidecar does not match the catalog -- missing, damaged, stale -- it is rebuilt from the feature files.
Vectors are L2-normalised, so inner product is cosine similarity.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import faiss
import numpy as np

from indexing.fsutil import atomic_path, write_json_atomic

logger = logging.getLogger(__name__)

BIN_BITS = 24
MAX_BINS = 1 << BIN_BITS
INDEX_FILE = "frames.faiss"
META_FILE = "frames.json"


def encode_ids(rowid: int, bins: np.ndarray | int) -> np.ndarray:
    return (np.int64(rowid) << np.int64(BIN_BITS)) | np.asarray(bins, dtype=np.int64)


def decode_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = np.asarray(ids, dtype=np.int64)
    return ids >> BIN_BITS, ids & (MAX_BINS - 1)


def video_set_checksum(videos: Iterable[tuple[int, int]]) -> str:
    """Identity of the set of (rowid, rows) an index must hold; compared with the sidecar on load."""
    h = hashlib.sha1()
    for rowid, rows in sorted(videos):
        h.update(f"{rowid}:{rows}\n".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class IndexMeta:
    ntotal: int
    dim: int
    factory: str
    generation: int
    videos: str
    """:func:`video_set_checksum` of the videos in the index."""
    file_size: int = 0


class NeedsRebuild(Exception):
    """The index cannot take this change incrementally (untrained, or no removal support)."""


class FrameIndex:
    """An ``IndexIDMap2`` over a faiss index built from a factory string, inner-product metric."""

    def __init__(self, index: faiss.Index, dim: int, factory: str) -> None:
        self.index = index
        self.dim = dim
        self.factory = factory
        self._gpu = None

    @classmethod
    def new(cls, dim: int, factory: str = "Flat") -> "FrameIndex":
        try:
            index = faiss.index_factory(int(dim), f"IDMap2,{factory}", faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise ValueError(f"invalid faiss index factory string {factory!r}: {exc}") from exc
        return cls(index, int(dim), factory)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    # ------------------------------------------------------------------------------------------- changes
    def add(self, rowid: int, features: np.ndarray) -> None:
        if len(features) > MAX_BINS:
            raise ValueError(f"a video may have at most {MAX_BINS} feature rows")
        if not self.index.is_trained:
            raise NeedsRebuild("index not trained")
        x = np.ascontiguousarray(features, dtype=np.float32)
        self.index.add_with_ids(x, encode_ids(rowid, np.arange(len(x))))
        self._gpu = None

    def remove(self, rowid: int) -> int:
        sel = faiss.IDSelectorRange(int(encode_ids(rowid, 0)), int(encode_ids(rowid + 1, 0)))
        try:
            removed = int(self.index.remove_ids(sel))
        except RuntimeError as exc:
            raise NeedsRebuild(str(exc)) from exc
        self._gpu = None
        return removed

    @classmethod
    def build(cls, dim: int, factory: str, videos: Iterable[tuple[int, np.ndarray]],
              train_sample: int = 200_000) -> "FrameIndex":
        """A fresh index over ``(rowid, features)`` pairs; trains first when the index type needs it."""
        index = cls.new(dim, factory)
        videos = list(videos)
        if not index.index.is_trained and videos:
            total = sum(len(f) for _, f in videos)
            rng = np.random.default_rng(0)
            take = min(1.0, train_sample / max(total, 1))
            sample = np.concatenate([np.asarray(f[rng.random(len(f)) < take] if take < 1 else f, np.float32)
                                     for _, f in videos])
            logger.info("training %s on %d vectors", factory, len(sample))
            index.index.train(sample)
        for rowid, feats in videos:
            for s in range(0, len(feats), 65536):
                x = np.ascontiguousarray(feats[s:s + 65536], dtype=np.float32)
                index.index.add_with_ids(x, encode_ids(rowid, np.arange(s, s + len(x))))
        return index

    # ------------------------------------------------------------------------------------------- search
    def _searcher(self, use_gpu: bool):
        if not use_gpu or not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() < 1:
            return self.index
        if self._gpu is None:
            try:
                self._gpu = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, self.index)
            except (RuntimeError, AttributeError) as exc:
                logger.info("faiss GPU search unavailable for %s (%s); searching on CPU", self.factory, exc)
                self._gpu = self.index
        return self._gpu

    def search(self, queries: np.ndarray, k: int, rowids: dict[int, int] | None = None,
               use_gpu: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (scores, ids) per query; ``rowids`` ({rowid: rows}) restricts the search to those videos."""
        x = np.ascontiguousarray(queries, dtype=np.float32)
        k = int(max(1, min(k, max(self.ntotal, 1))))
        if rowids is None:
            return self._searcher(use_gpu).search(x, k)
        if len(rowids) == 1:
            (rowid,) = rowids
            sel = faiss.IDSelectorRange(int(encode_ids(rowid, 0)), int(encode_ids(rowid + 1, 0)))
        else:
            ids = np.concatenate([encode_ids(r, np.arange(n)) for r, n in rowids.items()]) if rowids else \
                np.zeros(0, np.int64)
            sel = faiss.IDSelectorBatch(ids)
        params = faiss.SearchParameters(sel=sel)
        return self.index.search(x, k, params=params)  # selectors run on the CPU index

    # ------------------------------------------------------------------------------------------- files
    def save(self, directory: Path, generation: int, videos_checksum: str) -> IndexMeta:
        directory.mkdir(parents=True, exist_ok=True)
        final = directory / INDEX_FILE
        with atomic_path(final) as tmp:
            faiss.write_index(self.index, str(tmp))
            size = tmp.stat().st_size
        meta = IndexMeta(ntotal=self.ntotal, dim=self.dim, factory=self.factory, generation=generation,
                         videos=videos_checksum, file_size=size)
        write_json_atomic(directory / META_FILE, asdict(meta))
        return meta

    @staticmethod
    def read_meta(directory: Path) -> IndexMeta | None:
        try:
            return IndexMeta(**json.loads((directory / META_FILE).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    @classmethod
    def load(cls, directory: Path, expect: IndexMeta) -> "FrameIndex | None":
        """The saved index if it is exactly what ``expect`` describes (generation aside), else None."""
        why = cls.mismatch(directory, expect)
        if why:
            logger.info("frame index at %s not usable: %s", directory, why)
            return None
        try:
            index = faiss.read_index(str(directory / INDEX_FILE))
        except RuntimeError as exc:
            logger.info("frame index at %s unreadable: %s", directory, str(exc).splitlines()[0][:200])
            return None
        if index.ntotal != expect.ntotal or index.d != expect.dim:
            logger.info("frame index at %s holds %d x %d, expected %d x %d", directory, index.ntotal, index.d,
                        expect.ntotal, expect.dim)
            return None
        return cls(index, expect.dim, expect.factory)

    @staticmethod
    def mismatch(directory: Path, expect: IndexMeta) -> str | None:
        """Why the saved index does not match ``expect`` (cheap: sidecar and file size only), or None."""
        meta = FrameIndex.read_meta(directory)
        if meta is None:
            return "no readable sidecar"
        path = directory / INDEX_FILE
        try:
            size = path.stat().st_size
        except OSError:
            return "index file missing"
        if size != meta.file_size:
            return f"file size {size} differs from the recorded {meta.file_size}"
        for name in ("ntotal", "dim", "factory", "videos"):
            if getattr(meta, name) != getattr(expect, name):
                return f"{name} {getattr(meta, name)!r} differs from the catalog's {getattr(expect, name)!r}"
        return None
